"""A camera password holding ``/``, ``@`` or ``:`` never surfaces: API, events, webhooks, logs.

A real RTSP server refuses the wrong password (401) and a dead port refuses the
connection, so both error paths run through PyAV and the whole service: the
camera-fault events, their webhook bodies, ``/healthz``, ``/cameras``, ``/events``
and every log record stay free of the password, raw or percent-encoded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from anjian.cameras.health import CameraState
from anjian.service.config import AnjianConfig
from anjian.service.runtime import Runtime, build_runtime
from tests.service.conftest import bearer
from tests.support.receiver import Receiver, unused_port
from tests.support.rtsp import RtspTestServer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

SERVER_PASSWORD = "right-pw-1234"
CAMERA_PASSWORD = "pa/ss@W0rd:x"
LEAKS = (CAMERA_PASSWORD, quote(CAMERA_PASSWORD, safe=""), "W0rd", "pa/ss")


def _config(tmp_path: Path, server: RtspTestServer, webhook_url: str) -> AnjianConfig:
    faults = {"offline_after_s": 0.5, "clear_after_s": 60}
    fast_retry = {"initial_delay_s": 0.2, "max_delay_s": 1.0}
    cameras = [
        {
            "id": "refused-401",
            "url": f"rtsp://admin:{CAMERA_PASSWORD}@127.0.0.1:{server.port}/cam1",
            "faults": faults,
            "reconnect": fast_retry,
        },
        {
            "id": "dead-port",
            "url": f"rtsp://admin:{CAMERA_PASSWORD}@127.0.0.1:{unused_port()}/cam1",
            "faults": faults,
            "reconnect": fast_retry,
        },
    ]
    return AnjianConfig.model_validate(
        {
            "site": {"id": "plant-1", "workshops": [{"id": "ws-1", "cameras": cameras}]},
            "model": {"path": "builtin:anjian-demo"},
            "webhooks": [{"url": webhook_url}],
            "storage": {"dir": str(tmp_path / "data")},
        }
    )


@pytest.fixture
def runtime(
    tmp_path: Path,
    rtsp_server_factory: Callable[..., RtspTestServer],
    test_clip: Path,
    receiver: Receiver,
) -> Iterator[Runtime]:
    server = rtsp_server_factory({"/cam1": test_clip}, user="admin", password=SERVER_PASSWORD)
    runtime = build_runtime(_config(tmp_path, server, receiver.url), with_pipeline=True)
    runtime.start()
    yield runtime
    runtime.stop()


def _assert_clean(where: str, text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{where} shows {leak!r}: {text[:2000]}"


def test_tricky_password_never_surfaces_anywhere(
    runtime: Runtime, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert runtime.app is not None and runtime.parts is not None and runtime.runner is not None
    client = TestClient(runtime.app)
    headers = bearer(runtime.parts.store, "admin")

    def both_faults_delivered() -> bool:
        bodies = [request.body.decode() for request in receiver.requests]
        return all(
            any(f'"camera_id":"{c}"' in b.replace(" ", "") for b in bodies)
            for c in ("refused-401", "dead-port")
        )

    assert wait_for(both_faults_delivered, timeout_s=60), [r.body[:300] for r in receiver.requests]
    states = {h.camera_id: h for h in runtime.runner.health()}
    assert states["refused-401"].state == CameraState.FAILED_CONFIG
    assert "401" in (states["refused-401"].last_error or "")
    assert "connection refused" in (states["dead-port"].last_error or "")

    healthz = client.get("/healthz", headers=headers)
    cameras = client.get("/cameras", headers=headers)
    events = client.get("/events", headers=headers)
    assert cameras.status_code == 200 and events.status_code == 200
    assert {c["camera_id"] for c in cameras.json()} == {"refused-401", "dead-port"}
    assert "rtsp://***:***@127.0.0.1" in cameras.text
    assert {e["behaviour"] for e in events.json()["items"]} == {"camera_fault"}
    for where, text in [
        ("/healthz", healthz.text),
        ("/cameras", cameras.text),
        ("/events", events.text),
        ("webhook bodies", "\n".join(r.body.decode() for r in receiver.requests)),
        ("logs", "\n".join(record.getMessage() for record in caplog.records)),
        ("log tracebacks", caplog.text),
    ]:
        _assert_clean(where, text)
