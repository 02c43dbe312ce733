"""Pytest fixtures for camera tests: a synthetic clip and a real RTSP server serving it.

Load them from ``tests/conftest.py`` with
``pytest_plugins = ["tests.support.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.clips import make_test_clip
from tests.support.rtsp import RtspTestServer, rtsp_server_available

__all__ = [
    "RTSP_PASSWORD",
    "RTSP_USER",
    "TEST_CLIP_FPS",
    "TEST_CLIP_SECONDS",
    "rtsp_server",
    "rtsp_server_factory",
    "test_clip",
]

RTSP_USER = "admin"
RTSP_PASSWORD = "s3cr3t-pw"
TEST_CLIP_SECONDS = 4.0
TEST_CLIP_FPS = 10


@pytest.fixture(scope="session")
def test_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s, 10 fps, 320x240 H.264 MP4 of a box moving over a textured background."""
    path = tmp_path_factory.mktemp("clips") / "moving-box-4s-10fps.mp4"
    return make_test_clip(path, seconds=TEST_CLIP_SECONDS, fps=TEST_CLIP_FPS, size_wh=(320, 240))


@pytest.fixture
def rtsp_server_factory() -> Iterator[Callable[..., RtspTestServer]]:
    """Start RTSP test servers on demand; every one is stopped after the test.

    Call it as ``rtsp_server_factory({"/cam1": clip_path}, user=..., password=...)``
    (keyword arguments as for ``RtspTestServer``); it returns the started server.
    Skips the test when the server cannot run here.
    """
    is_available, reason = rtsp_server_available()
    if not is_available:
        pytest.skip(f"RTSP test server unavailable: {reason}")
    servers: list[RtspTestServer] = []

    def start(mounts: Mapping[str, str | Path], **kwargs: Any) -> RtspTestServer:
        server = RtspTestServer(mounts, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def rtsp_server(rtsp_server_factory: Callable[..., RtspTestServer], test_clip: Path) -> RtspTestServer:
    """A running RTSP server serving ``test_clip`` at ``/cam1``, as admin / s3cr3t-pw."""
    return rtsp_server_factory({"/cam1": test_clip}, user=RTSP_USER, password=RTSP_PASSWORD)
