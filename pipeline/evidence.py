"""Evidence clips: a per-camera ring buffer of analysed frames, and the MP4 (H.264) clips cut from it.

What is buffered, and why: the frames the runner *analyses* (not every decoded
frame), at most ``clip_fps`` per second, scaled to at most ``clip_width_px`` wide
and stored as JPEG. A 640x360 JPEG at quality 70 is 25-50 kB, so 10 s at 5 fps
costs about 2 MB per camera instead of 35 MB of raw pixels; 60 cameras fit in
about 120 MB. Memory is capped by ``max_buffer_mb`` (oldest frames go first) and
reported by ``ClipRecorder.stats()``.

A clip covers ``clip_pre_s`` before to ``clip_post_s`` after the confirmation of an
incident: the recorder keeps a pending request until the stream (or the clock) has
passed the end, then encodes the buffered frames with their own timestamps
(variable frame rate, so a motion-gated or slow camera still plays at real speed).
When time goes back (an NTP step), the clips still waiting are cut at once from the
frames buffered before the step, which the ring then forgets. The step is seen on the
next frame, or, for a camera that sends none (down, or quiet behind the motion gate), on
the next clock tick (``observe_clock``).
Encoding runs inline, or on an ``Executor`` given by the caller so the frame path
never waits for it.
"""

from __future__ import annotations

import logging
import tempfile
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from anjian.cameras.frame import Frame
from anjian.pipeline.config import EvidenceConfig
from anjian.pipeline.shrink import shrink

__all__ = ["BufferedFrame", "ClipRecorder", "EvidenceStats", "FrameRing", "encode_clip"]

logger = logging.getLogger(__name__)

_TIME_BASE = Fraction(1, 1000)  # clip timestamps in milliseconds
_CLOCK_STEP_S = 1.0
"""A tick's clock this far behind the previous tick's is a step back, not jitter."""


@dataclass(frozen=True, slots=True)
class BufferedFrame:
    """One buffered frame.

    Attributes:
        captured_at: Capture time, epoch seconds.
        jpeg: The downscaled frame, JPEG.
    """

    captured_at: float
    jpeg: bytes


@dataclass(frozen=True, slots=True)
class EvidenceStats:
    """What a camera's evidence buffer holds and has done.

    Attributes:
        memory_bytes: Bytes of JPEG held in the ring.
        frames: Frames held.
        span_s: Seconds between the oldest and newest frame held.
        frames_evicted_for_memory: Frames dropped early because the memory cap was hit.
        pending_clips: Clips waiting for their end or being encoded.
        clips_written: Clips encoded so far.
        clip_failures: Clips that could not be encoded.
    """

    memory_bytes: int
    frames: int
    span_s: float
    frames_evicted_for_memory: int
    pending_clips: int
    clips_written: int
    clip_failures: int


class FrameRing:
    """Recent frames of one camera, downscaled and JPEG-compressed, bounded by age and bytes.

    Args:
        max_fps: Frames closer together than ``1 / max_fps`` are skipped.
        width_px: Frames wider than this are scaled down (aspect kept, even sizes).
        jpeg_quality: JPEG quality, 10..100.
        max_bytes: Memory cap; the oldest frames are dropped to stay under it.
    """

    def __init__(self, *, max_fps: float, width_px: int, jpeg_quality: int, max_bytes: int) -> None:
        self._frames: deque[BufferedFrame] = deque()
        self.memory_bytes = 0
        self.frames_evicted_for_memory = 0
        self.configure(max_fps=max_fps, width_px=width_px, jpeg_quality=jpeg_quality, max_bytes=max_bytes)

    def configure(self, *, max_fps: float, width_px: int, jpeg_quality: int, max_bytes: int) -> None:
        """Apply new settings to the frames buffered from now on; the buffered ones stay, within ``max_bytes``."""
        self.min_interval_s = 1.0 / max_fps
        self.width_px = width_px
        self.jpeg_quality = jpeg_quality
        self.max_bytes = max_bytes
        self._evict_for_memory()

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, frame: Frame) -> bool:
        """Buffer ``frame`` unless it comes too soon after the last one; return whether it was kept."""
        if self._frames and frame.captured_at < self._frames[-1].captured_at:
            self._frames.clear()  # time went backwards (a file restarted, the clock stepped): old frames no longer fit
            self.memory_bytes = 0
        if self._frames and frame.captured_at - self._frames[-1].captured_at < self.min_interval_s * 0.9:
            return False
        image = frame.host_image()
        h, w = image.shape[:2]
        if w > self.width_px:
            new_w = self.width_px - self.width_px % 2
            new_h = max(2, round(h * new_w / w / 2) * 2)
            image = shrink(image, (new_w, new_h))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            logger.warning("%s: JPEG encoding of a buffered frame failed", frame.camera_id)
            return False
        item = BufferedFrame(frame.captured_at, encoded.tobytes())
        self._frames.append(item)
        self.memory_bytes += len(item.jpeg)
        self._evict_for_memory()
        return True

    def _evict_for_memory(self) -> None:
        while self.memory_bytes > self.max_bytes and len(self._frames) > 1:
            self.memory_bytes -= len(self._frames.popleft().jpeg)
            self.frames_evicted_for_memory += 1

    def drop_before(self, t: float) -> None:
        """Forget frames captured before ``t``."""
        while self._frames and self._frames[0].captured_at < t:
            self.memory_bytes -= len(self._frames.popleft().jpeg)

    def between(self, t0: float, t1: float) -> list[BufferedFrame]:
        """Frames captured in ``[t0, t1]``, oldest first."""
        return [f for f in self._frames if t0 <= f.captured_at <= t1]

    @property
    def newest_at(self) -> float | None:
        """Capture time of the newest buffered frame, if any."""
        return self._frames[-1].captured_at if self._frames else None

    @property
    def span_s(self) -> float:
        """Seconds between the oldest and the newest buffered frame."""
        return self._frames[-1].captured_at - self._frames[0].captured_at if len(self._frames) > 1 else 0.0


