"""The live view: each camera's latest analysed frame with its detections and zones, as JPEG on demand.

The runner hands every analysed frame here (keeping a reference: no copy, no drawing
on the frame path). A frame is drawn and encoded only when someone asks for it, and at
most once however many screens ask (a wall of cameras, several operators), so the cost
follows what is watched, not what is analysed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.config import ZoneConfig
from anjian.pipeline.event import EventBox
from anjian.pipeline.shrink import shrink
from anjian.pipeline.snapshot import render_snapshot

__all__ = ["LiveFrame", "LiveView", "clock_caption"]


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """One rendered live frame.

    Attributes:
        camera_id: Its camera.
        jpeg: The frame with boxes and zones drawn, JPEG.
        seq: Increases with every analysed frame of the camera (an ETag).
        captured_at: Capture time of the frame, epoch seconds.
    """

    camera_id: str
    jpeg: bytes
    seq: int
    captured_at: float


@dataclass(slots=True)
class _Latest:
    frame: Frame
    detections: Detections
    zones: Sequence[ZoneConfig]
    seq: int
    rendered: LiveFrame | None = None


class LiveView:
    """Latest analysed frame per camera; thread-safe.

    Args:
        max_width: Frames wider than this are scaled down before drawing (a wall shows thumbnails).
        quality: JPEG quality, 1..100.
        min_confidence: Boxes below this score are not drawn.
        caption: Builds the caption of a frame (camera name, time); none when ``None``.
    """

    def __init__(
        self,
        *,
        max_width: int = 960,
        quality: int = 75,
        min_confidence: float = 0.25,
        caption: Callable[[str, float], str] | None = None,
    ) -> None:
        if max_width < 32 or not 1 <= quality <= 100 or not 0 <= min_confidence <= 1:
            raise ValueError(
                f"expected max_width >= 32, quality 1..100 and min_confidence 0..1, got {max_width}, {quality}, "
                f"{min_confidence}"
            )
        self._max_width = max_width
        self._quality = quality
        self._min_confidence = min_confidence
        self._caption = caption
        self._lock = threading.Lock()
        self._render_locks: dict[str, threading.Lock] = {}
        self._latest: dict[str, _Latest] = {}
        self.renders = 0

    def update(self, frame: Frame, detections: Detections, zones: Sequence[ZoneConfig] = ()) -> None:
        """Keep ``frame`` as its camera's latest (called on the frame path: references only)."""
        with self._lock:
            previous = self._latest.get(frame.camera_id)
            seq = previous.seq + 1 if previous is not None else 1
            self._latest[frame.camera_id] = _Latest(frame, detections, zones, seq)
            self._render_locks.setdefault(frame.camera_id, threading.Lock())

    def forget(self, camera_id: str) -> None:
        """Drop a camera that is no longer analysed."""
        with self._lock:
            self._latest.pop(camera_id, None)

    def camera_ids(self) -> list[str]:
        """Cameras with a live frame."""
        with self._lock:
            return sorted(self._latest)

    def seq(self, camera_id: str) -> int | None:
        """The latest frame's sequence number, without rendering it; ``None`` when there is none."""
        with self._lock:
            latest = self._latest.get(camera_id)
            return latest.seq if latest is not None else None

    def frame(self, camera_id: str) -> LiveFrame | None:
        """The camera's latest frame as JPEG (drawn at most once per frame), or ``None`` when there is none."""
        with self._lock:
            latest = self._latest.get(camera_id)
            render_lock = self._render_locks.get(camera_id)
        if latest is None or render_lock is None:
            return None
        with render_lock:  # several viewers of one new frame: one of them draws it
            if latest.rendered is None:
                latest.rendered = self._render(latest)
                self.renders += 1
            return latest.rendered

    def _render(self, latest: _Latest) -> LiveFrame:
        image = np.asarray(latest.frame.host_image())
        h, w = image.shape[:2]  # the detections' pixel space
        if w > self._max_width:
            image = shrink(image, (self._max_width, round(h * self._max_width / w)))
        dets = latest.detections
        names = dets.class_names
        keep = np.flatnonzero(dets.confidence >= self._min_confidence)
        boxes = [
            EventBox(
                class_name=names.get(int(dets.class_id[i]), str(int(dets.class_id[i]))),
                confidence=float(dets.confidence[i]),
                xyxy_norm=(
                    float(np.clip(dets.xyxy[i, 0] / w, 0, 1)),
                    float(np.clip(dets.xyxy[i, 1] / h, 0, 1)),
                    float(np.clip(dets.xyxy[i, 2] / w, 0, 1)),
                    float(np.clip(dets.xyxy[i, 3] / h, 0, 1)),
                ),
            )
            for i in keep
        ]
        caption = self._caption(latest.frame.camera_id, latest.frame.captured_at) if self._caption else ""
        jpeg = render_snapshot(image, boxes, latest.zones, self._quality, caption=caption)
        return LiveFrame(latest.frame.camera_id, jpeg, latest.seq, latest.frame.captured_at)


def clock_caption(name_of: Callable[[str], str], time_zone: str = "UTC") -> Callable[[str, float], str]:
    """A caption of the camera's name and the frame's local time, e.g. ``"抛光线东侧 · 10:02:03"``."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(time_zone)

    def caption(camera_id: str, captured_at: float) -> str:
        at = datetime.fromtimestamp(captured_at, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
        return f"{name_of(camera_id)} · {at}"

    return caption
