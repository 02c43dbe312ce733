"""Health of one camera: its connection state and counters, as the control room sees them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from enum import StrEnum

from anjian.cameras.url import mask_credentials

__all__ = ["CameraHealth", "CameraState", "HealthTracker"]


class CameraState(StrEnum):
    """Connection state of a camera.

    ``connecting`` before the first frame; ``online`` while frames flow; then, while
    reconnecting, the reason it is down: ``stalled`` (the stream went silent),
    ``offline`` (disconnected, unreachable, refused, timed out) or ``failed_config``
    (it answers but refuses what is configured: credentials, path, host name, not a
    video). ``stopped``: not read any more (removed, shut down, or a file that ended).
    ``stale``: set by the alert service, never by a reader: the pipeline node that read
    the camera stopped reporting it (its last report is older than a few report
    intervals), so its real state is unknown until a node reports it again.
    """

    CONNECTING = "connecting"
    ONLINE = "online"
    STALLED = "stalled"
    OFFLINE = "offline"
    FAILED_CONFIG = "failed_config"
    STOPPED = "stopped"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """A snapshot of one camera's health.

    Attributes:
        camera_id: Camera id.
        state: Current connection state.
        since: Epoch seconds when ``state`` was entered (retries in the same state keep it).
        fps: Recent rate of frames delivered to the pipeline (after sampling); 0 when down.
        frames_decoded: Frames decoded since start.
        frames_delivered: Frames sampled and handed on since start.
        frames_dropped: Delivered frames overwritten before the pipeline took them.
        decode_errors: Packets or frames that failed to decode.
        reconnects: Connection attempts after the first.
        last_error: Last error message, credentials masked; ``None`` if none yet.
        last_frame_at: Epoch seconds of the last delivered frame, or ``None``.
        down_since: Epoch seconds since when the camera has delivered no frame (the start,
            or when it last left ``online``); ``None`` while online.
        decoder: Where frames are decoded: ``"cpu"`` or ``"cuda"`` (after any fallback).
        node: The pipeline node reading the camera (``anjian run --node NAME``), set by the
            alert service that gathers the plant's cameras; ``None`` when it is not a node's.
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
    down_since: float | None = None
    decoder: str = "cpu"
    node: str | None = None


class HealthTracker:
    """Thread-safe holder of a camera's health, updated by its reader thread."""

    def __init__(self, camera_id: str, now: float) -> None:
        self._lock = threading.Lock()
        self._health = CameraHealth(
            camera_id=camera_id, state=CameraState.CONNECTING, since=now, down_since=now
        )
        self._fps_ema = 0.0
        self._previous_frame_at: float | None = None  # within the current online spell

    def snapshot(self) -> CameraHealth:
        """Return the current health (an immutable copy)."""
        with self._lock:
            return self._health

    def set_state(self, state: CameraState, now: float, error: str | None = None) -> None:
        """Enter ``state`` (keeping ``since`` when unchanged) and record ``error`` if given.

        Leaving ``online`` starts ``down_since`` and zeroes ``fps``; entering it clears both.
        ``error`` is masked again here, the one door to ``last_error`` (``/healthz``,
        ``/cameras``, camera-fault events), whatever produced it.
        """
        if error is not None:
            error = mask_credentials(error)
        with self._lock:
            h = self._health
            since = h.since if h.state == state else now
            down_since = h.down_since
            fps = h.fps
            if state == CameraState.ONLINE:
                down_since = None
            elif h.state == CameraState.ONLINE or down_since is None:
                down_since = now
            if state != CameraState.ONLINE:
                fps, self._fps_ema, self._previous_frame_at = 0.0, 0.0, None
            self._health = replace(
                h,
                state=state,
                since=since,
                down_since=down_since,
                fps=fps,
                last_error=error if error is not None else h.last_error,
            )

    def set_decoder(self, decoder: str) -> None:
        """Record where frames are decoded (``"cpu"`` or ``"cuda"``)."""
        with self._lock:
            self._health = replace(self._health, decoder=decoder)

    def count(
        self, *, decoded: int = 0, dropped: int = 0, decode_errors: int = 0, reconnects: int = 0
    ) -> None:
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
            previous = self._previous_frame_at
            if previous is not None and now > previous:
                rate = 1.0 / (now - previous)
                self._fps_ema = rate if self._fps_ema == 0.0 else 0.8 * self._fps_ema + 0.2 * rate
            self._previous_frame_at = now
            self._health = replace(
                h, frames_delivered=h.frames_delivered + 1, last_frame_at=now, fps=round(self._fps_ema, 2)
            )