def encode_clip(frames: Sequence[BufferedFrame], *, crf: int = 28) -> bytes:
    """Encode buffered frames into an H.264 MP4, each shown from its own capture time.

    Args:
        frames: Oldest first; at least one. Frames of another size than the first are scaled to it.
        crf: x264 constant rate factor (lower: better, bigger).

    Returns:
        The MP4 bytes (``faststart``, plays in browsers).

    Raises:
        ValueError: ``frames`` is empty or a frame is not a decodable JPEG.
    """
    if not frames:
        raise ValueError("a clip needs at least one frame, got none")
    images = []
    for item in frames:
        image = cv2.imdecode(np.frombuffer(item.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"buffered frame at {item.captured_at} is not a decodable JPEG")
        images.append(image)
    h, w = images[0].shape[:2]
    w, h = w - w % 2, h - h % 2
    with tempfile.TemporaryDirectory(prefix="anjian-clip-") as tmp:
        path = Path(tmp) / "clip.mp4"  # faststart rewrites the file, which a BytesIO cannot do
        _write_mp4(path, frames, images, (w, h), crf)
        return path.read_bytes()


def _write_mp4(
    path: Path, frames: Sequence[BufferedFrame], images: list[np.ndarray], size_wh: tuple[int, int], crf: int
) -> None:
    w, h = size_wh
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=max(1, round(len(frames) / max(1e-3, _span(frames)))))
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.time_base = _TIME_BASE
        stream.codec_context.time_base = _TIME_BASE
        # One x264 thread: clips are encoded one at a time beside the live pipeline, and x264's own
        # threads (three on two cores) cost 5-10% more CPU on a 10 s clip (159 against 151 ms at 640x360, AVX2) and
        # contend with the model.
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        t0 = frames[0].captured_at
        last_pts = -1
        for item, image in zip(frames, images, strict=True):
            if image.shape[:2] != (h, w):
                image = shrink(image, (w, h))
            video_frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            pts = max(last_pts + 1, round((item.captured_at - t0) / _TIME_BASE))
            video_frame.pts, video_frame.time_base = pts, _TIME_BASE
            last_pts = pts
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))


def _span(frames: Sequence[BufferedFrame]) -> float:
    return frames[-1].captured_at - frames[0].captured_at if len(frames) > 1 else 1.0


@dataclass(slots=True)
class _Pending:
    event_id: str
    start: float
    end: float
    future: Future[bytes] | None = None


