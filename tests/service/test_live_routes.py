"""The live view's routes: the latest frame with an ETag (a wall polls it), MJPEG for one screen, 404 on serve.

An MJPEG stream ends once its token is revoked or its session cookie expires.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.live import LiveView
from anjian.service.api import live as live_module
from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from tests.service.conftest import bearer, make_config
from tests.service.server import ServerThread


def _frame(index: int) -> Frame:
    image = np.full((180, 320, 3), 40 + index, dtype=np.uint8)
    return Frame(
        camera_id="cam-1", image=image, captured_at=1_800_000_000.0 + index, pts_s=float(index), index=index
    )


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[TestClient, LiveView]]:
    view = LiveView()
    config = make_config(tmp_path / "data")
    parts = build_service_parts(config, live_view=view)
    app = create_app(config, parts)
    client = TestClient(app, headers=bearer(parts.store, "viewer"))
    yield client, view
    parts.close()


def test_the_latest_frame_comes_with_an_etag_and_an_unchanged_one_is_a_304(
    live: tuple[TestClient, LiveView],
) -> None:
    client, view = live
    assert client.get("/cameras/cam-1/live.jpg").status_code == 404  # no frame yet
    view.update(_frame(0), Detections.empty({0: "person"}))

    first = client.get("/cameras/cam-1/live.jpg")
    again = client.get("/cameras/cam-1/live.jpg", headers={"If-None-Match": first.headers["etag"]})
    view.update(_frame(1), Detections.empty({0: "person"}))
    newer = client.get("/cameras/cam-1/live.jpg", headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert first.content[:2] == b"\xff\xd8"
    assert again.status_code == 304 and again.content == b""
    assert newer.status_code == 200 and newer.headers["etag"] != first.headers["etag"]
    assert view.renders == 2


def test_mjpeg_sends_the_frame_as_a_multipart_part(live: tuple[TestClient, LiveView]) -> None:
    client, view = live
    view.update(_frame(0), Detections.empty({0: "person"}))

    with client.stream("GET", "/cameras/cam-1/live.mjpeg", params={"fps": 10}) as response:
        assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
        head = next(response.iter_bytes())

    assert head.startswith(b"--anjian-frame\r\nContent-Type: image/jpeg\r\n")


def test_a_service_that_reads_no_cameras_says_where_the_live_view_is(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data"))
    client = TestClient(app, headers=bearer(app.state.store, "viewer"))
    try:
        response = client.get("/cameras/cam-1/live.jpg")
    finally:
        app.state.sink.stop()
        app.state.store.close()

    assert response.status_code == 404
    assert "reads no cameras itself" in response.json()["detail"]


@pytest.fixture
def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ServerThread, FastAPI, LiveView]]:
    """The live view under a real server, its MJPEG streams checking their caller every 0.1 s."""
    monkeypatch.setattr(live_module, "_RECHECK_S", 0.1)
    view = LiveView()
    config = make_config(tmp_path / "data")
    parts = build_service_parts(config, live_view=view)
    app = create_app(config, parts)
    server = ServerThread(app).start()
    yield server, app, view
    server.stop()
    parts.close()


@pytest.mark.parametrize("by_cookie", [True, False], ids=["session-cookie", "bearer"])
def test_revoking_the_token_ends_its_open_mjpeg_stream(
    served: tuple[ServerThread, FastAPI, LiveView], by_cookie: bool
) -> None:
    """A revoked viewer (a former employee, a leaked token) kept watching the camera for as long as the
    connection stayed open: the stream checked its caller only when it started."""
    server, app, view = served
    token, secret = app.state.store.tokens.create("wall screen", "viewer")
    viewer = {"Authorization": f"Bearer {secret}"}
    view.update(_frame(0), Detections.empty({0: "person"}))

    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        if by_cookie:
            client.post("/auth/session", headers=viewer).raise_for_status()
        headers = {} if by_cookie else viewer
        with client.stream(
            "GET", "/cameras/cam-1/live.mjpeg", params={"fps": 10}, headers=headers
        ) as response:
            parts = response.iter_bytes()
            assert next(parts).startswith(b"--anjian-frame\r\n")
            app.state.store.tokens.revoke(token.id)
            view.update(_frame(1), Detections.empty({0: "person"}))
            rest = b"".join(parts)  # a stream that goes on times out here (ReadTimeout)
        again = client.get("/cameras/cam-1/live.mjpeg", headers=headers)

    assert rest.count(b"--anjian-frame") <= 1, "at most the frame analysed before the check"
    assert again.status_code == 401


def test_the_mjpeg_stream_ends_when_its_session_expires_though_a_proxy_sends_basic_auth(
    served: tuple[ServerThread, FastAPI, LiveView], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a reverse proxy with HTTP Basic auth the browser sends ``Authorization: Basic`` next to the
    cookie: the stream is admitted by the cookie, and so must end when the cookie expires."""
    server, app, view = served
    view.update(_frame(0), Detections.empty({0: "person"}))
    proxy_basic = {"Authorization": "Basic dXNlcjpwYXNz"}

    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        client.post("/auth/session", headers=bearer(app.state.store, "viewer")).raise_for_status()
        with client.stream(
            "GET", "/cameras/cam-1/live.mjpeg", params={"fps": 10}, headers=proxy_basic
        ) as response:
            assert response.status_code == 200
            parts = response.iter_bytes()
            assert next(parts).startswith(b"--anjian-frame\r\n")
            later = time.time() + app.state.sessions.ttl_s + 1
            monkeypatch.setattr(app.state.sessions, "_clock", lambda: later)
            b"".join(parts)  # a stream that goes on times out here (ReadTimeout)
