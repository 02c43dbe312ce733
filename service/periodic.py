"""A background thread that does one thing every few seconds until it is stopped, surviving its faults.

The service's periodic workers (SLA escalation, the webhook lease heartbeat, the promoted-model
watch) each run one ``tick`` on a timer; this is that timer, written once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["PeriodicThread"]

logger = logging.getLogger(__name__)


class PeriodicThread:
    """Calls ``tick()`` every ``interval_s`` in a daemon thread, from ``start`` until ``stop``.

    A tick that raises is logged and the next one runs on time: a locked database or a
    bad file must not end a worker the service relies on. The first tick runs
    ``first_after_s`` after ``start`` (one interval unless given). It starts once; a
    stopped thread cannot be started again.

    Args:
        tick: The work of one round; its return value is ignored.
        interval_s: Seconds between the end of one tick and the start of the next.
        first_after_s: Seconds from ``start`` to the first tick; ``interval_s`` when ``None``.
        name: The thread's name, also used in the log lines.
        transient: Exceptions that are expected now and then (a busy database): logged as
            a one-line warning instead of with a traceback.

    Example:
        >>> ticker = PeriodicThread(store.compact, interval_s=60, name="anjian-compact")
        >>> ticker.start(); ...; ticker.stop()
    """

    def __init__(
        self,
        tick: Callable[[], object],
        *,
        interval_s: float,
        name: str,
        transient: tuple[type[Exception], ...] = (),
        first_after_s: float | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if first_after_s is not None and first_after_s < 0:
            raise ValueError(f"first_after_s must be >= 0, got {first_after_s}")
        self._tick = tick
        self.interval_s = interval_s
        self.first_after_s = interval_s if first_after_s is None else first_after_s
        self.name = name
        self._transient = transient
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread.

        Raises:
            RuntimeError: It is running already, or was stopped.
        """
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError(f"{self.name} starts once")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (after the tick in progress, if any); safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        """Loop: wait (``first_after_s``, then ``interval_s``) and tick; a failed tick is logged."""
        wait_s = self.first_after_s
        while not self._stop.wait(wait_s):
            wait_s = self.interval_s
            try:
                self._tick()
            except self._transient as exc:
                logger.warning("%s failed (%s); retrying in %.1fs", self.name, exc, self.interval_s)
            except Exception:
                logger.exception("%s failed; retrying in %.1fs", self.name, self.interval_s)