class ClipRecorder:
    """Buffers one camera's analysed frames and cuts a clip around each confirmed incident.

    Args:
        config: Clip length, rate, size and memory cap.
        camera_id: For logs.
        executor: Encodes clips in the background when given; inline otherwise.

    Example:
        >>> recorder = ClipRecorder(EvidenceConfig(), "cam-1")
        >>> recorder.add_frame(frame)
        >>> recorder.request(event.id, confirmed_at=frame.captured_at)
        >>> for event_id, mp4 in recorder.poll(now): ...
    """

    def __init__(self, config: EvidenceConfig, camera_id: str, *, executor: Executor | None = None) -> None:
        self.config = config
        self.camera_id = camera_id
        self.executor = executor
        self.ring = FrameRing(
            max_fps=config.clip_fps,
            width_px=config.clip_width_px,
            jpeg_quality=config.jpeg_quality,
            max_bytes=int(config.max_buffer_mb * 1024 * 1024),
        )
        self._pending: list[_Pending] = []
        self._clock_at: float | None = None
        self.clips_written = 0
        self.clip_failures = 0

    def reconfigure(self, config: EvidenceConfig) -> None:
        """Apply a camera's new clip settings (a config reload) without losing what is buffered or pending.

        Clips requested from now on get the new length; a clip already requested keeps
        the window it was promised, and the frames buffered so far stay in the ring.
        """
        self.config = config
        self.ring.configure(
            max_fps=config.clip_fps,
            width_px=config.clip_width_px,
            jpeg_quality=config.jpeg_quality,
            max_bytes=int(config.max_buffer_mb * 1024 * 1024),
        )
        self._prune()

    def add_frame(self, frame: Frame) -> None:
        """Buffer an analysed frame and forget frames no clip can need any more.

        A frame captured before the newest buffered one means time went back (an NTP
        step, a file restarted): the ring forgets every frame it holds, so the clips
        still waiting for their end are cut now from the frames buffered so far. Waiting
        would cut them, the step's length later, from frames of an unrelated scene.
        """
        newest_at = self.ring.newest_at
        if newest_at is not None and frame.captured_at < newest_at:
            self._cut_waiting(step_s=newest_at - frame.captured_at)
        self.ring.add(frame)
        self._prune()

    def observe_clock(self, now: float) -> None:
        """Note the clock of a tick; one that went back (an NTP step) cuts the waiting clips now.

        A camera that sends no frame after the step would otherwise keep its clips waiting
        until the clock caught up with their end: the step's length, an hour for a
        timezone slip. Ticks come from one clock in order, so any step back is a step.
        """
        if self._clock_at is not None and now < self._clock_at - _CLOCK_STEP_S:
            self._cut_waiting(step_s=self._clock_at - now)
        self._clock_at = now

    def _cut_waiting(self, *, step_s: float) -> None:
        """Cut every clip still waiting for its end now, from the frames buffered so far."""
        still: list[_Pending] = []
        for pending in self._pending:
            if pending.future is None:
                logger.warning(
                    "%s: time went back %.1f s: the clip of %s is cut short, from the frames buffered",
                    self.camera_id,
                    step_s,
                    pending.event_id,
                )
                if not self._cut(pending, is_inline=False):
                    continue
            still.append(pending)
        self._pending = still

    def _prune(self) -> None:
        """Forget frames older than ``clip_pre_s`` before the newest, unless a pending clip needs them."""
        if self.ring.newest_at is None:
            return
        keep_since = self.ring.newest_at - self.config.clip_pre_s
        if self._pending:
            keep_since = min(keep_since, min(p.start for p in self._pending))
        self.ring.drop_before(keep_since)

    def request(self, event_id: str, *, confirmed_at: float) -> None:
        """Ask for the clip of the incident ``event_id`` confirmed at ``confirmed_at``."""
        self._pending.append(
            _Pending(event_id, confirmed_at - self.config.clip_pre_s, confirmed_at + self.config.clip_post_s)
        )

    def poll(self, now: float, *, is_final: bool = False) -> list[tuple[str, bytes]]:
        """Return ``(event_id, mp4)`` of the clips finished by ``now`` (all of them with ``is_final``).

        ``now`` must be a time by which every frame the clips need was added: the
        capture time of the newest analysed frame, or a clock minus the longest a
        frame can still be on its way.
        """
        done: list[tuple[str, bytes]] = []
        still: list[_Pending] = []
        for pending in self._pending:
            is_due = pending.future is None and (now >= pending.end or is_final)
            if is_due and not self._cut(pending, is_inline=is_final):
                continue
            if pending.future is not None and (pending.future.done() or is_final):
                self._finish(pending, pending.future.result, done)
                continue
            still.append(pending)
        if len(still) != len(self._pending):
            self._pending = still
            self._prune()
        return done

    def _cut(self, pending: _Pending, *, is_inline: bool) -> bool:
        """Start encoding the clip's buffered frames (at once when inline); False when it has none."""
        frames = self.ring.between(pending.start, pending.end)
        if not frames:
            logger.warning("%s: no buffered frame for the clip of %s", self.camera_id, pending.event_id)
            self.clip_failures += 1
            return False
        if self.executor is not None and not is_inline:
            pending.future = self.executor.submit(encode_clip, frames)
            return True
        future: Future[bytes] = Future()
        try:
            future.set_result(encode_clip(frames))
        except Exception as exc:  # noqa: BLE001 - held for _finish to report, as an executor's would be
            future.set_exception(exc)
        pending.future = future
        return True

    def pending_ids(self) -> set[str]:
        """Event ids whose clips are still to come."""
        return {pending.event_id for pending in self._pending}

    def _finish(self, pending: _Pending, result: object, done: list[tuple[str, bytes]]) -> None:
        try:
            clip = result()  # type: ignore[operator]
        except Exception:
            logger.exception("%s: clip encoding failed for %s", self.camera_id, pending.event_id)
            self.clip_failures += 1
            return
        self.clips_written += 1
        done.append((pending.event_id, clip))

    def stats(self) -> EvidenceStats:
        """Memory and counters of this camera's evidence."""
        return EvidenceStats(
            memory_bytes=self.ring.memory_bytes,
            frames=len(self.ring),
            span_s=self.ring.span_s,
            frames_evicted_for_memory=self.ring.frames_evicted_for_memory,
            pending_clips=len(self._pending),
            clips_written=self.clips_written,
            clip_failures=self.clip_failures,
        )
