"""GOP ends left undecoded: the sampled frames stay bit-identical, fewer frames are decoded, and only where safe."""

from __future__ import annotations

import hashlib
import threading
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


def _samples(path: Path, count: int, *, skipping: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list, int]:
    """The first ``count`` sampled frames (pts, pixel digest) of a looped file at 2 fps, and the frames decoded."""
    with monkeypatch.context() as patch:
        if not skipping:
            patch.setattr(decode, "_gop_tail_skipper", lambda *args: None)
        config = CameraConfig(id="cam", url=str(path), analysis_fps=2.0, loop=True, realtime=False)
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


def test_the_skipper_predicts_only_from_three_evenly_spaced_idr_keyframes() -> None:
    skipper = GopTailSkipper(0.1)
    skipper.keyframe(0.0, is_idr=True)
    skipper.keyframe(1.0, is_idr=True)
    assert skipper.next_keyframe_s is None
    assert not skipper.should_skip(1.5)
    skipper.keyframe(2.0, is_idr=True)
    assert skipper.next_keyframe_s == pytest.approx(3.0)
    assert not skipper.should_skip(2.5)  # a sample is still due before the keyframe
    assert not skipper.should_skip(2.9)  # ... one frame before it
    assert skipper.should_skip(2.96)  # the keyframe serves the next sample
    assert skipper.should_skip(2.5)  # once begun, until the keyframe: none after could decode
    assert skipper.skipped == 2
    skipper.keyframe(3.0, is_idr=True)
    assert not skipper.should_skip(3.5)


@pytest.mark.parametrize(
    ("keyframes", "why"),
    [
        ([(0.0, True), (1.0, True), (2.5, True)], "an irregular interval"),
        ([(0.0, True), (1.0, True), (2.0, False)], "an open GOP's keyframe"),
        ([(0.0, True), (1.0, True), (None, True)], "an unstamped keyframe"),
        ([(5.0, True), (6.0, True), (7.0, True), (1.0, True)], "time going back (a loop, a reset camera)"),
        ([(0.0, True), (1.0, True), (2.0, True), (3.5, True)], "a keyframe later than predicted"),
    ],
)
def test_the_skipper_stops_predicting_on(keyframes: list[tuple[float | None, bool]], why: str) -> None:
    skipper = GopTailSkipper(0.1)
    for pts_s, is_idr in keyframes:
        skipper.keyframe(pts_s, is_idr=is_idr)
    assert skipper.next_keyframe_s is None, why
    assert not skipper.should_skip(1e9), why


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
