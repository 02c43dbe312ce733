"""GOP ends left undecoded: the sampled frames stay bit-identical, fewer frames are decoded, and only where safe."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest

from anjian.cameras import decode
from anjian.cameras.config import CameraConfig
from anjian.cameras.decode import decode_frames
from anjian.cameras.gop import GopTailSkipper, is_idr_packet, nal_length_size
from anjian.service.benchmarks.clips import ClipCodec
from tests.support.clips import make_test_clip

FPS = 10


def _write_clip(path: Path, *, codec: ClipCodec = "h264", gop_s: float = 1.0, **options: Any) -> Path:
    """6 s of a moving box on a noisy texture at 10 fps, a keyframe every ``gop_s``, as IP cameras send."""
    return make_test_clip(
        path,
        seconds=6,
        fps=FPS,
        size_wh=(160, 96),
        sensor_noise=8,
        keyframe_interval_s=gop_s,
        codec=codec,
        **options,
    )


def _samples(
    path: Path, count: int, *, skipping: bool, monkeypatch: pytest.MonkeyPatch, **camera: Any
) -> tuple[list[tuple[float, str]], int]:
    """The first ``count`` sampled frames (pts, pixel digest) of a looped file at 2 fps, and the frames decoded."""
    with monkeypatch.context() as patch:
        if not skipping:
            patch.setattr(decode, "_gop_tail_skipper", lambda *args: None)
        config = CameraConfig(id="cam", url=str(path), analysis_fps=2.0, loop=True, realtime=False, **camera)
        decoded = [0]
        out = []
        for frame in decode_frames(
            config, stop=threading.Event(), on_decoded=lambda: decoded.__setitem__(0, decoded[0] + 1)
        ):
            out.append((round(frame.pts_s, 6), hashlib.sha1(frame.image.tobytes()).hexdigest()))
            if len(out) == count:
                break
    return out, decoded[0]


@pytest.mark.parametrize(
    ("name", "codec", "suffix", "gop_s"),
    [
        ("H.264 in MP4 (length-prefixed)", "h264", "mp4", 1.0),
        ("H.264 in MPEG-TS (start codes)", "h264", "ts", 1.0),
        ("H.265 in Matroska", "hevc", "mkv", 1.0),
        ("a keyframe every 2 s", "h264", "mp4", 2.0),
    ],
)
def test_the_sampled_frames_are_the_same_and_fewer_frames_are_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, codec: ClipCodec, suffix: str, gop_s: float
) -> None:
    clip = _write_clip(tmp_path / f"clip.{suffix}", codec=codec, gop_s=gop_s)
    count = 30  # 15 s: past the 6 s file's end twice, so the looped passes are compared too
    skipped, decoded_with = _samples(clip, count, skipping=True, monkeypatch=monkeypatch)
    full, decoded_without = _samples(clip, count, skipping=False, monkeypatch=monkeypatch)
    assert skipped == full, name
    assert [pts for pts, _ in full] == sorted({pts for pts, _ in full})  # time runs on across the loops
    assert decoded_with < decoded_without, (name, decoded_with, decoded_without)


def test_b_frames_keep_the_sampled_frames_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """x264's B-pyramid: a B-frame others refer to comes after a later P-frame and before it in time."""
    clip = _write_clip(tmp_path / "pyramid.mp4", encoding="camera", b_frames=2)
    skipped, decoded_with = _samples(clip, 30, skipping=True, monkeypatch=monkeypatch)
    full, decoded_without = _samples(clip, 30, skipping=False, monkeypatch=monkeypatch)
    assert skipped == full
    assert decoded_with <= decoded_without


