"""Camera readers against a real RTSP server: served rate, stalls, refusals, one dead among eight."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cameras.camera_set import CameraSet
from cameras.config import CameraConfig
from cameras.health import CameraState
from cameras.source import VideoSource
from tests.support.fixtures import RTSP_PASSWORD, RTSP_USER, TEST_CLIP_FPS
from tests.support.rtsp import RtspTestServer
from tests.support.waiting import seconds_until

pytestmark = pytest.mark.slow

_FAST_RETRY = {"initial_delay_s": 0.2, "max_delay_s": 1.0, "jitter": 0.1}


def _camera(camera_id: str, url: str, **overrides: object) -> CameraConfig:
    settings = {
        "id": camera_id,
        "url": url,
        "analysis_fps": 5,
        "open_timeout_s": 3,
        "stall_timeout_s": 1.5,
        "reconnect": _FAST_RETRY,
    }
    return CameraConfig.model_validate(settings | overrides)


@pytest.mark.parametrize("transport", ["tcp", "udp"], ids=["tcp", "udp"])
def test_reader_delivers_frames_at_the_served_rate(rtsp_server: RtspTestServer, transport: str) -> None:
    source = VideoSource(_camera("cam1", rtsp_server.url("/cam1"), analysis_fps=30, rtsp_transport=transport))
    source.start()
    try:
        frames = []
        while len(frames) < 20 and (frame := source.wait_frame(timeout_s=10)) is not None:
            frames.append(frame)
        health = source.health()
    finally:
        source.stop()
    assert len(frames) == 20
    assert health.state == CameraState.ONLINE and health.reconnects == 0
    pts_rate = 19 / (frames[-1].pts_s - frames[0].pts_s)
    assert pts_rate == pytest.approx(TEST_CLIP_FPS, rel=0.1)
    wall_rate = 19 / (frames[-1].captured_at - frames[0].captured_at)
    assert 0.6 * TEST_CLIP_FPS < wall_rate < 1.6 * TEST_CLIP_FPS  # live: as served, neither bunched nor slow
    assert [f.index for f in frames] == list(range(20))
    assert frames[0].resolution_wh == (320, 240)


def test_hung_server_is_reported_stalled_within_twice_the_timeout(rtsp_server: RtspTestServer) -> None:
    camera = _camera("cam1", rtsp_server.url("/cam1"))
    source = VideoSource(camera)
    source.start()
    try:
        assert source.wait_frame(timeout_s=10) is not None
        rtsp_server.pause()
        detected_s = seconds_until(
            lambda: source.health().state == CameraState.STALLED, 4 * camera.stall_timeout_s
        )
        assert detected_s is not None, f"never stalled: {source.health()}"
        assert detected_s <= 2 * camera.stall_timeout_s
        assert "no frame" in (source.health().last_error or "") or "no data" in (
            source.health().last_error or ""
        )
        rtsp_server.resume()
        assert seconds_until(lambda: source.health().state == CameraState.ONLINE, 10) is not None
    finally:
        rtsp_server.resume()
        source.stop()


def test_camera_is_back_soon_after_its_server_not_at_the_end_of_a_long_backoff(
    rtsp_server: RtspTestServer,
) -> None:
    # Delays of 10 s then 100 s: without the port probe the camera would next be opened
    # 110 s after the outage began, 90 s after the server is back.
    slow_backoff = {"initial_delay_s": 10, "multiplier": 10, "max_delay_s": 600, "jitter": 0}
    source = VideoSource(_camera("cam1", rtsp_server.url("/cam1"), reconnect=slow_backoff))
    source.start()
    try:
        assert seconds_until(lambda: source.health().state == CameraState.ONLINE, 20) is not None
        rtsp_server.stop()
        assert seconds_until(lambda: source.health().state != CameraState.ONLINE, 20) is not None
        time.sleep(20)  # the outage
        opens_while_down = source.health().reconnects
        rtsp_server.start()  # same port
        back_s = seconds_until(lambda: source.health().state == CameraState.ONLINE, 60)
        health = source.health()
    finally:
        source.stop()
    assert back_s is not None, f"not back within 60 s of its server (waiting out the backoff?): {health}"
    assert opens_while_down <= 3, f"{opens_while_down} full opens in a 20 s outage"
    assert health.reconnects <= opens_while_down + 2


@pytest.mark.parametrize(
    "password", ["pa/ssW0rd", "p@ss@W0rd", "p:a/s@s?W#0rd%"], ids=["slash", "ats", "all"]
)
def test_password_with_slashes_and_ats_reaches_the_camera_as_written(
    rtsp_server_factory: Callable[..., RtspTestServer], test_clip: Path, password: str
) -> None:
    server = rtsp_server_factory({"/cam1": test_clip}, user="admin", password=password)
    source = VideoSource(_camera("cam1", f"rtsp://admin:{password}@127.0.0.1:{server.port}/cam1"))
    source.start()
    try:
        assert source.wait_frame(timeout_s=20) is not None, source.health()
        health = source.health()
    finally:
        source.stop()
    assert health.reconnects == 0 and "W0rd" not in repr(health)


@pytest.mark.parametrize(
    ("make_url", "reason"),
    [
        (lambda server: server.url("/cam1").replace(RTSP_PASSWORD, "wrong-pw"), "401"),
        (lambda server: server.url("/no-such-camera"), "404"),
        (lambda server: f"rtsp://{RTSP_USER}:{RTSP_PASSWORD}@camera-7.invalid:554/cam1", "unknown host"),
    ],
    ids=["wrong-credentials-401", "wrong-path-404", "unknown-host"],
)
def test_refusals_are_clear_config_failures_retried_without_crash(
    rtsp_server: RtspTestServer, make_url: Callable[[RtspTestServer], str], reason: str
) -> None:
    source = VideoSource(
        _camera("cam1", make_url(rtsp_server), reconnect={"initial_delay_s": 0.1, "max_delay_s": 0.3})
    )
    source.start()
    try:
        assert seconds_until(lambda: source.health().reconnects >= 2, 10) is not None
        health = source.health()
        assert health.state == CameraState.FAILED_CONFIG
        assert reason in (health.last_error or "")
        assert not source.is_finished  # still retrying, slowly: the camera may be fixed on its side
    finally:
        source.stop()
    for text in (repr(health), health.last_error or ""):
        assert RTSP_PASSWORD not in text and "wrong-pw" not in text


def test_one_dead_camera_of_eight_does_not_slow_the_other_seven(
    rtsp_server_factory: Callable[..., RtspTestServer], test_clip: Path
) -> None:
    healthy = rtsp_server_factory({f"/cam{i}": test_clip for i in range(1, 8)})
    doomed = rtsp_server_factory({"/cam8": test_clip})
    cameras = CameraSet()
    cameras.apply(
        [_camera(f"cam{i}", healthy.url(f"/cam{i}")) for i in range(1, 8)]
        + [_camera("cam8", doomed.url("/cam8"))]
    )
    cameras.start()
    try:
        all_online = seconds_until(lambda: all(h.state == CameraState.ONLINE for h in cameras.health()), 20)
        assert all_online is not None, cameras.health()
        doomed.kill()
        before = {h.camera_id: h.frames_delivered for h in cameras.health()}
        window_s = 3.0
        time.sleep(window_s)
        after = {h.camera_id: h for h in cameras.health()}
    finally:
        cameras.stop()
    assert after["cam8"].state in (CameraState.OFFLINE, CameraState.STALLED)
    for camera_id in (f"cam{i}" for i in range(1, 8)):
        delivered = after[camera_id].frames_delivered - before[camera_id]
        assert delivered >= 0.6 * 5 * window_s, f"{camera_id} slowed down: {delivered} frames in {window_s}s"
        assert after[camera_id].state == CameraState.ONLINE and after[camera_id].reconnects == 0
