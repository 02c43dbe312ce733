"""The hub's view in headless Chromium over a hub store filled directly (no NATS): what a slow link does to it.

Answers for an earlier selection that arrive last are dropped rather than drawn under the
current one (held back with ``page.route``); a refresh is not started while the previous one
runs; a plant's open incidents beyond the list are counted and the most urgent listed; times
are shown in ``hub.timezone`` and the zone is named; a keyboard reaches plants, incidents and
the remark form, and errors are announced. The page's timers run on Playwright's paused clock,
so no refresh starts unless a test advances it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anjian.cameras.health import CameraState
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.service.bus.messages import CameraReport, HealthReport
from anjian.service.config import StorageConfig
from anjian.service.hub.api import create_hub_app
from anjian.service.hub.config import HubConfig, HubSiteConfig, PlantConfig
from anjian.service.hub.store import HubStore
from tests.factories import make_event, make_jpeg
from tests.service.conftest import FakeClock
from tests.service.hub.conftest import PlantRecorder
from tests.service.server import ServerThread

pytestmark = pytest.mark.slow

TIMEOUT_MS = 20_000
STARTED = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC, 2023-11-15 06:13:20 in Shanghai
READS = """
window.__read = [];
window.__fetched = [];
const fetchFirst = window.fetch;
window.fetch = function (resource, options) {
  window.__fetched.push(String(resource));
  return fetchFirst.call(this, resource, options);
};
for (const name of ["json", "blob"]) {
  const readFirst = Response.prototype[name];
  Response.prototype[name] = function () {
    const url = this.url;
    return readFirst.call(this).then((body) => { window.__read.push(url); return body; });
  };
}
"""
"""Records each URL the page fetches and each whose body it has read: the page acts on a body in the same
task as the read, so once a read is recorded (seen from a later task), what the page made of it is drawn."""


@dataclass
class HubView:
    """A hub serving plants lab-3 (incidents a, b) and cold-1 (incident c), its times in Shanghai."""

    server: ServerThread
    store: HubStore
    token: str
    lab: PlantRecorder
    a: str
    b: str
    c: str

    def open(self, chromium: Any, plant: str | None = None) -> Any:
        """A page (a browser in UTC) signed in as the supervisor, the plants shown (and ``plant``'s incidents
        asked for, its row clicked), its clock paused."""
        expect = pytest.importorskip("playwright.sync_api").expect
        context = chromium.new_context(timezone_id="UTC", locale="en-GB")
        context.add_init_script(READS)
        page = context.new_page()
        page.clock.install()
        page.goto(f"{self.server.base_url}/")
        page.clock.pause_at(page.evaluate("Date.now()") + 100)
        page.fill("#token", self.token)
        page.click("#signin button[type=submit]")
        expect(page.locator("#plants tbody tr")).to_have_count(2, timeout=TIMEOUT_MS)
        if plant is not None:
            page.locator(f"#plants tr[data-plant='{plant}']").click()
        return page


@pytest.fixture
def hub_view(tmp_path: Path) -> Iterator[HubView]:
    clock = FakeClock(STARTED + 60)
    lab = PlantRecorder("lab-3", tmp_path / "lab-3.db", clock)
    cold = PlantRecorder("cold-1", tmp_path / "cold-1.db", clock)
    config = HubConfig(
        hub=HubSiteConfig(timezone="Asia/Shanghai"),
        storage=StorageConfig(dir=tmp_path / "hub"),
        plants=[
            PlantConfig(id="lab-3", name="Polishing plant", group="dust"),
            PlantConfig(id="cold-1", name="Cold store", group="ammonia"),
        ],
    )
    store = HubStore.from_config(config.storage)
    a = make_event(started_at=STARTED, last_seen_at=STARTED + 1, snapshot_jpeg=make_jpeg(320, 240))
    b = make_event(
        camera_id="cam-2",
        behaviour=Behaviour.SMOKING,
        severity=RiskLevel.ORANGE,
        started_at=STARTED + 2,
        last_seen_at=STARTED + 3,
        snapshot_jpeg=make_jpeg(640, 360),
    )
    c = make_event(started_at=STARTED + 4, last_seen_at=STARTED + 5, message="Ammonia room")
    store.apply([lab.raise_event(a), lab.raise_event(b), cold.raise_event(c)])
    store.apply([lab.act(a.id, "acknowledge", note="NOTE-OF-A")])
    cameras = [  # cam-1 named by the plant; cam-2 as a plant older than names reports it
        CameraReport(camera_id="cam-1", name="东门出口", state=CameraState.ONLINE, since=STARTED),
        CameraReport(camera_id="cam-2", state=CameraState.ONLINE, since=STARTED),
    ]
    store.apply([HealthReport(plant_id="lab-3", sent_at=STARTED + 30, cameras=cameras)])
    cold.store.close()
    _info, token = store.tokens.create("city bureau", "supervisor", "all")
    server = ServerThread(create_hub_app(config, store)).start()
    yield HubView(server, store, token, lab, a.id, b.id, c.id)
    server.stop()
    store.close()
    lab.store.close()


class Held:
    """The requests whose URL contains ``part``, held back until ``_release``; later ones then go through."""

    def __init__(self, page: Any, part: str) -> None:
        self.routes: list[Any] = []
        self.is_released = False
        page.route(lambda url: part in url, self._route)

    def _route(self, route: Any) -> None:
        if self.is_released:
            route.continue_()
        else:
            self.routes.append(route)

    def wait(self, page: Any) -> None:
        """Wait until one is held (Playwright hands a request to its route while the page is waited on)."""
        for _ in range(TIMEOUT_MS // 50):
            if self.routes:
                return
            page.wait_for_timeout(50)
        raise AssertionError("the request was never made")


def _reads(page: Any) -> int:
    """How many bodies the page has read so far."""
    return int(page.evaluate("window.__read.length"))


def _wait_read(page: Any, since: int, *parts: str) -> None:
    """Wait until the page has read, after its first ``since`` reads, a body of a URL containing each of ``parts``."""
    page.wait_for_function(
        "([since, parts]) => parts.every((part) => window.__read.slice(since).some((url) => url.includes(part)))",
        arg=[since, list(parts)],
        timeout=TIMEOUT_MS,
    )


def _release(page: Any, held: Held, *parts: str) -> None:
    """Let the held requests through, then wait until the page has read their bodies (URLs containing ``parts``)."""
    since = _reads(page)
    held.is_released = True
    for route in held.routes:
        route.continue_()
    _wait_read(page, since, *parts)


def test_a_late_answer_for_the_previous_incident_or_plant_is_not_drawn_under_the_selected_one(
    hub_view: HubView,
    browser: Any,
    expect: Any,
) -> None:
    page = hub_view.open(browser, "lab-3")
    expect(page.locator("#events tbody tr")).to_have_count(2, timeout=TIMEOUT_MS)

    held = Held(page, f"/events/{hub_view.a}/snapshot")
    page.locator(f"#events tr[data-event='{hub_view.a}']").click()
    held.wait(page)
    page.locator(f"#events tr[data-event='{hub_view.b}']").click()
    expect(page.locator("#detail-title")).to_contain_text("on cam-2", timeout=TIMEOUT_MS)
    expect(page.locator("#snapshot")).to_have_js_property("naturalWidth", 640, timeout=TIMEOUT_MS)
    expect(page.locator("#audit li")).to_have_count(1)
    shown = page.eval_on_selector("#snapshot", "image => image.src")
    _release(page, held, f"/events/{hub_view.a}/snapshot")

    assert "on cam-2" in page.inner_text("#detail-title")
    assert page.eval_on_selector("#snapshot", "image => image.src") == shown  # not a's 320-px snapshot
    assert page.locator("#audit li").count() == 1
    assert "NOTE-OF-A" not in page.inner_text("#audit")

    held = Held(page, "/api/events?plant_id=lab-3")
    page.locator("#plants tr[data-plant='lab-3']").click()
    held.wait(page)
    page.locator("#plants tr[data-plant='cold-1']").click()
    expect(page.locator("#incidents-title")).to_have_text("Open incidents: Cold store", timeout=TIMEOUT_MS)
    expect(page.locator("#events tbody tr")).to_have_count(1)
    _release(page, held, "events?plant_id=lab-3", "cameras?plant_id=lab-3", "sensors?plant_id=lab-3")

    assert page.inner_text("#incidents-title") == "Open incidents: Cold store"
    assert page.locator("#events tbody tr").count() == 1  # not lab-3's two
    assert page.get_attribute("#events tbody tr", "data-event") == hub_view.c


def test_a_refresh_is_not_started_while_the_previous_one_runs(
    hub_view: HubView,
    browser: Any,
) -> None:
    page = hub_view.open(browser)
    overviews = "() => window.__fetched.filter((url) => url.endsWith('/api/overview')).length"
    held = Held(page, "/api/overview")
    before = page.evaluate(overviews)

    page.clock.run_for(3 * 5000 + 100)  # three refresh ticks while the first one's overview is held back

    assert page.evaluate(overviews) == before + 1
    _release(page, held, "/api/overview")
    page.wait_for_function("() => state.refreshing === null", timeout=TIMEOUT_MS)
    page.clock.run_for(5000)
    assert page.evaluate(overviews) == before + 2  # refreshing again once it was answered


def test_a_plant_with_more_open_incidents_than_listed_says_so_and_lists_the_most_urgent(
    hub_view: HubView,
    browser: Any,
    expect: Any,
) -> None:
    lab = hub_view.lab
    oldest = make_event(started_at=STARTED - 3000, last_seen_at=STARTED - 2999, snapshot_jpeg=None)
    flood = [
        make_event(
            severity=RiskLevel.YELLOW,
            started_at=STARTED + 10 + i,
            last_seen_at=STARTED + 11 + i,
            snapshot_jpeg=None,
        )
        for i in range(205)
    ]
    hub_view.store.apply([lab.raise_event(e) for e in (oldest, *flood)])
    page = hub_view.open(browser, "lab-3")

    expect(page.locator("#events tbody tr")).to_have_count(200, timeout=TIMEOUT_MS)
    expect(page.locator("#events-cut")).to_have_text(
        "Showing 200 of 208 open incidents, the most urgent first."
    )
    expect(page.locator("#events tbody tr").first).to_have_attribute("data-event", oldest.id)
    expect(page.locator(f"#events tr[data-event='{hub_view.b}']")).to_have_count(1)  # raised orange
    expect(page.locator(f"#events tr[data-event='{hub_view.a}']")).to_have_count(0)  # acknowledged: last
    page.locator("#plants tr[data-plant='cold-1']").click()
    expect(page.locator("#events tbody tr")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.locator("#events-cut")).to_be_hidden()


def test_times_are_shown_in_the_hubs_zone_which_the_header_names(
    hub_view: HubView,
    browser: Any,
    expect: Any,
) -> None:
    page = hub_view.open(browser, "lab-3")  # the browser runs in UTC

    expect(page.locator("#zone")).to_have_text("times in Asia/Shanghai")
    started = page.locator(f"#events tr[data-event='{hub_view.a}'] td").first
    expect(started).to_have_text("15/11/2023, 06:13:20", timeout=TIMEOUT_MS)


def test_cameras_carry_the_plants_names_in_the_incidents_the_detail_and_the_camera_list(
    hub_view: HubView,
    browser: Any,
    expect: Any,
) -> None:
    """The hub showed bare camera ids ("cam-17") where the plant's control room says where it is."""
    page = hub_view.open(browser, "lab-3")

    named = page.locator(f"#events tr[data-event='{hub_view.a}'] td").nth(1)
    expect(named).to_have_text("东门出口 (cam-1)", timeout=TIMEOUT_MS)
    expect(page.locator(f"#events tr[data-event='{hub_view.b}'] td").nth(1)).to_have_text("cam-2")
    expect(page.locator("#cameras li[data-camera='cam-1']")).to_have_text("东门出口 (cam-1): online")
    page.locator(f"#events tr[data-event='{hub_view.a}']").click()
    expect(page.locator("#detail-title")).to_have_text(
        "Open flame on 东门出口 (acknowledged)", timeout=TIMEOUT_MS
    )
    expect(page.locator("#facts")).to_contain_text("Camera东门出口 (cam-1)")


