"""Decoding real H.264 clips through PyAV: sampling, looping, pacing, keyframes, open errors."""

from __future__ import annotations

import itertools
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from anjian.cameras.config import CameraConfig
from anjian.cameras.decode import decode_frames, decoder_threads, input_format, open_options
from anjian.cameras.errors import StreamConfigError, StreamCredentialsError, StreamOpenError
from tests.support.clips import make_test_clip
from tests.support.fixtures import RTSP_PASSWORD
from tests.support.rtsp import RtspTestServer


@pytest.fixture(scope="module")
def one_second_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s, 10 fps, 160x120, keyframe every 10 frames."""
    return make_test_clip(
        tmp_path_factory.mktemp("clips") / "one-second.mp4", seconds=1, fps=10, size_wh=(160, 120)
    )


def _camera(url: str | Path, **overrides: object) -> CameraConfig:
    return CameraConfig.model_validate({"id": "cam1", "url": str(url), "realtime": False} | overrides)


def test_file_is_sampled_to_the_analysis_rate_in_stream_time(test_clip: Path) -> None:
    frames = list(decode_frames(_camera(test_clip, analysis_fps=2), stop=threading.Event()))
    assert len(frames) == 8  # 4 s at 2 fps
    assert [f.index for f in frames] == list(range(8))
    assert [round(f.pts_s, 2) for f in frames] == [i * 0.5 for i in range(8)]
    assert frames[0].image.shape == (240, 320, 3)
    assert frames[0].camera_id == "cam1"


def test_looping_file_keeps_timestamps_increasing_across_the_loop(one_second_clip: Path) -> None:
    stop = threading.Event()
    frames = []
    for frame in decode_frames(_camera(one_second_clip, analysis_fps=5, loop=True), stop=stop):
        frames.append(frame)
        if len(frames) == 16:  # more than three loops
            stop.set()
    steps = [b.pts_s - a.pts_s for a, b in itertools.pairwise(frames)]
    assert min(steps) > 0.15 and max(steps) < 0.25, steps
    assert [f.index for f in frames] == list(range(16))


def test_a_file_is_timed_from_its_first_frame_whatever_its_first_timestamp(tmp_path: Path) -> None:
    """A file played faster than real time was stamped start + raw pts: an NVR segment whose pts start an
    hour in reached the rules an hour in the future (only replay corrected it)."""
    video = tmp_path / "segment.ts"
    with av.open(str(video), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(10):
            picture = av.VideoFrame.from_ndarray(np.full((96, 160, 3), i * 8, np.uint8), format="bgr24")
            picture.pts, picture.time_base = 36_000 + i, Fraction(1, 10)
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))

    frames = list(decode_frames(_camera(video, analysis_fps=5), stop=threading.Event(), clock=lambda: 1000.0))

    assert frames[0].pts_s == pytest.approx(3600.0, abs=0.01)  # the stream's own time is kept
    assert [round(f.captured_at, 2) for f in frames] == [1000.0 + 0.2 * i for i in range(5)]


def test_realtime_file_is_paced_at_its_own_rate(one_second_clip: Path) -> None:
    started = time.monotonic()
    frames = list(
        decode_frames(_camera(one_second_clip, analysis_fps=5, realtime=True), stop=threading.Event())
    )
    elapsed_s = time.monotonic() - started
    assert len(frames) == 5
    assert elapsed_s >= 0.75  # the last sampled frame is at 0.8 s of stream time
    assert frames[-1].captured_at - frames[0].captured_at == pytest.approx(0.8, abs=0.3)


def test_keyframes_only_mode_decodes_one_frame_per_gop(test_clip: Path) -> None:
    decoded = {"all": 0, "keyframes": 0}

    def counter(key: str) -> None:
        decoded[key] += 1

    every = list(
        decode_frames(
            _camera(test_clip, analysis_fps=30), stop=threading.Event(), on_decoded=lambda: counter("all")
        )
    )
    keyframes = list(
        decode_frames(
            _camera(test_clip, analysis_fps=30, keyframes_only=True),
            stop=threading.Event(),
            on_decoded=lambda: counter("keyframes"),
        )
    )
    assert len(every) == decoded["all"] == 40
    assert len(keyframes) == decoded["keyframes"] == 4  # one keyframe a second in the 4 s clip
    assert [round(f.pts_s, 1) for f in keyframes] == [0.0, 1.0, 2.0, 3.0]


def test_b_frames_are_not_decoded_when_the_analysis_keeps_at_most_every_other_frame(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "b.mp4", seconds=4, fps=10, encoding="camera", b_frames=2)
    decoded = {True: 0, False: 0}
    analysed = {}
    for skip in (True, False):

        def count(skip: bool = skip) -> None:
            decoded[skip] += 1

        camera = _camera(clip, analysis_fps=2, skip_unused_frames=skip)
        analysed[skip] = [f.pts_s for f in decode_frames(camera, stop=threading.Event(), on_decoded=count)]
    assert decoded[False] == 40
    assert decoded[True] < 0.8 * decoded[False]  # the B-frames nothing refers to were skipped
    assert len(analysed[True]) == len(analysed[False]) == 8  # the same rate reaches the pipeline
    assert all(0 <= s - e <= 0.1 + 1e-6 for s, e in zip(analysed[True], analysed[False], strict=True))


def test_every_frame_is_decoded_when_the_analysis_needs_more_than_half(tmp_path: Path) -> None:
    clip = make_test_clip(tmp_path / "b.mp4", seconds=2, fps=10, encoding="camera", b_frames=2)
    decoded = 0

    def count() -> None:
        nonlocal decoded
        decoded += 1

    frames = list(decode_frames(_camera(clip, analysis_fps=6), stop=threading.Event(), on_decoded=count))
    assert decoded == 20
    assert len(frames) >= 11


def test_stop_event_ends_the_iteration(test_clip: Path) -> None:
    stop = threading.Event()
    stop.set()
    assert list(decode_frames(_camera(test_clip), stop=stop)) == []


@pytest.mark.parametrize(
    ("url", "error", "reason"),
    [
        ("missing.mp4", StreamConfigError, "no such file"),
        ("not-a-video.mp4", StreamConfigError, "not a playable video"),
        ("rtsp://admin:hunter2@no-such-camera.invalid/stream1", StreamConfigError, "unknown host"),
        ("rtsp://admin:hunter2@127.0.0.1:1/stream1", StreamOpenError, "connection refused"),
    ],
    ids=["missing-file", "not-a-video", "unknown-host", "connection-refused"],
)
def test_open_errors_name_their_cause_without_credentials(
    tmp_path: Path, url: str, error: type[Exception], reason: str
) -> None:
    (tmp_path / "not-a-video.mp4").write_text("this is text, not video\n" * 100)
    if "://" not in url:
        url = str(tmp_path / url)
    with pytest.raises(error, match=reason) as raised:
        next(decode_frames(_camera(url, open_timeout_s=3), stop=threading.Event()))
    assert "hunter2" not in str(raised.value)
    assert "hunter2" not in repr(raised.value.__cause__) and raised.value.__suppress_context__
    if error is StreamOpenError:
        assert not isinstance(raised.value, StreamConfigError)  # transient: retried at the normal pace


@pytest.mark.slow
def test_a_hung_camera_is_a_transient_timeout_not_a_config_error(rtsp_server: RtspTestServer) -> None:
    # FFmpeg reports a server that accepts the connection and then says nothing as "invalid data".
    rtsp_server.pause()
    try:
        camera = _camera(rtsp_server.url("/cam1"), open_timeout_s=3, stall_timeout_s=1.5)
        with pytest.raises(StreamOpenError, match="no answer within 1.5s") as raised:
            next(decode_frames(camera, stop=threading.Event()))
    finally:
        rtsp_server.resume()
    assert not isinstance(raised.value, StreamConfigError)  # retried at the normal pace, reported offline
    assert RTSP_PASSWORD not in str(raised.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mount", "password", "is_credentials_error", "reason"),
    [
        ("/cam1", "wrong-pw", True, "credentials refused"),
        ("/no-such-camera", RTSP_PASSWORD, False, "stream path not found"),
    ],
    ids=["wrong-password-401", "wrong-path-404"],
)
def test_refused_credentials_are_told_apart_from_the_other_refusals(
    rtsp_server: RtspTestServer, mount: str, password: str, is_credentials_error: bool, reason: str
) -> None:
    """A retried 401 is one more failed login (cameras lock accounts); a retried 404 costs nothing."""
    camera = _camera(rtsp_server.url(mount).replace(RTSP_PASSWORD, password), open_timeout_s=5)
    with pytest.raises(StreamConfigError, match=reason) as raised:
        next(decode_frames(camera, stop=threading.Event()))
    assert isinstance(raised.value, StreamCredentialsError) is is_credentials_error
    assert password not in str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"url": "rtsp://h/s"},
            {"rtsp_transport": "tcp", "timeout": "5000000", "allowed_media_types": "video"},
        ),
        (
            {"url": "rtsps://h/s", "rtsp_transport": "udp"},
            {"rtsp_transport": "udp", "buffer_size": "4194304"},
        ),
        ({"url": "https://h/live.m3u8"}, {"timeout": "5000000"}),
        ({"url": "rtmp://h/live/key"}, {"rw_timeout": "5000000"}),
        ({"url": "/dev/video0", "input_options": {"video_size": "1280x720"}}, {"video_size": "1280x720"}),
        ({"url": "rtsp://h/s", "input_options": {"timeout": "1"}}, {"timeout": "1"}),
    ],
    ids=["rtsp-tcp", "rtsps-udp", "hls", "rtmp-no-listen", "v4l2-size", "override"],
)
def test_open_options_per_source_kind(overrides: dict[str, object], expected: dict[str, str]) -> None:
    options = open_options(CameraConfig.model_validate({"id": "c", "stall_timeout_s": 5} | overrides))
    assert options.items() >= expected.items()
    if str(overrides["url"]).startswith("rtmp"):
        assert "timeout" not in options  # FFmpeg's rtmp "timeout" means: listen for a publisher


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        ("/dev/video0", None, "v4l2"),
        ("/tmp/a.mp4", None, None),
        ("/dev/video2", "video4linux2", "video4linux2"),
    ],
    ids=["v4l2-device", "file", "explicit"],
)
def test_input_format(url: str, configured: str | None, expected: str | None) -> None:
    assert input_format(CameraConfig(id="c", url=url, input_format=configured)) == expected


@pytest.mark.parametrize(
    ("decode_threads", "size_wh", "expected"),
    [
        (None, (1920, 1080), 1),
        (None, (768, 432), 1),
        (None, (3840, 2160), 2),
        (None, (0, 0), 2),
        (4, (640, 360), 4),
        (0, (3840, 2160), 0),
    ],
    ids=["1080p-one", "small-one", "4k-two", "unknown-size-two", "set-wins", "zero-one-per-core"],
)
def test_decoder_threads_default_to_one_up_to_1080p_and_follow_the_camera_when_set(
    decode_threads: int | None, size_wh: tuple[int, int], expected: int
) -> None:
    camera = _camera("rtsp://cam.example/stream", decode_threads=decode_threads)
    assert decoder_threads(camera, *size_wh) == expected
