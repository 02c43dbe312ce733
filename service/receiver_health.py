"""How each webhook subscription's receiver is doing: which are silent, and the log of their failures.

A receiver that gives no answer (it cannot be reached, or times out) is not tried again, by
any worker, before that row's retry: its other rows are held back until then, uncounted (no
attempt was made), rather than each waiting its timeout; the row tried first probes it again
(``SilentReceivers``). A receiver that stays down is logged once a minute (``FailureLog``),
not once per attempt; ``/metrics`` counts every failed attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from anjian.pipeline.log_throttle import LogThrottle
from anjian.service.metrics import ServiceMetrics

__all__ = ["FailureLog", "SilentReceivers"]

# The dispatcher's log: its lines keep the name operators (and tests) filter on.
logger = logging.getLogger("anjian.service.webhooks")

_FAILURE_LOG_INTERVAL_S = 60.0
_HELD_ERROR_CHARS = 200  # of the error that held a row back, quoted on it


class FailureLog:
    """Logs failed webhook attempts at most once per ``interval_s`` per subscription; counts every one.

    A receiver that is down fails every attempt of every delivery: one WARNING per
    attempt would bury the rest of the log. The first failure after a quiet spell is
    logged at once; later ones within ``interval_s`` only count, and the next line
    says how many were left out. A success after failures is logged (INFO). Dead
    letters (ERROR) are rate-limited the same way, separately.

    Args:
        interval_s: Shortest time between two lines of one subscription and kind.
        clock: Monotonic seconds.
        metrics: Counts every failed attempt by subscription, and the lines left out.
    """

    def __init__(
        self,
        *,
        interval_s: float = _FAILURE_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._throttle = LogThrottle(interval_s, clock=clock)
        self._metrics = metrics
        self._lock = threading.Lock()
        self._failing: dict[int, int] = {}  # subscription id -> failed attempts since its last success

    def failed(self, subscription_id: int, level: int, message: str, *args: object) -> bool:
        """Count a failed attempt and log it (``logger.log(level, message, *args)``) unless rate-limited.

        Returns:
            Whether the line was logged.
        """
        with self._lock:
            self._failing[subscription_id] = self._failing.get(subscription_id, 0) + 1
        admitted = self._throttle.admit((subscription_id, level))
        if self._metrics is not None:
            self._metrics.webhook_failures.labels(subscription_id=str(subscription_id)).inc()
            if admitted is None:
                self._metrics.webhook_log_suppressed.inc()
        if admitted is None:
            return False
        if admitted.held_back:
            message += " (%d similar line(s) of this webhook left out in the last %.0fs)"
            args = (*args, admitted.held_back, self._throttle.interval_s)
        elif admitted.is_first:
            message += " (further failures of this webhook: at most one line a minute)"
        logger.log(level, message, *args)
        return True

    def succeeded(self, subscription_id: int, url: str) -> None:
        """A 2xx from this subscription: say so once if it had been failing."""
        with self._lock:
            failures = self._failing.pop(subscription_id, 0)
        if failures:
            self._throttle.forget_where(lambda key: isinstance(key, tuple) and key[0] == subscription_id)
            logger.info("webhook %s answers again after %d failed attempt(s)", url, failures)


class SilentReceivers:
    """The subscriptions whose receiver gave no answer, held back until the retry of the row that got none.

    Shared by every worker of a dispatcher (thread-safe), so no worker tries a silent
    receiver before its retry is due; the first row tried then probes it again.

    Args:
        clock: Epoch seconds, the clock the retries are due by.
    """

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._silent: dict[int, tuple[float, str]] = {}  # subscription id -> (tried again at, why): no answer
        self._lock = threading.Lock()

    def silence(self, subscription_id: int) -> tuple[float, str] | None:
        """Until when, and why, a subscription that gave no answer is not tried; ``None`` when it may be."""
        with self._lock:
            silent = self._silent.get(subscription_id)
            if silent is not None and silent[0] <= self._clock():
                del self._silent[subscription_id]  # its retry is due: the next row probes it
                return None
            return silent

    def fell_silent(self, subscription_id: int, until: float, why: str) -> None:
        """Hold back the subscription's rows until ``until``: it gave no answer (``why``)."""
        with self._lock:
            self._silent[subscription_id] = (until, why[:_HELD_ERROR_CHARS])

    def answered(self, subscription_id: int) -> None:
        """The subscription answered: its rows go again."""
        with self._lock:
            self._silent.pop(subscription_id, None)