def test_behaviours_are_named_from_the_services_table_in_the_incidents_and_the_detail(
    hub_view: HubView,
    browser: Any,
    expect: Any,
) -> None:
    """The hub kept its own copy of the names, without overcrowding: it showed the bare code."""
    crowd = make_event(
        behaviour=Behaviour.OVERCROWDING,
        severity=RiskLevel.YELLOW,
        started_at=STARTED + 6,
        last_seen_at=STARTED + 7,
        snapshot_jpeg=None,
    )
    hub_view.store.apply([hub_view.lab.raise_event(crowd)])
    page = hub_view.open(browser, "lab-3")

    behaviour = page.locator(f"#events tr[data-event='{crowd.id}'] td").nth(2)
    expect(behaviour).to_have_text("Overcrowding", timeout=TIMEOUT_MS)
    expect(page.locator(f"#events tr[data-event='{hub_view.b}'] td").nth(2)).to_have_text("Smoking")
    behaviour.locator("button").click()
    expect(page.locator("#detail-title")).to_have_text(
        "Overcrowding on 东门出口 (raised)", timeout=TIMEOUT_MS
    )


def test_a_keyboard_reaches_plants_incidents_and_the_remark_form_and_errors_are_announced(
    hub_view: HubView,
    browser: Any,
    expect: Any,
) -> None:
    page = hub_view.open(browser)
    page.route(
        f"**/api/plants/lab-3/events/{hub_view.b}",
        lambda route: route.fulfill(status=503, json={"detail": "the hub's database is busy"}),
    )
    lab = page.locator("#plants tr[data-plant='lab-3'] button")

    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("Tab")
    expect(lab).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#incidents-title")).to_have_text(
        "Open incidents: Polishing plant", timeout=TIMEOUT_MS
    )
    expect(lab).to_have_attribute("aria-current", "true")
    since = _reads(page)
    page.clock.run_for(5000)  # a refresh rebuilds the tables: the focus stays on the plant
    _wait_read(page, since, "/api/overview", "/api/sensors?plant_id=lab-3")
    expect(lab).to_be_focused()

    _tab_to(page, f"#events tr[data-event='{hub_view.a}'] button")
    page.keyboard.press(" ")
    expect(page.locator("#detail-title")).to_have_text(
        "Open flame on 东门出口 (acknowledged)", timeout=TIMEOUT_MS
    )
    _tab_to(page, "#remark-note")

    page.locator(f"#events tr[data-event='{hub_view.b}'] button").focus()
    page.keyboard.press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Cannot open the incident: the hub's database is busy", timeout=TIMEOUT_MS)
    expect(alert).to_have_id("error")


def _tab_to(page: Any, selector: str, most: int = 20) -> None:
    """Press Tab until the element of ``selector`` has the focus (at most ``most`` times)."""
    target = page.locator(selector)
    for _ in range(most):
        page.keyboard.press("Tab")
        if target.evaluate("node => node === document.activeElement"):
            return
    raise AssertionError(f"{selector} is not reached with Tab")
