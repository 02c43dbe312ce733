"""The dashboard and the API docs in headless Chromium (Debian's, driven by Playwright).

The dashboard: live feed, lifecycle buttons, camera grid, media through the
session cookie (no token in any URL), nothing blocked by the Content-Security-Policy.
The docs: Swagger UI and ReDoc render from the service's own assets (the browser
here reaches no CDN). Set ``ANJIAN_SCREENSHOT_DIR`` to keep the screenshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from anjian.cameras.health import CameraHealth, CameraState
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.event_json import event_to_json
from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from anjian.service.config import AnjianConfig
from tests.factories import make_event, make_jpeg
from tests.service.conftest import make_config
from tests.service.server import ServerThread

pytestmark = pytest.mark.slow

TIMEOUT_MS = 20_000


def _watch(page: Any) -> tuple[list[str], list[str]]:
    """Lists that fill with the page's console messages and the URLs it requests."""
    console: list[str] = []
    requested: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.on("request", lambda request: requested.append(request.url))
    return console, requested


def test_operator_sees_a_new_alert_live_and_works_it_through_the_buttons(
    tmp_path: Path, browser: object
) -> None:
    cameras = [
        CameraHealth(camera_id="line-1", state=CameraState.ONLINE, since=1_700_000_000.0, fps=5.0),
        CameraHealth(camera_id="line-2", state=CameraState.OFFLINE, since=1_700_000_000.0, reconnects=3),
    ]
    config = make_config(tmp_path / "data", camera_ids=("line-1", "line-2", "line-3"))
    parts = build_service_parts(config, camera_health=lambda: cameras)
    line_3 = CameraHealth(camera_id="line-3", state=CameraState.ONLINE, since=1_700_000_000.0, fps=5.0)
    parts.camera_health.record("node-b", 0.001, [line_3])  # a node elsewhere, silent since
    app = create_app(config, parts)
    parts.start()  # the caller owns the parts it passes in
    store = parts.store
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
    console, requested = _watch(page)
    try:
        page.goto(f"{server.base_url}/#token={operator}")
        page.wait_for_selector("#live-status:text('live')", timeout=TIMEOUT_MS)
        assert "token=" not in page.url, "the token leaves the address bar"
        page.wait_for_selector(f".event-row[data-id='{older.id}']", timeout=TIMEOUT_MS)
        page.wait_for_selector(".camera[data-camera='line-2'].offline", timeout=TIMEOUT_MS)
        silent = page.locator(".camera[data-camera='line-3'].stale")
        silent.wait_for(timeout=TIMEOUT_MS)
        assert "not reporting" in silent.inner_text() and "node node-b" in silent.inner_text()

        event = make_event(
            camera_id="line-1",
            message="Open flame in zone-a on line-1",
            snapshot_jpeg=make_jpeg(320, 180, (0, 80, 255)),
            track_id=7,
        )
        httpx.post(
            f"{server.base_url}/ingest/events", json=event_to_json(event), headers=pipeline
        ).raise_for_status()

        row = page.locator(f".event-row[data-id='{event.id}']")  # rows are redrawn: a locator retries
        row.wait_for(timeout=TIMEOUT_MS)
        assert "sev-red" in (row.get_attribute("class") or "")
        row.click(timeout=TIMEOUT_MS)
        page.wait_for_selector(f"#detail[data-id='{event.id}']", timeout=TIMEOUT_MS)
        expect = pytest.importorskip("playwright.sync_api").expect
        # Locator assertions, not wait_for_function: its string predicate is eval'd in the page,
        # which the dashboard's Content-Security-Policy (rightly) forbids once it has to poll.
        expect(page.locator("#detail-snapshot")).to_have_js_property("naturalWidth", 320, timeout=TIMEOUT_MS)
        expect(page.locator("#detail-facts")).to_contain_text("Tracked object#7")  # the rules' track id
        assert page.is_disabled("button[data-action='resolve']"), "resolve is not allowed while raised"

        page.click("button[data-action='acknowledge']")
        page.wait_for_selector("#detail-state:text('acknowledged')", timeout=TIMEOUT_MS)
        page.fill("#note", "Flame put out with extinguisher; hot-work permit checked")
        page.click("button[data-action='resolve']")
        page.wait_for_selector("#detail-state:text('resolved')", timeout=TIMEOUT_MS)
        page.wait_for_selector(
            f".event-row[data-id='{event.id}'] .state:text('resolved')", timeout=TIMEOUT_MS
        )
        expect(page.locator("#audit tr")).to_have_count(3, timeout=TIMEOUT_MS)
        screenshot = tmp_path / "dashboard.png"
        page.screenshot(path=str(screenshot), full_page=True)
        trail = store.audit_trail(event.id)
    finally:
        page.close()
        server.stop()
        parts.close()

    assert [(a.actor, a.action) for a in trail] == [
        ("pipeline", "raise"),
        ("duty officer", "acknowledge"),
        ("duty officer", "resolve"),
    ]
    assert trail[-1].note == "Flame put out with extinguisher; hot-work permit checked"
    assert [m for m in console if "Content Security Policy" in m] == []
    assert [url for url in requested if operator in url or "access_token" in url] == [], "no token in a URL"
    assert any(url.endswith(f"/events/{event.id}/snapshot.jpg?v=1") for url in requested)
    keep = os.environ.get("ANJIAN_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / "dashboard.png")
    assert screenshot.stat().st_size > 10_000


def test_the_queue_puts_what_needs_a_person_first_and_the_keys_work_it(
    tmp_path: Path, browser: object
) -> None:
    app = create_app(make_config(tmp_path / "data", camera_ids=("line-1", "line-2", "line-3")))
    store = app.state.store
    operator = store.tokens.create("duty officer", "operator")[1]
    pipeline = {"Authorization": f"Bearer {store.tokens.create('pipeline', 'pipeline')[1]}"}
    t0 = 1_700_000_000.0
    newest_handled = make_event(
        camera_id="line-3", severity=RiskLevel.ORANGE, started_at=t0 + 50, last_seen_at=t0 + 51
    )
    ended_yellow = make_event(
        camera_id="line-2", severity=RiskLevel.YELLOW, started_at=t0, last_seen_at=t0 + 1, ended_at=t0 + 5
    )
    flame_repeats = [
        make_event(camera_id="line-1", severity=RiskLevel.RED, started_at=t0 + i, last_seen_at=t0 + i + 1)
        for i in (10, 20, 30)
    ]
    blue = make_event(
        camera_id="line-2",
        behaviour=Behaviour.SMOKING,
        severity=RiskLevel.BLUE,
        started_at=t0 + 40,
        last_seen_at=t0 + 41,
    )
    for event in (newest_handled, ended_yellow, *flame_repeats, blue):
        store.upsert_event(event)
    server = ServerThread(app).start()
    operator_headers = {"Authorization": f"Bearer {operator}"}
    httpx.post(
        f"{server.base_url}/events/{newest_handled.id}/acknowledge",
        json={"note": ""},
        headers=operator_headers,
    ).raise_for_status()
    page = browser.new_page(viewport={"width": 1440, "height": 900})  # type: ignore[attr-defined]
    console, _ = _watch(page)
    expect = pytest.importorskip("playwright.sync_api").expect
    try:
        page.goto(f"{server.base_url}/#token={operator}")
        page.wait_for_selector("#live-status:text('live')", timeout=TIMEOUT_MS)
        rows = page.locator(".event-row")
        # Unacknowledged first, by colour (red folded x3, yellow although it ended, blue), then the acknowledged one.
        expect(rows).to_have_count(4, timeout=TIMEOUT_MS)
        assert rows.evaluate_all("rs => rs.map(r => [r.dataset.id, r.dataset.count])") == [
            [flame_repeats[0].id, "3"],
            [ended_yellow.id, "1"],
            [blue.id, "1"],
            [newest_handled.id, "1"],
        ]
        assert "ended" in rows.nth(1).inner_text() and "ongoing" in rows.nth(2).inner_text()
        assert [page.inner_text(f"#count-{c}") for c in ("red", "orange", "yellow", "blue")] == [
            "3",
            "0",
            "1",
            "1",
        ]
        expect(page).to_have_title("(5) anjian · control room", timeout=TIMEOUT_MS)

        page.keyboard.press("j")  # the first row: the oldest of the three red repeats
        page.wait_for_selector(f"#detail[data-id='{flame_repeats[0].id}']", timeout=TIMEOUT_MS)
        page.keyboard.press("a")
        page.wait_for_selector("#detail-state:text('acknowledged')", timeout=TIMEOUT_MS)
        expect(page).to_have_title("(4) anjian · control room", timeout=TIMEOUT_MS)
        expect(rows.first).to_have_attribute("data-count", "2", timeout=TIMEOUT_MS)
        expect(rows.first).to_have_attribute("data-id", flame_repeats[1].id)

        page.keyboard.press("m")
        expect(page.locator("#mute")).to_have_attribute("aria-pressed", "true")
        quiet = make_event(
            camera_id="line-3", severity=RiskLevel.RED, started_at=t0 + 60, last_seen_at=t0 + 61
        )
        httpx.post(
            f"{server.base_url}/ingest/events", json=event_to_json(quiet), headers=pipeline
        ).raise_for_status()
        expect(rows.nth(1)).to_have_attribute("data-id", quiet.id, timeout=TIMEOUT_MS)
        assert page.get_attribute("body", "data-announced") is None, "muted: no tone for a new red"
        page.keyboard.press("m")
        loud = make_event(
            camera_id="line-2", severity=RiskLevel.RED, started_at=t0 + 70, last_seen_at=t0 + 71
        )
        httpx.post(
            f"{server.base_url}/ingest/events", json=event_to_json(loud), headers=pipeline
        ).raise_for_status()
        expect(page.locator("body")).to_have_attribute("data-announced", "1", timeout=TIMEOUT_MS)
        expect(page).to_have_title("(6) anjian · control room", timeout=TIMEOUT_MS)
        _keep_screenshot(page, tmp_path, "dashboard-queue.png")
    finally:
        page.close()
        server.stop()
        store.close()

    assert [m for m in console if "Content Security Policy" in m] == []


def test_a_false_alarm_takes_one_step_with_a_reason_and_a_viewer_sees_read_only(
    tmp_path: Path, browser: object
) -> None:
    app = create_app(make_config(tmp_path / "data", camera_ids=("line-1",)))
    store = app.state.store
    operator = store.tokens.create("duty officer", "operator")[1]
    viewer = store.tokens.create("visitor", "viewer")[1]
    glare = make_event(camera_id="line-1", message="Open flame in zone-a on line-1")
    store.upsert_event(glare)
    server = ServerThread(app).start()
    expect = pytest.importorskip("playwright.sync_api").expect
    page = browser.new_page(viewport={"width": 1440, "height": 900})  # type: ignore[attr-defined]
    try:
        page.goto(f"{server.base_url}/#token={viewer}")
        page.locator(f".event-row[data-id='{glare.id}']").click(
            timeout=TIMEOUT_MS
        )  # rows are redrawn: a locator retries
        page.wait_for_selector(f"#detail[data-id='{glare.id}']", timeout=TIMEOUT_MS)
        expect(page.locator("#actions")).to_have_class("actions read-only", timeout=TIMEOUT_MS)
        for action in ("acknowledge", "false_alarm"):
            assert page.is_disabled(f"button[data-action='{action}']"), f"a viewer cannot {action}"
        assert "viewer" in page.inner_text("#whoami")

        page.goto("about:blank")
        page.goto(
            f"{server.base_url}/#token={operator}&event={glare.id}"
        )  # a robot card's link opens the alert
        page.wait_for_selector(f"#detail[data-id='{glare.id}']", timeout=TIMEOUT_MS)
        box = page.locator("button[data-action='false_alarm']").bounding_box()
        assert box is not None and box["y"] + box["height"] <= 900, (
            "the action bar is visible without scrolling"
        )
        page.select_option("#false-reason", "reflection")
        page.fill("#note", "sunlight on the polished drum")
        page.click("button[data-action='false_alarm']")
        page.wait_for_selector("#detail-state:text('false alarm')", timeout=TIMEOUT_MS)
        _keep_screenshot(page, tmp_path, "dashboard-false-alarm.png")
        trail = store.audit_trail(glare.id)
        stored = store.get_event(glare.id)
    finally:
        page.close()
        server.stop()
        store.close()

    assert [(a.actor, a.action, a.note) for a in trail][1:] == [
        ("duty officer", "false_alarm", "reflection: sunlight on the polished drum")
    ]
    assert stored is not None and stored.acknowledged_at is not None, "leaving raised counts as acknowledged"


def _named_site(data_dir: Path) -> AnjianConfig:
    """A site whose workshop, cameras and zone carry Chinese names."""
    return AnjianConfig.model_validate(
        {
            "site": {
                "id": "site-1",
                "name": "华东抛光厂",
                "workshops": [
                    {
                        "id": "polishing-1",
                        "name": "一号抛光车间",
                        "cameras": [
                            {
                                "id": "cam-1",
                                "name": "抛光线东侧",
                                "url": "rtsp://admin:secret@127.0.0.1:9/cam-1",
                                "zones": [
                                    {"id": "zone-a", "name": "打磨工位", "polygon": [[0, 0], [1, 0], [1, 1]]}
                                ],
                            }
                        ],
                    }
                ],
            },
            "storage": {"dir": str(data_dir)},
        }
    )


def test_a_chinese_browser_gets_chinese_with_the_sites_names_and_can_switch(
    tmp_path: Path, browser: object
) -> None:
    app = create_app(_named_site(tmp_path / "data"))
    store = app.state.store
    operator = store.tokens.create("值班员", "operator")[1]
    event = make_event()
    store.upsert_event(event)
    server = ServerThread(app).start()
    expect = pytest.importorskip("playwright.sync_api").expect
    context = browser.new_context(locale="zh-CN", viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    page = context.new_page()
    console, _ = _watch(page)
    try:
        page.goto(f"{server.base_url}/#token={operator}")
        page.wait_for_selector("#live-status:text('实时')", timeout=TIMEOUT_MS)
        row = page.locator(f".event-row[data-id='{event.id}']")
        expect(row).to_contain_text("明火", timeout=TIMEOUT_MS)
        expect(row).to_contain_text("一号抛光车间 · 抛光线东侧")
        expect(row).to_contain_text("待确认")
        row.click()
        expect(page.locator("#detail-facts")).to_contain_text("打磨工位", timeout=TIMEOUT_MS)
        expect(page.locator("button[data-action='acknowledge']")).to_have_text("确认")
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        _keep_screenshot(page, tmp_path, "dashboard-zh-1920.png")

        page.select_option("#language", "en")
        expect(page.locator("button[data-action='acknowledge']")).to_have_text("Acknowledge")
        expect(row).to_contain_text("Open flame")
        expect(row).to_contain_text("一号抛光车间 · 抛光线东侧")  # names stay as the site wrote them
        page.reload()
        expect(page.locator("button[data-action='acknowledge']")).to_have_text(
            "Acknowledge", timeout=TIMEOUT_MS
        )
    finally:
        context.close()
        server.stop()
        store.close()

    assert [m for m in console if "Content Security Policy" in m] == []


def test_the_camera_wall_and_the_alert_show_the_live_frame(tmp_path: Path, browser: object) -> None:
    import numpy as np

    from anjian.cameras.frame import Frame
    from anjian.models.detections import Detections
    from anjian.pipeline.live import LiveView

    live = LiveView()
    image = np.zeros((360, 640, 3), np.uint8)
    image[:, :, 1] = 160
    boxes = Detections(
        xyxy=np.array([[200, 100, 400, 300]], np.float32),
        confidence=np.array([0.8], np.float32),
        class_id=np.array([0], np.int32),
        class_names={0: "person"},
    )
    live.update(
        Frame(camera_id="line-1", image=image, captured_at=1_800_000_000.0, pts_s=0.0, index=0), boxes
    )
    config = make_config(tmp_path / "data", camera_ids=("line-1",))
    health = [CameraHealth(camera_id="line-1", state=CameraState.ONLINE, since=1_700_000_000.0, fps=5.0)]
    parts = build_service_parts(config, camera_health=lambda: health, live_view=live)
    app = create_app(config, parts)
    parts.start()
    store = parts.store
    operator = store.tokens.create("duty officer", "operator")[1]
    event = make_event(camera_id="line-1")
    store.upsert_event(event)
    server = ServerThread(app).start()
    expect = pytest.importorskip("playwright.sync_api").expect
    page = browser.new_page(viewport={"width": 1440, "height": 900})  # type: ignore[attr-defined]
    console, _ = _watch(page)
    try:
        page.goto(f"{server.base_url}/#token={operator}")
        thumb = page.locator("img.thumb[data-camera='line-1']")
        expect(thumb).to_have_js_property("naturalWidth", 640, timeout=TIMEOUT_MS)
        page.locator(f".event-row[data-id='{event.id}']").click(timeout=TIMEOUT_MS)
        expect(page.locator("#detail-live")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator("#detail-live")).to_have_js_property("naturalWidth", 640, timeout=TIMEOUT_MS)
        _keep_screenshot(page, tmp_path, "dashboard-live.png")
    finally:
        page.close()
        server.stop()
        parts.close()

    assert [m for m in console if "Content Security Policy" in m] == []
    assert live.renders == 1, "the wall and the alert pane shared one drawing of the frame"


def _keep_screenshot(page: Any, tmp_path: Path, name: str) -> None:
    """Save a full-page screenshot, also under $ANJIAN_SCREENSHOT_DIR when set (test artefacts)."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    keep = os.environ.get("ANJIAN_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / name)


@pytest.mark.parametrize(
    ("path", "rendered"),
    [("/docs", ".swagger-ui .opblock"), ("/redoc", "[data-section-id]")],
    ids=["swagger-ui", "redoc"],
)
def test_api_docs_render_offline_under_their_content_security_policy(
    tmp_path: Path, browser: object, path: str, rendered: str
) -> None:
    app = create_app(make_config(tmp_path / "data"))
    server = ServerThread(app).start()
    page = browser.new_page()  # type: ignore[attr-defined]
    console, requested = _watch(page)
    try:
        page.goto(f"{server.base_url}{path}")
        page.wait_for_selector(rendered, timeout=TIMEOUT_MS)
    finally:
        page.close()
        server.stop()
        app.state.store.close()

    # ReDoc's sidebar always shows Redocly's logo from their CDN: the policy blocks it (and it hides itself).
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [m for m in console if "Content Security Policy" in m and logo not in m] == []
    own = (server.base_url, f"blob:{server.base_url}/")  # ReDoc's search worker is a same-origin blob
    assert [url for url in requested if not url.startswith(own) and url != logo] == [], "nothing from a CDN"
