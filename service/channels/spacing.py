"""Keep a robot under its vendor's rate: at most ``per_minute`` messages in any 60 seconds (and
``per_second`` in any second), and nothing at all while the vendor has asked it to wait."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["MessageSpacing"]

_WINDOW_S = 60.0
_SECOND_S = 1.0


class MessageSpacing:
    """A sliding one-minute window of send times, and a hold set by a rate-limit answer; thread-safe.

    DingTalk and WeCom robots refuse more than 20 messages a minute, and DingTalk mutes a
    robot for ten minutes after; Feishu refuses more than 100 a minute or 5 a second. The
    outbox holds a message back rather than spend an attempt on a refusal. When the vendor
    answers with its rate limit all the same (another sender on the robot, a restart that
    forgot the window), ``hold`` stops the robot's every message until the wait is over.

    Args:
        per_minute: Messages allowed in any 60 seconds.
        per_second: Messages allowed in any second; ``None``: no cap of its own.
        clock: Monotonic seconds.

    Example:
        >>> spacing = MessageSpacing(20)
        >>> spacing.reserve()  # 0.0: send now; > 0: seconds until a slot frees
        0.0
        >>> spacing.hold(600.0)  # DingTalk answered 130101: muted for ten minutes
        >>> spacing.reserve() > 599
        True
    """

    def __init__(
        self,
        per_minute: int,
        *,
        per_second: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be >= 1, got {per_minute}")
        if per_second is not None and per_second < 1:
            raise ValueError(f"per_second must be >= 1 or None, got {per_second}")
        self._per_minute = per_minute
        self._per_second = per_second
        self._clock = clock
        self._sent: deque[float] = deque()
        self._held_until = float("-inf")
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a slot now and return 0.0, or return the seconds until one frees (taking none)."""
        now = self._clock()
        with self._lock:
            if now < self._held_until:
                return self._held_until - now
            while self._sent and now - self._sent[0] >= _WINDOW_S:
                self._sent.popleft()
            if len(self._sent) >= self._per_minute:
                return max(0.001, _WINDOW_S - (now - self._sent[0]))
            per_second = self._per_second
            if per_second is not None and len(self._sent) >= per_second:
                oldest = self._sent[-per_second]  # the first of the last per_second sends
                if now - oldest < _SECOND_S:
                    return max(0.001, _SECOND_S - (now - oldest))
            self._sent.append(now)
            return 0.0

    def hold(self, wait_s: float) -> None:
        """Send nothing for ``wait_s`` seconds from now (the vendor answered with its rate limit).

        A shorter hold never cuts a longer one short.
        """
        until = self._clock() + wait_s
        with self._lock:
            self._held_until = max(self._held_until, until)

    def held_s(self) -> float:
        """Seconds left of a hold set by ``hold``; 0.0 when none is running."""
        now = self._clock()
        with self._lock:
            return max(0.0, self._held_until - now)
