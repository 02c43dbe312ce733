"""Health of one camera: its connection state and counters, as the control room sees them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = ["CameraHealth", "CameraState", "HealthTracker"]


class CameraState(StrEnum):
    """Connection state of a camera."""

    CONNECTING = "connecting"
    ONLINE = "online"
    STALLED = "stalled"
    OFFLINE = "offline"
    FAILED_CONFIG = "failed_config"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """A snapshot of one camera's health.

    Attributes:
        camera_id: Camera id.
        state: Current connection state.
        since: Epoch seconds when ``state`` was entered.
        fps: Recent rate of frames delivered to the pipeline (after sampling).
        frames_decoded: Frames decoded since start.
        frames_delivered: Frames sampled and handed on since start.
        frames_dropped: Delivered frames overwritten before the pipeline took them.
        decode_errors: Packets or frames that failed to decode.
        reconnects: Connection attempts after the first.
        last_error: Last error message, credentials masked; ``None`` if none yet.
        last_frame_at: Epoch seconds of the last delivered frame, or ``None``.
    """

    camera_id: str
    state: CameraState
    since: float
    fps: float = 0.0
    frames_decoded: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    last_error: str | None = None
    last_frame_at: float | None = None


class HealthTracker:
    """Thread-safe holder of a camera's health, updated by its reader thread."""

    def __init__(self, camera_id: str, now: float) -> None:
        self._lock = threading.Lock()
        self._health = CameraHealth(camera_id=camera_id, state=CameraState.CONNECTING, since=now)
        self._fps_ema = 0.0

    def snapshot(self) -> CameraHealth:
        """Return the current health (an immutable copy)."""
        with self._lock:
            return self._health

    def set_state(self, state: CameraState, now: float, error: str | None = None) -> None:
        """Enter ``state`` (keeping ``since`` when unchanged) and record ``error`` if given."""
        with self._lock:
            h = self._health
            since = h.since if h.state == state else now
            self._health = replace(
                h, state=state, since=since, last_error=error if error is not None else h.last_error
            )

    def count(self, *, decoded: int = 0, dropped: int = 0, decode_errors: int = 0, reconnects: int = 0) -> None:
        """Add to the counters."""
        with self._lock:
            h = self._health
            self._health = replace(
                h,
                frames_decoded=h.frames_decoded + decoded,
                frames_dropped=h.frames_dropped + dropped,
                decode_errors=h.decode_errors + decode_errors,
                reconnects=h.reconnects + reconnects,
            )

    def delivered(self, now: float) -> None:
        """Record one frame handed to the pipeline at ``now``, updating the fps estimate."""
        with self._lock:
            h = self._health
            if h.last_frame_at is not None and now > h.last_frame_at:
                rate = 1.0 / (now - h.last_frame_at)
                self._fps_ema = rate if self._fps_ema == 0.0 else 0.8 * self._fps_ema + 0.2 * rate
            self._health = replace(
                h, frames_delivered=h.frames_delivered + 1, last_frame_at=now, fps=round(self._fps_ema, 2)
            )