def test_an_open_gop_stream_is_decoded_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames after an open GOP's keyframe (HEVC's CRA here) may refer to frames before it: nothing is left out.

    The same clip with IDR keyframes is (the H.265 case above): only the keyframe kind differs.
    """
    clip = _write_clip(tmp_path / "open.mkv", codec="hevc", open_gop=True)
    skipped, decoded_with = _samples(clip, 20, skipping=True, monkeypatch=monkeypatch)
    full, decoded_without = _samples(clip, 20, skipping=False, monkeypatch=monkeypatch)
    assert skipped == full
    assert decoded_with == decoded_without


def test_keyframes_of_closed_and_open_gops_are_told_apart(tmp_path: Path) -> None:
    for clip, expect_idr_after_the_first in (
        (_write_clip(tmp_path / "closed.ts"), True),
        (_write_clip(tmp_path / "closed.mp4"), True),
        (_write_clip(tmp_path / "closed.mkv", codec="hevc"), True),
        (_write_clip(tmp_path / "cra.mkv", codec="hevc", open_gop=True), False),
        (_write_clip(tmp_path / "open.mp4", encoding="camera", b_frames=2, open_gop=True), False),
    ):
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            context = stream.codec_context
            length_size = nal_length_size(context.name, context.extradata)
            assert (length_size is None) is (clip.suffix == ".ts"), clip.name
            keys = [
                is_idr_packet(bytes(packet), context.name, length_size)
                for packet in container.demux(stream)
                if packet.size and packet.is_keyframe
            ]
        assert keys[0], clip.name  # the stream starts on an IDR
        assert len(keys) >= 3 and all(key is expect_idr_after_the_first for key in keys[1:]), (
            clip.name,
            keys,
        )


# One-NAL H.264 packets with start codes: an IDR slice, a non-IDR slice, a sequence parameter set.
IDR, SLICE, SPS = b"\x00\x00\x01\x65", b"\x00\x00\x01\x41", b"\x00\x00\x01\x67"


@dataclass
class _Packet:
    data: bytes
    is_keyframe: bool = False

    def __bytes__(self) -> bytes:
        return self.data


def _regular_gops(skipper: GopTailSkipper, gops: int = 3) -> None:
    """``gops`` IDR keyframes a second apart at 10 fps, nine slices between (none held: no sample due yet)."""
    for second in range(gops):
        assert skipper.route(_Packet(IDR, True), float(second), next_due_s=None)
        if second < gops - 1:
            for frame in range(1, 10):
                assert skipper.route(_Packet(SLICE), second + frame / 10, next_due_s=None)


def test_a_gop_end_is_held_and_dropped_at_the_predicted_idr_keyframe() -> None:
    skipper = GopTailSkipper(0.1)
    _regular_gops(skipper)
    assert skipper.next_keyframe_s == pytest.approx(3.0)
    for pts_s in (2.1, 2.2, 2.3, 2.4, 2.5):
        assert skipper.route(
            _Packet(SLICE), pts_s, next_due_s=2.5
        )  # a sample is still due before the keyframe
    assert skipper.route(_Packet(SPS), None, next_due_s=3.0)  # no picture in it: never held
    for pts_s in (2.6, 2.7, 2.8, 2.9):
        assert (
            skipper.route(_Packet(SLICE), pts_s, next_due_s=3.0) == []
        )  # the keyframe serves the next sample
    parameter_sets = _Packet(SPS)  # sent on its own before the keyframe, while the end is held
    assert skipper.route(parameter_sets, None, next_due_s=3.0) == []
    keyframe = _Packet(IDR, True)
    assert skipper.route(keyframe, 3.0, next_due_s=3.0) == [parameter_sets, keyframe]
    assert skipper.skipped == 4
    assert skipper.next_keyframe_s == pytest.approx(4.0)  # and the next GOP is judged the same way
    assert skipper.last_pts_s == pytest.approx(3.0)


def test_a_late_keyframe_decodes_what_was_held_in_order_and_predicts_afresh() -> None:
    """A "smart" codec stretches its GOP on a still scene: nothing held is lost, the sample due comes a bit late."""
    skipper = GopTailSkipper(0.1)
    _regular_gops(skipper)
    held = [_Packet(SLICE) for _ in range(4)]
    for packet, pts_s in zip(held, (2.6, 2.7, 2.8, 2.9), strict=True):
        assert skipper.route(packet, pts_s, next_due_s=3.0) == []
    on_time = _Packet(SLICE)
    assert skipper.route(on_time, 3.0, next_due_s=3.0) == []  # where the keyframe should be: still waiting
    late = _Packet(SLICE)
    assert skipper.route(late, 3.1, next_due_s=3.0) == [*held, on_time, late]
    assert skipper.next_keyframe_s is None and skipper.skipped == 0
    assert skipper.route(_Packet(SLICE), 3.2, next_due_s=3.5)  # decoded as they come again


def test_a_keyframe_that_is_not_an_idr_decodes_what_was_held_first() -> None:
    """Frames after an open GOP's keyframe may refer to frames before it."""
    skipper = GopTailSkipper(0.1)
    _regular_gops(skipper)
    held = _Packet(SLICE)
    assert skipper.route(held, 2.9, next_due_s=3.0) == []
    recovery_point = _Packet(SLICE, True)
    assert skipper.route(recovery_point, 3.0, next_due_s=3.0) == [held, recovery_point]
    assert skipper.next_keyframe_s is None


