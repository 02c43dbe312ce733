"""The RTSP server of the tests and the reconnect bench is a real camera stand-in: live rate, looping timestamps, auth, faults.

Clients are PyAV from the venv, opened the way camera code opens real cameras.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import av.container
import pytest

from anjian.service.benchmarks.clips import write_synthetic_clip
from anjian.service.benchmarks.rtsp import RtspTestServer
from tests.support.fixtures import RTSP_PASSWORD, RTSP_USER, TEST_CLIP_FPS

pytestmark = pytest.mark.slow

_OPEN_OPTIONS = {"rtsp_transport": "tcp", "timeout": "5000000"}


def _open(url: str) -> av.container.InputContainer:
    """Open an RTSP URL over TCP with a 5 s socket timeout."""
    return av.open(url, options=_OPEN_OPTIONS)


def _time_base_s(stream: av.VideoStream) -> float:
    """Return the stream's time base in seconds per pts tick."""
    assert stream.time_base is not None
    return float(stream.time_base)


def _frames_with_arrival(container: av.container.InputContainer) -> Iterator[tuple[int | None, float]]:
    """Yield (pts, monotonic arrival time) for each decoded video frame."""
    for frame in container.decode(video=0):
        yield frame.pts, time.monotonic()


def test_rtsp_server_streams_clip_at_its_frame_rate(rtsp_server: RtspTestServer) -> None:
    started_s = time.monotonic()
    with _open(rtsp_server.url("/cam1")) as container:
        opened_s = time.monotonic()
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 320, 240)
        pts_list: list[int | None] = []
        for pts, arrived_s in _frames_with_arrival(container):
            pts_list.append(pts)
            if arrived_s - opened_s >= 2.5:
                break
        elapsed_s = time.monotonic() - started_s
        time_base = _time_base_s(stream)

    # Frames flow from the first request on, so by now about fps * elapsed arrived.
    assert len(pts_list) >= 20
    assert len(pts_list) <= TEST_CLIP_FPS * elapsed_s + 3, "frames arrive faster than real time"
    stamped = [pts for pts in pts_list if pts is not None]
    mean_step_s = (stamped[-1] - stamped[0]) * time_base / (len(stamped) - 1)
    assert mean_step_s == pytest.approx(1 / TEST_CLIP_FPS, rel=0.05)


def test_rtsp_server_timestamps_increase_across_loop_point(
    rtsp_server_factory: Callable[..., RtspTestServer], tmp_path: Path
) -> None:
    clip = write_synthetic_clip(tmp_path / "one-second.mp4", seconds=1, fps=10)
    server = rtsp_server_factory({"/loop": clip})
    with _open(server.url("/loop")) as container:
        time_base = _time_base_s(container.streams.video[0])
        stamped: list[int] = []
        for frame in container.decode(video=0):
            if frame.pts is not None:  # FFmpeg may leave the very first RTP frame unstamped.
                stamped.append(frame.pts)
            if len(stamped) >= 2 and (stamped[-1] - stamped[0]) * time_base >= 2.5:
                break

    steps = [later - earlier for earlier, later in itertools.pairwise(stamped)]
    assert min(steps) > 0, f"pts not strictly increasing: {stamped}"
    assert max(steps) * time_base < 0.2, f"gap in pts at the loop point: {stamped}"


@pytest.mark.parametrize("with_bad_password", [True, False], ids=["wrong-password", "no-credentials"])
def test_rtsp_server_rejects_bad_credentials_with_401(
    rtsp_server: RtspTestServer, with_bad_password: bool
) -> None:
    url = rtsp_server.url("/cam1", with_credentials=False)
    if with_bad_password:
        url = url.replace("rtsp://", f"rtsp://{RTSP_USER}:not-{RTSP_PASSWORD}@")
    with pytest.raises(av.error.HTTPUnauthorizedError, match="401"):
        _open(url)


def test_rtsp_server_answers_unknown_mount_with_404(rtsp_server: RtspTestServer) -> None:
    with pytest.raises(av.error.HTTPNotFoundError, match="404"):
        _open(rtsp_server.url("/no-such-camera"))


def test_killed_rtsp_server_ends_the_stream_within_seconds(rtsp_server: RtspTestServer) -> None:
    with _open(rtsp_server.url("/cam1")) as container:
        frames = _frames_with_arrival(container)
        next(frames)
        rtsp_server.kill()
        killed_s = time.monotonic()
        try:
            for _ in frames:
                assert time.monotonic() - killed_s < 8, "frames still arriving after kill"
        except av.error.FFmpegError:
            pass
        assert time.monotonic() - killed_s < 8


def test_restarted_rtsp_server_accepts_clients_on_same_port(rtsp_server: RtspTestServer) -> None:
    port = rtsp_server.port
    rtsp_server.kill()
    with pytest.raises(av.error.FFmpegError):
        _open(rtsp_server.url("/cam1"))

    rtsp_server.restart()

    assert rtsp_server.port == port
    with _open(rtsp_server.url("/cam1")) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (320, 240)


def test_paused_rtsp_server_stalls_the_stream_until_resumed(rtsp_server: RtspTestServer) -> None:
    with _open(rtsp_server.url("/cam1")) as container:
        frames = _frames_with_arrival(container)
        next(frames)
        rtsp_server.pause()
        paused_s = previous_s = time.monotonic()
        resumer = threading.Timer(1.5, rtsp_server.resume)
        resumer.start()
        longest_gap_s = 0.0
        arrivals_after_resume = 0
        try:
            for _, arrived_s in frames:  # Frames buffered before the pause come first.
                longest_gap_s = max(longest_gap_s, arrived_s - previous_s)
                previous_s = arrived_s
                arrivals_after_resume += arrived_s - paused_s > 1.5
                if arrived_s - paused_s > 2.5:
                    break
        finally:
            resumer.cancel()
            rtsp_server.resume()

    assert longest_gap_s >= 1.2, "frames kept arriving while the server was paused"
    assert arrivals_after_resume >= 5, "frames did not flow again after resume"
