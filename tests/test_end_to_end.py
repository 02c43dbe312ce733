"""The spine, end to end with real parts: RTSP camera → ONNX detector → open-flame rule →
alert service (SQLite) → signed webhook to a real HTTP receiver, run as `anjian run`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from anjian.datasets.synthetic import write_demo_video
from anjian.service.benchmarks.service_process import create_token
from anjian.service.webhooks import SIGNATURE_HEADER, verify_signature
from tests.support.receiver import Receiver, unused_port
from tests.support.rtsp import RtspTestServer

PASSWORD = "s3cr3t-pw"
SECRET = "webhook-secret"


@pytest.fixture(scope="module")
def fire_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 s of generated workshop footage; a flame burns from 5 s to 9 s."""
    return write_demo_video(
        tmp_path_factory.mktemp("clips") / "line.mp4", seconds=14, fps=10, size_wh=(480, 270)
    )


def _site_config(tmp_path: Path, camera_url: str, webhook_url: str) -> Path:
    config = {
        "site": {
            "id": "plant-e2e",
            "workshops": [
                {
                    "id": "polishing-1",
                    "kind": "polishing",
                    "cameras": [
                        {
                            "id": "line-1",
                            "name": "Polishing line",
                            "url": camera_url,
                            "analysis_fps": 5,
                            "behaviours": {"open_flame": {"k": 3, "n": 5, "clear_after_s": 3}},
                        }
                    ],
                }
            ],
        },
        "model": {"path": "builtin:anjian-demo"},
        "webhooks": [{"url": webhook_url, "secret": SECRET}],
        "storage": {"dir": str(tmp_path / "data")},
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_rtsp_fire_becomes_stored_event_and_signed_webhook(
    tmp_path: Path,
    fire_clip: Path,
    rtsp_server_factory: Callable[..., RtspTestServer],
    receiver: Receiver,
) -> None:
    server = rtsp_server_factory({"/line": fire_clip}, user="admin", password=PASSWORD)
    site = _site_config(tmp_path, server.url("/line"), receiver.url)
    port = unused_port()
    log_path = tmp_path / "anjian.log"
    env = {**os.environ, "ANJIAN_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    auth = {"Authorization": f"Bearer {create_token(site, 'viewer')}"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "anjian.service", "run", "--config", str(site)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).parents[1],
        )
    try:
        # The clip loops every 14 s with a 4 s flame: an alert must come within one loop or two.
        requests = receiver.wait_for_requests(1, timeout_s=60)
        created = requests[0]
        body = json.loads(created.body)
        assert body["kind"] == "event.created"
        event = body["event"]
        assert event["behaviour"] == "open_flame"
        assert event["camera_id"] == "line-1"
        assert event["site_id"] == "plant-e2e"
        assert event["severity"] == "red"
        assert event["model_version"].startswith("anjian-demo")
        assert any(box["class_name"] == "fire" for box in event["boxes"])
        assert verify_signature(SECRET, created.headers[SIGNATURE_HEADER.lower()], created.body)

        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/events", timeout=5).status_code == 401, "reads need a token"
        listed = httpx.get(f"{base}/events", headers=auth, timeout=5).json()
        assert event["id"] in [item["id"] for item in listed["items"]]
        snapshot = httpx.get(f"{base}{event['snapshot_url']}", headers=auth, timeout=5)
        assert snapshot.status_code == 200
        assert snapshot.headers["content-type"] == "image/jpeg"
        assert snapshot.content[:2] == b"\xff\xd8"
        stored = list((tmp_path / "data" / "evidence").rglob("snapshot.jpg"))
        assert len(stored) == 1 and stored[0].read_bytes() == snapshot.content
    finally:
        process.send_signal(signal.SIGINT)
        try:
            exit_code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            exit_code = process.wait()
    log_text = log_path.read_text(errors="replace")
    assert exit_code == 0, log_text[-3000:]
    assert PASSWORD not in log_text
    assert "***:***@127.0.0.1" in log_text or "line-1" in log_text


@pytest.mark.slow
def test_demo_command_raises_an_alert_on_its_own_footage(tmp_path: Path) -> None:
    """``anjian demo`` serves the demo plant; its first scripted incident (smoking, 15 s in) is raised.

    The footage is written beforehand at a quarter size (the command reuses what it finds), so
    the test measures the demo, not the rendering.
    """
    from anjian.service.demo_site import prepare_demo_site

    prepare_demo_site(tmp_path / "demo", size_wh=(320, 180))
    port = unused_port()
    env = {**os.environ, "ANJIAN_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "anjian.service", "demo", "--dir", str(tmp_path / "demo")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 150
        items: list[dict[str, object]] = []
        while time.monotonic() < deadline and not any(i["behaviour"] == "smoking" for i in items):
            time.sleep(1.0)
            printed = re.search(
                r"operator token \(reads and works alerts\): (anj_\S+)", log_path.read_text(errors="replace")
            )
            if printed is None:
                continue  # the demo prints its token before serving
            try:
                headers = {"Authorization": f"Bearer {printed.group(1)}"}
                items = httpx.get(f"http://127.0.0.1:{port}/events", headers=headers, timeout=2).json()[
                    "items"
                ]
            except httpx.HTTPError:
                continue
        assert items, log_path.read_text(errors="replace")[-3000:]
        smoking = [i for i in items if i["behaviour"] == "smoking"]
        assert smoking, f"{[(i['camera_id'], i['behaviour']) for i in items]}"
        assert smoking[0]["camera_id"] == "polishing-1-cam-1"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
