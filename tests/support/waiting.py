"""Wait on a condition with a deadline, for tests of threads, servers and reconnects (no fixed sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["seconds_until", "wait_for"]


def seconds_until(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> float | None:
    """Seconds until ``predicate`` held (checked every ``poll_s``), or ``None`` if not within ``timeout_s``."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started >= timeout_s:
            return None
        time.sleep(poll_s)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0, poll_s: float = 0.02) -> bool:
    """True once ``predicate`` holds, False if it did not within ``timeout_s``."""
    return seconds_until(predicate, timeout_s, poll_s) is not None
