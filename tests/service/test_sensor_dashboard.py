"""The control room shows a sensor alert's trend chart beside the live view of the camera watching the sensor."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.live import LiveView
from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from anjian.service.config import AnjianConfig
from tests.service.conftest import make_config
from tests.service.server import ServerThread
from tests.service.test_dashboard import TIMEOUT_MS, _keep_screenshot, _watch
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def _site(data_dir: Path) -> AnjianConfig:
    config = make_config(data_dir, camera_ids=("line-1",))
    data = config.model_dump(mode="python")
    data["site"]["workshops"][0]["sensors"] = [
        {
            "id": "h2-1",
            "name": "Hydrogen, polishing line",
            "quantity": "hydrogen",
            "unit": "%LEL",
            "source": {"kind": "http"},
            "thresholds": {"yellow": 10, "orange": 20, "red": 25, "min_duration_s": 0, "clear_after_s": 60},
            "camera_ids": ["line-1"],
        }
    ]
    return AnjianConfig.model_validate(data)


def test_a_sensor_alert_shows_its_trend_with_its_limits_beside_the_linked_cameras_live_view(
    tmp_path: Path, browser: object
) -> None:
    live = LiveView()
    image = np.zeros((360, 640, 3), np.uint8)
    image[:, :, 2] = 180
    live.update(Frame("line-1", image, captured_at=time.time(), pts_s=0.0, index=0), Detections.empty())
    config = _site(tmp_path / "data")
    parts = build_service_parts(config, live_view=live)
    app = create_app(config, parts)
    parts.start()
    store = parts.store
    operator = store.tokens.create("duty officer", "operator")[1]
    pipeline = {"Authorization": f"Bearer {store.tokens.create('gateway', 'pipeline')[1]}"}
    server = ServerThread(app).start()
    expect = pytest.importorskip("playwright.sync_api").expect
    page = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
    console, requested = _watch(page)
    try:
        now = time.time()
        values = [4.0, 5.0, 5.5, 6.0, 8.0, 12.0, 18.0, 23.0, 27.0, 31.0, 29.0, 26.0]
        readings = [{"sensor_id": "h2-1", "value": v, "at": now - 110 + 10 * i} for i, v in enumerate(values)]
        response = httpx.post(
            f"{server.base_url}/ingest/readings", json={"readings": readings}, headers=pipeline
        )
        assert response.json() == {"accepted": 12, "refused": []}
        assert wait_for(lambda: any(e.severity == "red" for e in store.list_events().items), 20)
        parts.readings.flush()  # type: ignore[union-attr]
        (alarm,) = store.list_events().items

        page.goto(f"{server.base_url}/#token={operator}")
        page.locator(f".event-row[data-id='{alarm.id}']").click(timeout=TIMEOUT_MS)
        trend = page.locator("#detail-trend")
        expect(trend).to_be_visible(timeout=TIMEOUT_MS)
        expect(trend).to_have_attribute("data-sensor", "h2-1", timeout=TIMEOUT_MS)
        chart = page.locator("#detail-trend-chart")
        expect(chart).to_have_attribute("data-points", "12", timeout=TIMEOUT_MS)
        expect(chart.locator("polyline.line")).to_have_count(1)
        expect(chart.locator("line.limit")).to_have_count(3)
        expect(chart.locator("line.limit.red")).to_have_count(1)
        expect(page.locator("#detail-trend-caption")).to_have_text("hydrogen (%LEL) around the alert")
        expect(page.locator("#detail-title")).to_have_text("Sensor threshold · Hydrogen, polishing line")
        expect(page.locator("#detail-facts")).to_contain_text("Peak31 %LEL")
        expect(page.locator("#detail-facts")).to_contain_text("Limit crossed25 %LEL")
        expect(page.locator("#detail-facts")).not_to_contain_text("Confidence")
        expect(page.locator("#detail-live")).to_have_js_property("naturalWidth", 640, timeout=TIMEOUT_MS)
        expect(page.locator("#detail-snapshot")).to_have_js_property("naturalWidth", 640, timeout=TIMEOUT_MS)
        _keep_screenshot(page, tmp_path, "dashboard-sensor-trend.png")
    finally:
        page.close()
        server.stop()
        parts.close()

    assert [m for m in console if "Content Security Policy" in m] == []
    assert any("/sensors/h2-1/readings?" in url for url in requested)
