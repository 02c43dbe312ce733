"""The dashboard in headless Chromium (Debian's, driven by Playwright): live feed, lifecycle buttons, camera grid.

Set ``ANJIAN_SCREENSHOT_DIR`` to keep the screenshot the test takes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cameras.health import CameraHealth, CameraState
from pipeline.event import Behaviour, RiskLevel
from pipeline.event_json import event_to_json
from service.app import create_app
from tests.factories import make_event, make_jpeg
from tests.service.conftest import make_config
from tests.service.server import ServerThread

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 20_000


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield browser
        browser.close()


def test_operator_sees_a_new_alert_live_and_works_it_through_the_buttons(
    tmp_path: Path, browser: object
) -> None:
    cameras = [
        CameraHealth(camera_id="line-1", state=CameraState.ONLINE, since=1_700_000_000.0, fps=5.0),
        CameraHealth(camera_id="line-2", state=CameraState.OFFLINE, since=1_700_000_000.0, reconnects=3),
    ]
    app = create_app(make_config(tmp_path / "data"), camera_health=lambda: cameras)
    store = app.state.store
    operator = store.tokens.create("duty officer", "operator")[1]
    pipeline = {"Authorization": f"Bearer {store.tokens.create('pipeline', 'pipeline')[1]}"}
    older = make_event(
        camera_id="line-2",
        behaviour=Behaviour.SMOKING,
        severity=RiskLevel.ORANGE,
        started_at=1_699_999_000.0,
        last_seen_at=1_699_999_001.0,
        message="Smoking near the dust collector",
    )
    store.upsert_event(older)
    server = ServerThread(app).start()
    page = browser.new_page(viewport={"width": 1400, "height": 950})  # type: ignore[attr-defined]
    try:
        page.goto(f"{server.base_url}/#token={operator}")
        page.wait_for_selector("#live-status:text('live')", timeout=TIMEOUT_MS)
        assert "token=" not in page.url, "the token leaves the address bar"
        page.wait_for_selector(f".event-row[data-id='{older.id}']", timeout=TIMEOUT_MS)
        page.wait_for_selector(".camera[data-camera='line-2'].offline", timeout=TIMEOUT_MS)

        event = make_event(
            camera_id="line-1",
            message="Open flame in zone-a on line-1",
            snapshot_jpeg=make_jpeg(320, 180, (0, 80, 255)),
        )
        httpx.post(
            f"{server.base_url}/ingest/events", json=event_to_json(event), headers=pipeline
        ).raise_for_status()

        row = page.wait_for_selector(f".event-row[data-id='{event.id}']", timeout=TIMEOUT_MS)
        assert "sev-red" in (row.get_attribute("class") or "")
        row.click()
        page.wait_for_selector(f"#detail[data-id='{event.id}']", timeout=TIMEOUT_MS)
        page.wait_for_function(
            "document.querySelector('#detail-snapshot').naturalWidth === 320", timeout=TIMEOUT_MS
        )
        assert page.is_disabled("button[data-action='resolve']"), "resolve is not allowed while raised"

        page.click("button[data-action='acknowledge']")
        page.wait_for_selector("#detail-state:text('acknowledged')", timeout=TIMEOUT_MS)
        page.fill("#note", "Flame put out with extinguisher; hot-work permit checked")
        page.click("button[data-action='resolve']")
        page.wait_for_selector("#detail-state:text('resolved')", timeout=TIMEOUT_MS)
        page.wait_for_selector(
            f".event-row[data-id='{event.id}'] .state:text('resolved')", timeout=TIMEOUT_MS
        )
        page.wait_for_function("document.querySelectorAll('#audit tr').length === 3", timeout=TIMEOUT_MS)
        screenshot = tmp_path / "dashboard.png"
        page.screenshot(path=str(screenshot), full_page=True)
        trail = store.audit_trail(event.id)
    finally:
        page.close()
        server.stop()
        store.close()

    assert [(a.actor, a.action) for a in trail] == [
        ("pipeline", "raise"),
        ("duty officer", "acknowledge"),
        ("duty officer", "resolve"),
    ]
    assert trail[-1].note == "Flame put out with extinguisher; hot-work permit checked"
    keep = os.environ.get("ANJIAN_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / "dashboard.png")
    assert screenshot.stat().st_size > 10_000
