"""Evidence clips: a bounded ring buffer of analysed frames and H.264 MP4 clips cut around confirmations."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import pytest

from anjian.cameras.frame import Frame
from anjian.pipeline.config import EvidenceConfig
from anjian.pipeline.evidence import BufferedFrame, ClipRecorder, FrameRing, encode_clip

T0 = 1_700_000_000.0


def _frame(i: int, fps: float = 5.0, size_wh: tuple[int, int] = (1280, 720)) -> Frame:
    image = np.full((size_wh[1], size_wh[0], 3), (i * 7) % 255, np.uint8)
    image[100:200, (i * 10) % 1000 : (i * 10) % 1000 + 100] = 255
    return Frame(camera_id="cam", image=image, captured_at=T0 + i / fps, pts_s=i / fps, index=i)


def _decode(mp4: bytes) -> tuple[str, tuple[int, int], list[float]]:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        times = [float(f.time) for f in container.decode(stream)]
        return stream.codec_context.name, (stream.width, stream.height), times


def test_ring_downscales_skips_too_frequent_frames_and_respects_its_memory_cap() -> None:
    ring = FrameRing(max_fps=5, width_px=320, jpeg_quality=70, max_bytes=10_000_000)
    kept = [ring.add(_frame(i, fps=10)) for i in range(20)]
    assert kept == [True, False] * 10  # 10 fps in, 5 fps kept
    one = ring.memory_bytes / len(ring)
    capped = FrameRing(max_fps=30, width_px=320, jpeg_quality=70, max_bytes=int(one * 5.5))
    for i in range(20):
        capped.add(_frame(i))
    assert capped.memory_bytes <= capped.max_bytes
    assert 3 <= len(capped) <= 6 and capped.frames_evicted_for_memory == 20 - len(capped)


def test_clip_is_h264_with_the_frames_own_timing() -> None:
    ring = FrameRing(max_fps=30, width_px=321, jpeg_quality=70, max_bytes=10_000_000)
    for i in (0, 1, 2, 10, 11):  # a gap, as on a motion-gated camera
        ring.add(_frame(i))
    codec, size, times = _decode(encode_clip(ring.between(T0, T0 + 100)))
    assert codec == "h264" and size == (320, 180)  # even sizes for yuv420p
    assert times == pytest.approx([0.0, 0.2, 0.4, 2.0, 2.2], abs=0.01)


def test_encode_clip_rejects_nothing_and_garbage() -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        encode_clip([])
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        encode_clip([BufferedFrame(T0, b"not a jpeg")])


@pytest.mark.parametrize("is_background", [False, True], ids=["inline", "executor"])
def test_recorder_cuts_pre_and_post_seconds_around_the_confirmation(is_background: bool) -> None:
    config = EvidenceConfig(clip_pre_s=2, clip_post_s=1, clip_fps=5, clip_width_px=320)
    with ThreadPoolExecutor(1) as executor:
        recorder = ClipRecorder(config, "cam", executor=executor if is_background else None)
        clips = []
        for i in range(40):
            recorder.add_frame(_frame(i))
            if i == 20:
                recorder.request("event-1", confirmed_at=T0 + 4.0)
            clips += [(i, c) for c in recorder.poll(T0 + i / 5)]
        clips += [(99, c) for c in recorder.poll(T0 + 100, is_final=True)]
    [(i, (event_id, mp4))] = clips
    assert event_id == "event-1"
    assert i == 25 if not is_background else 25 <= i <= 99  # due at 4 + 1 s = frame 25
    _codec, _size, times = _decode(mp4)
    assert len(times) == 16 and times[-1] == pytest.approx(3.0, abs=0.01)  # 2 s before to 1 s after, 5 fps
    stats = recorder.stats()
    assert stats.clips_written == 1 and stats.pending_clips == 0
    assert stats.span_s == pytest.approx(2.0, abs=0.25)  # only clip_pre_s is kept once nothing is pending
    assert 0 < stats.memory_bytes < 11 * 40_000


def test_clip_without_frames_counts_a_failure() -> None:
    recorder = ClipRecorder(EvidenceConfig(), "cam")
    recorder.request("e", confirmed_at=T0)
    assert recorder.poll(T0 + 100) == []
    assert recorder.stats().clip_failures == 1