@pytest.mark.parametrize(
    ("keyframes", "why"),
    [
        ([(0.0, IDR), (1.0, IDR), (2.5, IDR)], "an irregular interval"),
        ([(0.0, IDR), (1.0, IDR), (2.0, SLICE)], "an open GOP's keyframe"),
        ([(0.0, IDR), (1.0, IDR), (None, IDR)], "an unstamped keyframe"),
        ([(5.0, IDR), (6.0, IDR), (7.0, IDR), (1.0, IDR)], "time going back (a loop, a reset camera)"),
        ([(0.0, IDR), (1.0, IDR), (2.0, IDR), (3.5, IDR)], "a keyframe later than predicted"),
        ([(0.0, IDR), (0.01, IDR), (0.02, IDR)], "timestamps that barely advance (a tick a frame)"),
    ],
)
def test_the_skipper_predicts_nothing_after(keyframes: list[tuple[float | None, bytes]], why: str) -> None:
    skipper = GopTailSkipper(0.1)
    for pts_s, data in keyframes:
        assert skipper.route(_Packet(data, True), pts_s, next_due_s=None), why
        for _ in range(9):  # nine frames between, whatever the timestamps say
            skipper.route(_Packet(SLICE), None, next_due_s=None)
    assert skipper.next_keyframe_s is None, why
    assert skipper.route(_Packet(SLICE), 1e8, next_due_s=1e9), why


def test_a_stretched_gop_keeps_the_sampled_frames_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyframes a second apart, then one 4 s later: the held end of the long GOP is decoded after all."""
    clip = make_test_clip(
        tmp_path / "stretched.mp4",
        seconds=10,
        fps=FPS,
        size_wh=(160, 96),
        sensor_noise=8,
        keyframes_at=[0, 10, 20, 30, 70, 80, 90],
    )
    skipped, decoded_with = _samples(clip, 30, skipping=True, monkeypatch=monkeypatch)
    full, decoded_without = _samples(clip, 30, skipping=False, monkeypatch=monkeypatch)
    assert skipped == full
    assert decoded_with < decoded_without


def test_frame_threaded_decoding_keeps_a_looped_files_timeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame-threaded decoder gives its last frame out at the end-of-file flush, after the GOP end left out."""
    clip = _write_clip(tmp_path / "clip.mp4")
    skipped, _ = _samples(clip, 30, skipping=True, monkeypatch=monkeypatch, decode_threads=2)
    full, _ = _samples(clip, 30, skipping=False, monkeypatch=monkeypatch, decode_threads=2)
    assert skipped == full


def test_only_cpu_decoding_sampled_at_most_every_other_frame_skips(tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "clip.mp4")
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        sparse = CameraConfig(id="c", url=str(clip), analysis_fps=2.0)
        assert decode._gop_tail_skipper(sparse, stream, "cpu") is not None
        assert decode._gop_tail_skipper(sparse, stream, "cuda") is None
        assert (
            decode._gop_tail_skipper(sparse.model_copy(update={"analysis_fps": 6.0}), stream, "cpu") is None
        )
        assert (
            decode._gop_tail_skipper(sparse.model_copy(update={"skip_unused_frames": False}), stream, "cpu")
            is None
        )
        assert (
            decode._gop_tail_skipper(sparse.model_copy(update={"keyframes_only": True}), stream, "cpu")
            is None
        )
