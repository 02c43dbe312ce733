"""One reader thread per camera: decode, sample, keep only the newest frame, reconnect forever."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from cameras.config import CameraConfig
from cameras.decode import decode_frames, is_live_url
from cameras.errors import CameraError, StreamOpenError, StreamStalledError
from cameras.frame import Frame
from cameras.health import CameraHealth, CameraState, HealthTracker
from cameras.url import mask_credentials

__all__ = ["VideoSource", "backoff_delays"]

logger = logging.getLogger(__name__)


def backoff_delays(
    initial_s: float, max_s: float, multiplier: float, jitter: float, rng: random.Random
) -> Callable[[], float]:
    """Return a function giving successive reconnect delays: exponential, capped, jittered."""
    state = {"next": initial_s}

    def next_delay() -> float:
        base = state["next"]
        state["next"] = min(max_s, base * multiplier)
        return max(0.0, base * (1.0 + rng.uniform(-jitter, jitter)))

    return next_delay


class VideoSource:
    """Reads one camera in a background thread and exposes its newest sampled frame.

    A slow consumer never grows a queue: each new frame replaces the previous one,
    and a frame replaced before anyone took it is counted as dropped. Disconnects,
    stalls and decode failures lead to reconnects with exponential backoff, forever,
    until ``stop()``. Files (not looping) end the source when they end.

    Example:
        >>> source = VideoSource(camera_config)
        >>> source.start()
        >>> frame = source.wait_frame(after_index=-1, timeout_s=5.0)
        >>> source.stop()
    """

    def __init__(
        self,
        config: CameraConfig,
        *,
        clock: Callable[[], float] = time.time,
        new_frame: threading.Condition | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Create a stopped source.

        Args:
            config: The camera.
            clock: Wall clock, epoch seconds.
            new_frame: Condition notified on every new frame; share one across sources
                so a consumer can wait for "any camera has something".
            rng: Random source for backoff jitter.
        """
        self.config = config
        self._clock = clock
        self._new_frame = new_frame or threading.Condition()
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None
        self._taken_index = -1
        self._health = HealthTracker(config.id, clock())
        self._is_finished = False

    @property
    def camera_id(self) -> str:
        """The camera's id."""
        return self.config.id

    @property
    def is_finished(self) -> bool:
        """True once a non-looping file has been read to its end (or the source stopped)."""
        return self._is_finished

    def health(self) -> CameraHealth:
        """Current health snapshot of this camera."""
        return self._health.snapshot()

    def start(self) -> None:
        """Start the reader thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._is_finished = False
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.config.id}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the reader to stop and wait for it up to ``timeout_s``."""
        self._stop.set()
        with self._new_frame:
            self._new_frame.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._health.set_state(CameraState.STOPPED, self._clock())
        self._is_finished = True

    def take_latest(self) -> Frame | None:
        """Return the newest frame not taken yet, or ``None`` if there is none."""
        with self._new_frame:
            frame = self._latest
            if frame is None or frame.index <= self._taken_index:
                return None
            self._taken_index = frame.index
            return frame

    def wait_frame(self, *, timeout_s: float) -> Frame | None:
        """Block up to ``timeout_s`` for a frame not taken yet, and take it."""
        deadline = time.monotonic() + timeout_s
        with self._new_frame:
            while True:
                frame = self.take_latest()
                if frame is not None or self._is_finished:
                    return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._new_frame.wait(remaining)

    def _publish(self, frame: Frame) -> None:
        with self._new_frame:
            previous = self._latest
            if previous is not None and previous.index > self._taken_index:
                self._health.count(dropped=1)
            self._latest = frame
            self._new_frame.notify_all()
        self._health.delivered(frame.captured_at)

    def _run(self) -> None:
        config = self.config
        cfg = config.reconnect
        next_delay = backoff_delays(cfg.initial_delay_s, cfg.max_delay_s, cfg.multiplier, cfg.jitter, self._rng)
        is_live = is_live_url(config.url.get_secret_value())
        index = 0
        attempts = 0
        while not self._stop.is_set():
            if attempts > 0:
                self._health.count(reconnects=1)
            attempts += 1
            self._health.set_state(CameraState.CONNECTING, self._clock())
            error: str | None = None
            state_on_error = CameraState.OFFLINE
            try:
                for frame in decode_frames(
                    config,
                    stop=self._stop,
                    clock=self._clock,
                    start_index=index,
                    on_decoded=lambda: self._health.count(decoded=1),
                    on_decode_error=lambda _msg: self._health.count(decode_errors=1),
                ):
                    if self.health().state != CameraState.ONLINE:
                        self._health.set_state(CameraState.ONLINE, self._clock())
                        next_delay = backoff_delays(
                            cfg.initial_delay_s, cfg.max_delay_s, cfg.multiplier, cfg.jitter, self._rng
                        )
                    index = frame.index + 1
                    self._publish(frame)
                if not is_live and not self._stop.is_set():
                    logger.info("%s: end of file", config.id)
                    break
                error = "stream ended (disconnected)"
            except StreamStalledError as exc:
                error, state_on_error = str(exc), CameraState.STALLED
            except StreamOpenError as exc:
                error = str(exc)
                if not is_live:  # a missing or unreadable file will not fix itself
                    self._health.set_state(CameraState.FAILED_CONFIG, self._clock(), error)
                    logger.error("%s: %s", config.id, error)
                    break
            except CameraError as exc:
                error = str(exc)
            except Exception as exc:  # the loop must survive anything a decoder throws
                error = f"unexpected {type(exc).__name__}: {mask_credentials(str(exc))}"
                logger.exception("%s: reader failed", config.id)
            if self._stop.is_set():
                break
            delay = next_delay()
            self._health.set_state(state_on_error, self._clock(), error)
            logger.warning("%s: %s; reconnect in %.1fs", config.id, error, delay)
            if self._stop.wait(delay):
                break
        self._is_finished = True
        with self._new_frame:
            self._new_frame.notify_all()
