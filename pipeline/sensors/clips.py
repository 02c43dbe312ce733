"""Clips of the cameras a sensor names, from the moment its reading crossed: cut from the live view.

A gas alarm is judged by looking at the place: was there a leak, a worker, a vapour
cloud? ``LinkedCameraClips`` keeps, for each camera some sensor names, the last
``pre_s + post_s`` seconds of that camera's live frames (``anjian.pipeline.live``: the
analysed frames with their boxes drawn, JPEG), sampled at most ``fps`` times a
second on its own thread. When a sensor incident is raised the runner asks for a
clip of its camera around the crossing; ``post_s`` later the buffered frames from
``at - pre_s`` to ``at + post_s`` are encoded to an H.264 MP4
(``anjian.pipeline.evidence.encode_clip``) and handed to ``deliver``, which
publishes it as one more revision of the incident, as the camera rules do.

Memory: a live frame is 50-150 kB at the live view's 960 px, so 10 s at 2 fps is
1-3 MB per linked camera.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from anjian.pipeline.evidence import BufferedFrame, encode_clip

__all__ = ["LinkedCameraClips", "LiveFrameSource"]

logger = logging.getLogger(__name__)

LiveFrameSource = Callable[[str], BufferedFrame | None]
"""The latest live frame of a camera (capture time and JPEG), or ``None``."""


@dataclass(slots=True)
class _Request:
    event_id: str
    camera_id: str
    at: float


class LinkedCameraClips:
    """Buffers the linked cameras' live frames and cuts clips around sensor crossings (see the module docstring).

    Args:
        camera_ids: The cameras some sensor names.
        frame_of: The latest live frame of a camera.
        deliver: Called with ``(event_id, mp4)`` for each finished clip (from this object's thread).
        pre_s: Seconds of video before the crossing.
        post_s: Seconds after it.
        fps: Frames sampled per second at most.
        clock: Wall clock, epoch seconds.

    Example:
        >>> clips = LinkedCameraClips(["cam-1"], frame_of, deliver=runner.attach_clip)
        >>> clips.start(); clips.request(event.id, "cam-1", at=event.started_at); ...; clips.stop()
    """

    def __init__(
        self,
        camera_ids: Iterable[str],
        frame_of: LiveFrameSource,
        deliver: Callable[[str, bytes], object],
        *,
        pre_s: float = 5.0,
        post_s: float = 5.0,
        fps: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if pre_s < 0 or post_s < 0 or fps <= 0:
            raise ValueError(f"expected pre_s >= 0, post_s >= 0 and fps > 0, got {pre_s}, {post_s}, {fps}")
        self._frame_of = frame_of
        self._deliver = deliver
        self.pre_s, self.post_s, self.fps = pre_s, post_s, fps
        self._clock = clock
        self._rings: dict[str, deque[BufferedFrame]] = {camera_id: deque() for camera_id in camera_ids}
        self._pending: list[_Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0

    def request(self, event_id: str, camera_id: str, *, at: float) -> bool:
        """Ask for the clip of ``camera_id`` around ``at`` for ``event_id``; False for a camera not buffered."""
        if camera_id not in self._rings:
            return False
        with self._lock:
            self._pending.append(_Request(event_id, camera_id, at))
        return True

    def start(self) -> None:
        """Sample and cut on a background thread until ``stop``."""
        if self._thread is not None:
            raise RuntimeError("the linked-camera clips were started before")
        self._thread = threading.Thread(target=self._run, name="sensor-clips", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread; clips not yet due are cut from what is buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.poll(float("inf"))

    def sample(self, now: float) -> None:
        """Buffer each camera's latest live frame if it is new, and forget frames no clip can need."""
        keep_after = now - self.pre_s - self.post_s - 2.0 / self.fps
        with self._lock:
            oldest_wanted = min((r.at - self.pre_s for r in self._pending), default=keep_after)
        for camera_id, ring in self._rings.items():
            frame = self._frame_of(camera_id)
            if frame is not None and (not ring or frame.captured_at > ring[-1].captured_at):
                ring.append(frame)
            while ring and ring[0].captured_at < min(keep_after, oldest_wanted):
                ring.popleft()

    def poll(self, now: float) -> int:
        """Cut and deliver the clips due at ``now`` (``at + post_s`` passed); returns how many were delivered."""
        with self._lock:
            due = [r for r in self._pending if r.at + self.post_s <= now]
            self._pending = [r for r in self._pending if r.at + self.post_s > now]
        delivered = 0
        for request in due:
            frames = [
                f
                for f in self._rings[request.camera_id]
                if request.at - self.pre_s <= f.captured_at <= request.at + self.post_s
            ]
            if not frames:
                logger.warning(
                    "%s: no live frames around %.0f for the clip of %s",
                    request.camera_id,
                    request.at,
                    request.event_id,
                )
                continue
            try:
                mp4 = encode_clip(frames)
            except (ValueError, OSError) as exc:
                logger.warning("%s: clip of %s failed: %s", request.camera_id, request.event_id, exc)
                continue
            self._deliver(request.event_id, mp4)
            delivered += 1
        self.delivered += delivered
        return delivered

    def _run(self) -> None:
        interval_s = 1.0 / self.fps
        while not self._stop.wait(interval_s):
            try:
                now = self._clock()
                self.sample(now)
                self.poll(now)
            except Exception:  # the sampler survives a fault; logged with its traceback
                logger.exception("sensor clips: sampling failed")
