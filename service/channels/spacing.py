"""Keep a robot under its vendor's rate: at most ``per_minute`` messages in any 60 seconds."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["MessageSpacing"]

_WINDOW_S = 60.0


class MessageSpacing:
    """A sliding one-minute window of send times; thread-safe.

    DingTalk and WeCom robots refuse more than 20 messages a minute (and DingTalk mutes
    a robot for ten minutes after); the outbox holds a message back rather than spend
    an attempt on a refusal.

    Args:
        per_minute: Messages allowed in any 60 seconds.
        clock: Monotonic seconds.

    Example:
        >>> spacing = MessageSpacing(20)
        >>> spacing.reserve()  # 0.0: send now; > 0: seconds until a slot frees
        0.0
    """

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be >= 1, got {per_minute}")
        self._per_minute = per_minute
        self._clock = clock
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a slot now and return 0.0, or return the seconds until one frees (taking none)."""
        now = self._clock()
        with self._lock:
            while self._sent and now - self._sent[0] >= _WINDOW_S:
                self._sent.popleft()
            if len(self._sent) >= self._per_minute:
                return max(0.001, _WINDOW_S - (now - self._sent[0]))
            self._sent.append(now)
            return 0.0
