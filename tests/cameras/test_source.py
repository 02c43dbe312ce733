"""A camera reader keeps only the newest frame, counts drops, ends files and retries failures."""

from __future__ import annotations

import logging
import re
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from anjian.cameras.config import CameraConfig
from anjian.cameras.frame import Frame
from anjian.cameras.health import CameraHealth, CameraState
from anjian.cameras.source import VideoSource
from tests.support.waiting import wait_for

_FAST_RETRY = {"initial_delay_s": 0.05, "max_delay_s": 0.2, "jitter": 0.0}


def _camera(url: str | Path, **overrides: object) -> CameraConfig:
    return CameraConfig.model_validate({"id": "cam1", "url": str(url), "realtime": False} | overrides)


def test_slow_consumer_never_grows_memory_and_drops_are_counted(test_clip: Path) -> None:
    source = VideoSource(_camera(test_clip, analysis_fps=30, loop=True))
    taken: list[Frame] = []
    tracemalloc.start()
    try:
        source.start()
        assert source.wait_frame(timeout_s=30) is not None
        warm_bytes, _ = tracemalloc.get_traced_memory()
        for _ in range(10):  # a consumer far slower than the reader (which runs as fast as it can)
            time.sleep(0.1)
            if (frame := source.take_latest()) is not None:
                taken.append(frame)
        grown_bytes = tracemalloc.get_traced_memory()[0] - warm_bytes
    finally:
        tracemalloc.stop()
        source.stop()
    health = source.health()
    frame_bytes = 320 * 240 * 3
    assert health.frames_delivered > 100, "the reader should outrun the consumer by far"
    assert grown_bytes < 4 * frame_bytes, f"memory grew by {grown_bytes} bytes while frames piled up"
    pending = 1 if source.take_latest() is not None else 0
    assert health.frames_dropped == health.frames_delivered - len(taken) - 1 - pending
    indices = [f.index for f in taken]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)  # newest first, never twice


def test_file_source_ends_and_reports_stopped(test_clip: Path) -> None:
    source = VideoSource(_camera(test_clip, analysis_fps=2))
    source.start()
    frames = []
    while (frame := source.wait_frame(timeout_s=30)) is not None:
        frames.append(frame)
    assert source.is_finished
    assert frames and frames[-1].index >= 1
    assert source.health().state == CameraState.STOPPED
    source.stop()


def test_missing_file_fails_config_and_ends(tmp_path: Path) -> None:
    source = VideoSource(_camera(tmp_path / "gone.mp4", reconnect=_FAST_RETRY))
    source.start()
    assert wait_for(lambda: source.is_finished, 30)
    health = source.health()
    assert health.state == CameraState.FAILED_CONFIG
    assert health.last_error is not None and "no such file" in health.last_error
    source.stop()


def _health_after_three_retries(
    path: Path, retry: dict[str, float], caplog: pytest.LogCaptureFixture
) -> CameraHealth:
    """Loop ``path`` (retrying per ``retry``, no jitter, delays logged) until it has reconnected three times."""
    source = VideoSource(_camera(path, loop=True, reconnect=retry | {"jitter": 0.0}))
    caplog.set_level(logging.DEBUG, logger="anjian.cameras.source")
    source.start()
    try:
        assert wait_for(lambda: source.health().reconnects >= 3, 30), source.health()
        return source.health()
    finally:
        source.stop()


def test_config_failures_on_a_looping_source_are_retried_at_the_longest_delay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_video = tmp_path / "not-a-video.mp4"
    not_video.write_text("text\n" * 200)
    health = _health_after_three_retries(not_video, {"initial_delay_s": 0.01, "max_delay_s": 0.3}, caplog)
    assert health.state == CameraState.FAILED_CONFIG
    assert "not a playable video" in (health.last_error or "")
    # Every retry waits the cap (0.3 s), never the 0.01 s initial delay: the delays logged, not a clock.
    delays = re.findall(r"retrying in ([0-9.]+)s", caplog.text)
    assert len(delays) >= 3 and set(delays) == {"0.3"}, delays


def test_camera_fixed_on_its_side_recovers_without_restart(tmp_path: Path, test_clip: Path) -> None:
    path = tmp_path / "cam.mp4"
    path.write_text("not yet a video\n" * 100)
    source = VideoSource(_camera(path, loop=True, analysis_fps=5, reconnect=_FAST_RETRY))
    source.start()
    try:
        assert wait_for(lambda: source.health().state == CameraState.FAILED_CONFIG, 30)
        path.write_bytes(test_clip.read_bytes())
        assert source.wait_frame(timeout_s=30) is not None
        assert source.health().state == CameraState.ONLINE
    finally:
        source.stop()


def test_stop_ends_the_reader_and_nothing_is_published_afterwards(test_clip: Path) -> None:
    source = VideoSource(_camera(test_clip, loop=True, analysis_fps=30))
    source.start()
    assert source.wait_frame(timeout_s=30) is not None
    source.stop(timeout_s=60)  # returns as soon as the reader ends: its thread must be gone, not abandoned
    assert not any(thread.name == "camera-cam1" for thread in threading.enumerate())
    delivered = source.health().frames_delivered
    time.sleep(0.2)
    assert source.health().frames_delivered == delivered
    assert source.health().state == CameraState.STOPPED
    assert source.is_finished


def test_a_looped_file_without_one_decodable_picture_is_an_error_with_backoff(
    tmp_path: Path, test_clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Header intact, picture data zeroed: each pass ends without a frame. It used to reopen at once, for ever."""
    data = bytearray(test_clip.read_bytes())
    mdat = data.index(b"mdat")
    size = int.from_bytes(data[mdat - 4 : mdat], "big")
    data[mdat + 4 : mdat - 4 + size] = bytes(size - 8)
    blank = tmp_path / "blank.mp4"
    blank.write_bytes(bytes(data))
    health = _health_after_three_retries(blank, {"initial_delay_s": 0.05, "max_delay_s": 0.3}, caplog)
    assert "no decodable picture" in (health.last_error or ""), health
    assert health.frames_delivered == 0
    assert re.findall(r"retrying in ([0-9.]+)s", caplog.text)  # each pass is followed by a backoff delay
