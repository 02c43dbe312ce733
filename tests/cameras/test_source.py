"""A camera reader keeps only the newest frame, counts drops, ends files, retries failures and restarts."""

from __future__ import annotations

import logging
import re
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from anjian.cameras.config import CameraConfig
from anjian.cameras.decode import StreamCredentialsError
from anjian.cameras.errors import StreamDisconnectedError
from anjian.cameras.frame import Frame
from anjian.cameras.health import CameraHealth, CameraState
from anjian.cameras.source import VideoSource
from tests.support.waiting import wait_for

_FAST_RETRY = {"initial_delay_s": 0.05, "max_delay_s": 0.2, "jitter": 0.0}
_LIVE_URL = "rtsp://admin:pw@127.0.0.1:9/stream1"  # never opened: decode_frames is scripted


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


def _frame(index: int) -> Frame:
    return Frame(
        camera_id="cam1",
        image=np.zeros((2, 2, 3), np.uint8),
        captured_at=time.time(),
        pts_s=index / 10,
        index=index,
    )


@dataclass(frozen=True)
class _Connection:
    """One connection a reader opens: what it passes ``decode_frames`` that the fakes below use."""

    config: CameraConfig
    stop: threading.Event
    start_index: int
    on_open: Callable[[str], None]
    on_decoded: Callable[[], None]


def _script_decode(monkeypatch: pytest.MonkeyPatch, fake: Callable[[_Connection], Iterator[Frame]]) -> None:
    """Make every reader's connection run ``fake`` (a generator, as ``decode_frames`` is) instead of FFmpeg."""

    def decode_frames(
        config: CameraConfig,
        *,
        stop: threading.Event,
        start_index: int,
        on_open: Callable[[str], None],
        on_decoded: Callable[[], None],
        **_: object,
    ) -> Iterator[Frame]:
        return fake(_Connection(config, stop, start_index, on_open, on_decoded))

    monkeypatch.setattr("anjian.cameras.source.decode_frames", decode_frames)


def _logged_delays(caplog: pytest.LogCaptureFixture) -> list[str]:
    return re.findall(r"retrying in ([0-9.]+)s", caplog.text)


def _run_until_reconnected(
    camera: CameraConfig, caplog: pytest.LogCaptureFixture, reconnects: int, timeout_s: float
) -> tuple[CameraHealth, list[str]]:
    """Read ``camera`` until it has reconnected ``reconnects`` times; its health once stopped, the delays logged."""
    source = VideoSource(camera)
    caplog.set_level(logging.DEBUG, logger="anjian.cameras.source")
    source.start()
    try:
        assert wait_for(lambda: source.health().reconnects >= reconnects, timeout_s), source.health()
    finally:
        source.stop()
    return source.health(), _logged_delays(caplog)


def test_refused_credentials_are_retried_on_their_own_growing_schedule(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every retry is a failed login, which locks camera accounts: not at the 0.05 s cap of other refusals."""

    def refuses_login(connection: _Connection) -> Iterator[Frame]:
        raise StreamCredentialsError(
            f"cannot open {connection.config.masked_url}: credentials refused (401 Unauthorized)"
        )
        yield  # a generator, as decode_frames is

    _script_decode(monkeypatch, refuses_login)
    retry = _FAST_RETRY | {
        "credentials_initial_delay_s": 0.1,
        "credentials_max_delay_s": 0.4,
        "probe_interval_s": 0,
    }
    health, delays = _run_until_reconnected(
        _camera(_LIVE_URL, reconnect=retry), caplog, reconnects=4, timeout_s=30
    )
    assert "401" in (health.last_error or "")
    assert delays[:4] == ["0.1", "0.2", "0.4", "0.4"]


def test_a_camera_that_streams_for_a_while_then_drops_is_reopened_at_the_initial_delay(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Frames for stall_timeout_s show the camera works: its backoff starts over rather than growing to the cap."""

    def streams_then_drops(connection: _Connection) -> Iterator[Frame]:
        connection.on_open("cpu")
        connection.on_decoded()
        yield _frame(connection.start_index)
        first_published_by = time.monotonic()  # the reader publishes a frame before it asks for the next
        index = connection.start_index + 1
        while time.monotonic() - first_published_by < 0.3:  # frames for longer than the 0.25 s stall timeout
            connection.stop.wait(0.02)
            connection.on_decoded()
            yield _frame(index)
            index += 1
        raise StreamDisconnectedError(f"{connection.config.masked_url}: connection lost")

    _script_decode(monkeypatch, streams_then_drops)
    retry = {"initial_delay_s": 0.1, "max_delay_s": 1.6, "jitter": 0.0, "probe_interval_s": 0}
    _, delays = _run_until_reconnected(
        _camera(_LIVE_URL, stall_timeout_s=0.25, reconnect=retry), caplog, reconnects=5, timeout_s=60
    )
    assert delays[:5] == ["0.1"] * 5  # not 0.1, 0.2, 0.4, 0.8, 1.6


def test_start_right_after_stop_resumes_once_the_old_reader_has_left_ffmpeg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stop() gives up waiting while an open still blocks inside FFmpeg; start() must read the camera again."""
    opening = threading.Event()
    open_may_end = threading.Event()
    first_open_ended = threading.Event()
    overlaps: list[bool] = []

    def blocks_in_open_once(connection: _Connection) -> Iterator[Frame]:
        if not opening.is_set():
            opening.set()
            open_may_end.wait(30)  # av.open does not look at the stop event
            first_open_ended.set()
            return
        overlaps.append(not first_open_ended.is_set())
        connection.on_open("cpu")
        index = connection.start_index
        while not connection.stop.wait(0.01):
            connection.on_decoded()
            yield _frame(index)
            index += 1

    _script_decode(monkeypatch, blocks_in_open_once)
    source = VideoSource(_camera(_LIVE_URL, reconnect=_FAST_RETRY | {"probe_interval_s": 0}))
    source.start()
    try:
        assert opening.wait(30)
        source.stop(timeout_s=0.05)
        source.start()
        open_may_end.set()
        assert source.wait_frame(timeout_s=30) is not None, source.health()
        assert source.health().state == CameraState.ONLINE
    finally:
        open_may_end.set()
        source.stop(timeout_s=30)
    assert overlaps == [False]  # the new reader opened once, after the old one had left


def test_a_restarted_reader_numbers_its_frames_on_so_they_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    def ten_frames_then_waits(connection: _Connection) -> Iterator[Frame]:
        for index in range(connection.start_index, connection.start_index + 10):
            yield _frame(index)
        connection.stop.wait()

    _script_decode(monkeypatch, ten_frames_then_waits)
    source = VideoSource(_camera(_LIVE_URL))
    source.start()
    try:
        assert wait_for(lambda: source.health().frames_delivered == 10, 30)
        first = source.take_latest()
        source.stop(timeout_s=30)
        source.start()
        second = source.wait_frame(timeout_s=30)
    finally:
        source.stop(timeout_s=30)
    assert first is not None and first.index == 9
    assert second is not None and second.index == 19  # frames 0-9 again would never be taken
