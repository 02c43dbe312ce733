"""One reader thread per camera: decode, sample, keep only the newest frame, reconnect forever."""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable

from anjian.cameras.backoff import ReconnectWait
from anjian.cameras.config import CameraConfig
from anjian.cameras.decode import decode_frames, is_live_url
from anjian.cameras.errors import (
    CameraError,
    StreamConfigError,
    StreamCredentialsError,
    StreamStalledError,
    StreamUnreachableError,
)
from anjian.cameras.frame import Frame
from anjian.cameras.health import CameraHealth, CameraState, HealthTracker
from anjian.cameras.reachability import port_probe
from anjian.cameras.url import mask_credentials

__all__ = ["VideoSource"]

logger = logging.getLogger(__name__)

_PREVIOUS_READER_POLL_S = 0.1
"""How often a restarted reader checks whether the reader stopped before it has left FFmpeg."""


class VideoSource:
    """Reads one camera in a background thread and exposes its newest sampled frame.

    A slow consumer never grows a queue: each new frame replaces the previous one,
    and a frame replaced before anyone took it is counted as dropped. Disconnects,
    stalls and decode failures lead to reconnects with exponential backoff and
    jitter, forever, until ``stop()``; between attempts the camera's TCP port is
    checked about once a second, and a camera whose port comes back is reopened at
    once (``ReconnectWait``). The backoff grows only while connections deliver
    nothing: one that delivered frames for ``stall_timeout_s`` starts it over, a
    shorter one steps it down. Refusals that need a config change (path or host, not
    a video) are retried too, at the longest delay, and reported as ``failed_config``;
    refused credentials likewise, but at their own, far longer delays (5 min growing to
    1 h by default), since every retry is a failed login that may lock the account. A
    file that is not looped ends the source when it ends (or fails to open).

    ``start()`` after ``stop()`` resumes reading even while the stopped reader is still
    inside FFmpeg: a new reader takes over once the old one has left, so the camera is
    never read by two at once.

    Example:
        >>> source = VideoSource(camera_config)
        >>> source.start()
        >>> frame = source.wait_frame(timeout_s=5.0)
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
        self._is_live = is_live_url(config.url.get_secret_value())
        # Liveness of the current connection (monotonic seconds), for the stall watchdog.
        self._last_alive_at = 0.0
        self._flowing_at: float | None = None
        # Monotonic seconds of the current connection's first and last published frames.
        self._first_published_at: float | None = None
        self._last_published_at = 0.0

    @property
    def camera_id(self) -> str:
        """The camera's id."""
        return self.config.id

    @property
    def is_finished(self) -> bool:
        """True once a non-looping file has been read to its end (or the source stopped)."""
        return self._is_finished

    @property
    def keeps_every_frame(self) -> bool:
        """False: the reader runs on whether its frames are taken or not, and the newest wins."""
        return False

    def health(self) -> CameraHealth:
        """Current health snapshot of this camera.

        Also the stall watchdog: a live camera that has decoded no frame (with
        ``keyframes_only``: read no packet) for ``stall_timeout_s`` is reported ``stalled``
        (since then) at once, even while its reader still waits inside FFmpeg for the
        socket timeout to fire.
        """
        health = self._health.snapshot()
        if health.state == CameraState.ONLINE and self._is_live:
            silent_s = self._silent_s()
            if silent_s > self.config.stall_timeout_s:
                self._health.set_state(
                    CameraState.STALLED,
                    self._clock() - silent_s,
                    f"{self.config.masked_url}: no frame for {silent_s:.1f}s",
                )
                health = self._health.snapshot()
        return health

    def start(self) -> None:
        """Start the reader thread (idempotent while it runs).

        After ``stop()`` the old reader may still be inside FFmpeg (an open can block for
        ``open_timeout_s``, longer than ``stop`` waits). The new reader gets a stop event
        of its own, so the old one still ends, and opens the camera only once the old one
        has gone: never two connections, nor two readers publishing, at once.
        """
        previous = self._thread
        if previous is not None and previous.is_alive() and not self._stop.is_set():
            return
        stop = self._stop = threading.Event()
        self._is_finished = False
        if self._health.snapshot().state == CameraState.STOPPED:
            self._health.set_state(CameraState.CONNECTING, self._clock())
        self._thread = threading.Thread(
            target=self._run, args=(stop, previous), name=f"camera-{self.config.id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the reader to stop and wait for it up to ``timeout_s``.

        A reader blocked inside FFmpeg notices within ``stall_timeout_s``; it publishes
        nothing more once asked to stop, so callers may replace it at once.
        """
        self._stop.set()
        self._is_finished = True
        with self._new_frame:
            self._new_frame.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.debug("%s: reader still inside FFmpeg; it will exit on its own", self.config.id)
        self._health.set_state(CameraState.STOPPED, self._clock())

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

    def _publish(self, frame: Frame, stop: threading.Event) -> None:
        with self._new_frame:
            if stop.is_set():
                return
            previous = self._latest
            if previous is not None and previous.index > self._taken_index:
                self._health.count(dropped=1)
            self._latest = frame
            self._new_frame.notify_all()
        self._health.delivered(frame.captured_at)

    def _on_open(self, decoder: str) -> None:
        self._health.set_decoder(decoder)
        self._last_alive_at = self._flowing_at = time.monotonic()

    def _on_decoded(self) -> None:
        """Count a decoded frame, a sign of life."""
        self._health.count(decoded=1)
        self._on_alive()

    def _on_alive(self) -> None:
        """A frame (or, decoding keyframes only, a packet) arrived; it proves the stream flows only if it
        came within the stall timeout of the previous one.

        When a stream hangs, FFmpeg's first I/O timeout flushes the frame its parser held
        back; that lone late frame must not reset the watchdog or bring the camera online.
        """
        now = time.monotonic()
        if now - self._last_alive_at <= self.config.stall_timeout_s:
            self._flowing_at = now
        self._last_alive_at = now

    def _silent_s(self) -> float:
        """Seconds since frames last flowed on this connection (0 before it opened)."""
        flowing_at = self._flowing_at
        return 0.0 if flowing_at is None else time.monotonic() - flowing_at

    def _next_index(self) -> int:
        with self._new_frame:
            return self._latest.index + 1 if self._latest is not None else 0

    def _read_once(self, start_index: int, stop: threading.Event) -> int:
        """Run one connection until it ends; return the next frame index. Raises ``CameraError``."""
        index = start_index
        self._first_published_at = None
        for frame in decode_frames(
            self.config,
            stop=stop,
            clock=self._clock,
            start_index=index,
            on_decoded=self._on_decoded,
            on_decode_error=lambda _message: self._health.count(decode_errors=1),
            on_open=self._on_open,
            on_packet=self._on_alive,
        ):
            if stop.is_set():
                break
            is_flowing = not self._is_live or self._silent_s() <= self.config.stall_timeout_s
            if self._health.snapshot().state != CameraState.ONLINE and is_flowing:
                self._health.set_state(CameraState.ONLINE, self._clock())
                logger.info("%s: online (%s)", self.config.id, self.config.masked_url)
            index = frame.index + 1
            self._publish(frame, stop)
            self._last_published_at = time.monotonic()
            if self._first_published_at is None:
                self._first_published_at = self._last_published_at
        return index

    def _delivered_s(self) -> float:
        """Seconds from the first to the last frame the last connection published (0 for none or one)."""
        first = self._first_published_at
        return 0.0 if first is None else self._last_published_at - first

    def _run(self, stop: threading.Event, previous: threading.Thread | None) -> None:
        """Read the camera until ``stop`` is set (this reader's own event), after ``previous`` has ended."""
        while previous is not None and previous.is_alive() and not stop.is_set():
            previous.join(_PREVIOUS_READER_POLL_S)  # a stopped reader still inside FFmpeg: one at a time
        config = self.config
        url = config.url.get_secret_value()
        retry = ReconnectWait(
            config.reconnect,
            self._rng,
            probe=port_probe(url, timeout_s=min(1.0, config.open_timeout_s)),
            sleep=stop.wait,
            healthy_after_s=config.stall_timeout_s,
        )
        is_file = not is_live_url(url)
        index = self._next_index()  # a restarted reader numbers on, so its frames are taken
        last_problem: tuple[CameraState, str] | None = None
        while not stop.is_set():
            index_before = index
            state, error, is_credentials_refused = CameraState.OFFLINE, "", False
            try:
                index = self._read_once(index, stop)
                if is_file and not stop.is_set():
                    logger.info("%s: end of file", config.id)
                    self._health.set_state(CameraState.STOPPED, self._clock())
                    break
            except StreamStalledError as exc:
                state, error = CameraState.STALLED, str(exc)
            except StreamCredentialsError as exc:
                state, error, is_credentials_refused = CameraState.FAILED_CONFIG, str(exc), True
            except StreamConfigError as exc:
                state, error = CameraState.FAILED_CONFIG, str(exc)
            except StreamUnreachableError as exc:
                error = str(exc)
                retry.refused()
            except CameraError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything a decoder throws
                error = f"unexpected {type(exc).__name__}: {mask_credentials(str(exc), url=url)}"
                logger.error("%s: reader failed: %s", config.id, error)
                logger.debug(
                    "%s: %s", config.id, mask_credentials("".join(traceback.format_exception(exc)), url=url)
                )
            if stop.is_set():
                break
            if is_file and not config.loop and state == CameraState.FAILED_CONFIG:
                self._health.set_state(state, self._clock(), error)
                logger.error("%s: %s", config.id, error)
                break
            # _read_once returned the next index even when it raised: re-read what it published.
            index = max(index, self._next_index())
            if index != index_before:
                last_problem = None  # it was online in between: report the next problem again
                retry.connected(self._delivered_s())
            delay = retry.next_delay(
                is_config_error=state == CameraState.FAILED_CONFIG,
                is_credentials_refused=is_credentials_refused,
            )
            self._health.set_state(state, self._clock(), error)
            self._health.count(reconnects=1)
            if (state, error) != last_problem:
                logger.warning("%s: %s: %s; retrying in %.1fs", config.id, state, error, delay)
                last_problem = (state, error)
            else:
                logger.debug("%s: %s: %s; retrying in %.1fs", config.id, state, error, delay)
            if retry.wait(delay):
                break
        if not stop.is_set():  # it ended on its own; a stopped one leaves the flag to stop() and start()
            self._is_finished = True
        with self._new_frame:
            self._new_frame.notify_all()
