"""The hub's dashboard in headless Chromium (Debian's, driven by Playwright), over a real plant and real NATS.

A plant service publishes through its leaf node; the hub consumes and serves the page. The
supervisor sees every plant with its open incidents by colour, drills down to an incident
with its snapshot and audit trail, and presses the plant for action, which lands in the
plant's own audit trail. A plant's token sees its plant alone. Nothing is blocked by the
Content-Security-Policy (no eval, no CDN). Set ``ANJIAN_SCREENSHOT_DIR`` to keep a screenshot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.sensors.health import SensorState
from anjian.service.app import create_app
from anjian.service.bus.remarks import ACTION_PRESS
from anjian.service.composition import ServiceParts
from anjian.service.config import AnjianConfig, StorageConfig
from anjian.service.hub.api import create_hub_app
from anjian.service.hub.clips import HubClips
from anjian.service.hub.config import HubBusConfig, HubConfig, PlantConfig
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import HubStore
from tests.factories import make_event, make_jpeg
from tests.service.bus.conftest import PLANT, plant, plant_site, topology  # noqa: F401 - fixtures
from tests.service.hub.conftest import sensor_report
from tests.service.server import ServerThread
from tests.support.nats import NatsTopology
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

TIMEOUT_MS = 20_000


@pytest.fixture
def hub_server(tmp_path: Path, topology: NatsTopology) -> Iterator[tuple[ServerThread, HubStore]]:  # noqa: F811
    """The hub (SQLite) consuming the plant and a second, silent plant, served on loopback."""
    config = HubConfig(
        bus=HubBusConfig(url=topology.hub.url, ack_wait_s=2.0),
        storage=StorageConfig(dir=tmp_path / "hub"),
        plants=[
            PlantConfig(id=PLANT, name="Polishing plant", group="dust"),
            PlantConfig(id="cold-1", name="Cold store", group="ammonia"),
        ],
    )
    store = HubStore.from_config(config.storage)
    bus = HubBus(config, store)
    bus.start()
    clips = HubClips(config, bus.connection)
    server = ServerThread(create_hub_app(config, store, on_remark=bus.remark_added, clips=clips)).start()
    yield server, store
    server.stop()
    bus.stop()
    store.close()


def _sign_in(page: Any, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/")
    page.fill("#token", token)
    page.click("#signin button[type=submit]")


def test_supervisor_sees_every_plant_drills_down_and_presses_for_action(
    plant_site: AnjianConfig,  # noqa: F811
    plant: ServiceParts,  # noqa: F811
    hub_server: tuple[ServerThread, HubStore],
    browser: Any,
    expect: Any,
) -> None:
    server, store = hub_server
    clip = b"\x00\x00\x00\x18ftypisom" + bytes(1_500_000)  # stays on the plant until asked for
    fire = make_event(
        snapshot_jpeg=make_jpeg(320, 240), clip_mp4=clip, message="Open flame at polishing line 2"
    )
    smoking = make_event(camera_id="cam-2", behaviour=Behaviour.SMOKING, severity=RiskLevel.ORANGE)
    for event in (fire, smoking):
        plant.sink.publish(event)
    assert wait_for(lambda: store.count_events(PLANT) == 2, 60)
    store.apply([sensor_report(PLANT, time.time(), nh3_1=SensorState.FAULT, nh3_2=SensorState.OK)])
    _info, token = store.tokens.create("city bureau", "supervisor", "all")

    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    _sign_in(page, server.base_url, token)

    rows = page.locator("#plants tbody tr")
    expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
    plant_row = page.locator(f"#plants tr[data-plant='{PLANT}']")
    expect(plant_row.locator("td[data-colour='red']")).to_have_text("1", timeout=TIMEOUT_MS)
    expect(plant_row.locator("td[data-colour='orange']")).to_have_text("1")
    expect(page.locator("#plants tr[data-plant='cold-1'] td").last).to_have_text("never (silent)")
    expect(plant_row.locator("td").last).not_to_have_class("silent")
    expect(plant_row.locator("td[data-column='sensors']")).to_have_text("1 / 2")

    plant_row.click()
    expect(page.locator("#events tbody tr")).to_have_count(2, timeout=TIMEOUT_MS)
    faulty = page.locator("#sensors li[data-sensor='nh3-1']")
    expect(faulty).to_have_attribute("data-state", "fault")
    expect(faulty).to_contain_text("open: stale")
    page.locator(f"#events tr[data-event='{fire.id}']").click()
    expect(page.locator("#detail-title")).to_contain_text("Open flame on cam-1", timeout=TIMEOUT_MS)
    expect(page.locator("#snapshot")).to_have_js_property("naturalWidth", 320, timeout=TIMEOUT_MS)
    expect(page.locator("#audit li")).to_have_count(1)
    page.click("#load-clip")
    expect(page.locator("#clip-status")).to_have_text("1.5 MB", timeout=TIMEOUT_MS)
    expect(page.locator("#clip")).to_be_visible()

    page.fill("#remark-note", "Red alert unacknowledged: send someone now")
    page.click("#remark button[name=press]")
    expect(page.locator("#remark-status")).to_have_text("Pressed for action.", timeout=TIMEOUT_MS)
    expect(page.locator(f"#audit li[data-action='{ACTION_PRESS}']")).to_have_count(1, timeout=TIMEOUT_MS)

    def pressed() -> bool:
        return any(line.action == ACTION_PRESS for line in plant.store.audit_trail(fire.id))

    assert wait_for(pressed, 60)  # it reached the plant's control room through the bus
    plant_server = ServerThread(create_app(plant_site, plant)).start()
    try:
        operator = plant.store.tokens.create("duty officer", "operator")[1]
        control_room = browser.new_page()
        control_room.goto(f"{plant_server.base_url}/#token={operator}")
        control_room.locator(f".event-row[data-id='{fire.id}']").click(timeout=TIMEOUT_MS)
        expect(control_room.locator("#audit tr").last).to_contain_text(
            "Pressed for action by the supervising office", timeout=TIMEOUT_MS
        )
        expect(control_room.locator("#audit tr").last).to_contain_text("send someone now")
    finally:
        plant_server.stop()
    screenshots = os.environ.get("ANJIAN_SCREENSHOT_DIR")
    if screenshots:
        page.screenshot(path=str(Path(screenshots) / "hub-dashboard.png"), full_page=True)
    assert not [m for m in console if "Content Security Policy" in m or "Refused" in m]


def test_a_plant_token_sees_its_plant_alone_and_cannot_remark(
    plant: ServiceParts,  # noqa: F811
    hub_server: tuple[ServerThread, HubStore],
    browser: Any,
    expect: Any,
) -> None:
    server, store = hub_server
    event = make_event()
    plant.sink.publish(event)
    assert wait_for(lambda: store.count_events(PLANT) == 1, 60)
    _info, token = store.tokens.create("cold store staff", "viewer", "plant:cold-1")

    page = browser.new_page()
    _sign_in(page, server.base_url, token)

    expect(page.locator("#plants tbody tr")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.locator("#plants tbody tr")).to_have_attribute("data-plant", "cold-1")
    expect(page.locator("#who")).to_have_text("cold store staff (viewer, plant:cold-1)")
    page.locator("#plants tbody tr").click()
    expect(page.locator("#no-events")).to_be_visible(timeout=TIMEOUT_MS)


def test_a_wrong_token_is_refused_on_the_sign_in_form(
    hub_server: tuple[ServerThread, HubStore],
    browser: Any,
    expect: Any,
) -> None:
    server, _store = hub_server
    page = browser.new_page()
    _sign_in(page, server.base_url, "anjhub_not-a-token")
    expect(page.locator("#signin-error")).to_have_text("The token was refused.", timeout=TIMEOUT_MS)
    expect(page.locator("#main")).to_be_hidden()
