"""The control room on a wall screen (headless Chromium, Playwright): the site's time, no requests that
can only fail, and alerts a keyboard or a screen reader reaches.

Times are the site's (``site.timezone`` from ``GET /site``), not the zone of the computer showing
them, matching the captions on frames, snapshots and reports. A service that reads no cameras
(``anjian serve``) has no live frames to poll. Feed rows take the focus and open with Enter, errors
are announced, and new or escalated red and orange alerts are said in a polite live region.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from anjian.cameras.health import CameraHealth, CameraState
from anjian.pipeline.event import RiskLevel
from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from anjian.service.config import SlaConfig
from tests.factories import make_event
from tests.service.conftest import make_config
from tests.service.server import ServerThread
from tests.service.test_dashboard import TIMEOUT_MS

pytestmark = pytest.mark.slow


def test_times_are_the_sites_whatever_zone_the_screen_is_set_to(
    tmp_path: Path, browser: Any, expect: Any
) -> None:
    """A control-room PC on UTC showed 2023-11-14 22:13:20 for an alert the site saw at 06:13:20 the
    next day, and the camera tooltip a third form, in English and UTC."""
    config = make_config(tmp_path / "data", timezone="Asia/Shanghai")
    parts = build_service_parts(config, camera_health=list)
    cam_2 = CameraHealth(camera_id="cam-2", state=CameraState.ONLINE, since=1_700_000_000.0, fps=5.0)
    parts.camera_health.record("node-b", 0.001, [cam_2])  # a node elsewhere, silent since
    app = create_app(config, parts)
    parts.start()
    store = parts.store
    operator = store.tokens.create("duty officer", "operator")[1]
    event = make_event(started_at=1_700_000_000.0, last_seen_at=1_700_000_002.5, snapshot_jpeg=None)
    store.upsert_event(event)
    server = ServerThread(app).start()
    context = browser.new_context(timezone_id="UTC", locale="en-US", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        site = httpx.get(f"{server.base_url}/site", headers={"Authorization": f"Bearer {operator}"}).json()
        assert site["timezone"] == "Asia/Shanghai"
        page.goto(f"{server.base_url}/#token={operator}")
        row = page.locator(f".event-row[data-id='{event.id}']")
        expect(row.locator(".when")).to_have_text("2023-11-15 06:13:20", timeout=TIMEOUT_MS)
        expect(page.locator("#site-zone")).to_have_text("Times: Asia/Shanghai (GMT+8)")
        row.click()
        expect(page.locator("#detail-facts")).to_contain_text(
            "Started2023-11-15 06:13:20", timeout=TIMEOUT_MS
        )
        expect(page.locator("#detail-facts")).to_contain_text("Last seen2023-11-15 06:13:22")
        expect(page.locator("#audit tr td").first).to_have_text(
            re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        )
        stale = page.locator(".camera[data-camera='cam-2'].stale")
        expect(stale).to_have_attribute(
            "title", re.compile(r"^Not reporting since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"), timeout=TIMEOUT_MS
        )
    finally:
        context.close()
        server.stop()
        parts.close()


def test_a_service_without_a_live_view_is_not_polled_for_live_frames(
    tmp_path: Path, browser: Any, expect: Any
) -> None:
    """``anjian serve`` answers 404 for every live frame: the page asked every 1.5 s per camera, forever."""
    config = make_config(tmp_path / "data", camera_ids=("cam-1",))
    health = [CameraHealth(camera_id="cam-1", state=CameraState.ONLINE, since=1_700_000_000.0, fps=5.0)]
    parts = build_service_parts(config, camera_health=lambda: health)  # cameras reported, no live view
    app = create_app(config, parts)
    parts.start()
    store = parts.store
    operator = store.tokens.create("duty officer", "operator")[1]
    event = make_event(snapshot_jpeg=None)
    store.upsert_event(event)
    server = ServerThread(app).start()
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(f"{server.base_url}/#token={operator}")
        page.locator(f".event-row[data-id='{event.id}']").click(timeout=TIMEOUT_MS)  # its camera too
        expect(page.locator(".camera[data-camera='cam-1']")).to_have_count(1, timeout=TIMEOUT_MS)
        with page.expect_request(lambda request: request.url.endswith("/cameras"), timeout=TIMEOUT_MS):
            pass  # the next camera poll, 5 s on: the live frames were asked for three times by then
        expect(page.locator("img.thumb[data-camera='cam-1']")).to_be_hidden()
    finally:
        page.close()
        server.stop()
        parts.close()

    assert [url for url in requested if "live.jpg" in url] == []


def test_a_keyboard_opens_alerts_and_a_screen_reader_hears_new_and_escalated_ones(
    tmp_path: Path, browser: Any, expect: Any
) -> None:
    config = make_config(tmp_path / "data", camera_ids=("cam-1", "cam-2"))
    parts = build_service_parts(config, camera_health=list)
    app = create_app(config, parts)
    parts.start()
    store = parts.store
    operator = store.tokens.create("duty officer", "operator")[1]
    first = make_event(started_at=1_700_000_000.0, snapshot_jpeg=None)
    second = make_event(
        camera_id="cam-2", started_at=1_700_000_010.0, last_seen_at=1_700_000_011.0, snapshot_jpeg=None
    )
    store.upsert_event(first)
    store.upsert_event(second)
    server = ServerThread(app).start()
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{server.base_url}/#token={operator}")
        expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
        expect(page.locator("#error")).to_have_attribute("role", "alert")
        expect(page.locator("#feed")).to_have_attribute("role", "listbox")
        rows = page.locator(".event-row")
        expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
        for _ in range(30):  # Tab through the header and the filters to the queue
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.classList.contains('event-row')"):
                break
        expect(rows.first).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#detail")).to_have_attribute("data-id", first.id, timeout=TIMEOUT_MS)
        expect(rows.first).to_have_attribute("aria-selected", "true")
        page.keyboard.press("ArrowDown")
        expect(page.locator("#detail")).to_have_attribute("data-id", second.id, timeout=TIMEOUT_MS)
        expect(rows.nth(1)).to_be_focused()  # the focus follows the selection, through the redrawing
        page.keyboard.press(" ")
        expect(rows.nth(1)).to_have_attribute("aria-selected", "true")

        announcer = page.locator("#announcer")
        expect(announcer).to_have_attribute("aria-live", "polite")
        smoke = make_event(severity=RiskLevel.ORANGE, camera_id="cam-2", snapshot_jpeg=None)
        store.upsert_event(smoke)
        expect(announcer).to_have_text(re.compile("^New orange alert: Open flame"), timeout=TIMEOUT_MS)
        expect(page.locator("body")).to_have_attribute("data-announced", "1", timeout=TIMEOUT_MS)
        time.sleep(0.01)  # past its (tiny) deadline
        assert [e.id for e in store.escalate_overdue(SlaConfig(orange_s=0.001))] == [smoke.id]
        expect(announcer).to_have_text(re.compile("^Escalated to red: Open flame"), timeout=TIMEOUT_MS)
        expect(page.locator("body")).to_have_attribute("data-announced", "2", timeout=TIMEOUT_MS)
    finally:
        page.close()
        server.stop()
        parts.close()
