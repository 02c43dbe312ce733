"""One log line per interval for something that keeps failing, with the count of the lines held back.

A camera, a service or a webhook receiver that stays down fails every few seconds for hours:
one line per attempt buries the rest of the log (a service away for a day wrote 2,880
identical warnings). Every place that logs a repeating failure asks a :class:`LogThrottle`
whether to log now: the first line of a key goes at once, then at most one per ``interval_s``,
each saying how many were held back in between; :meth:`LogThrottle.forget` (on recovery)
lets the next failure through at once again. Counting the failures themselves (metrics, the
attempts of a run) stays with the caller: the throttle only decides about lines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["Admitted", "LogThrottle"]


@dataclass(frozen=True, slots=True)
class Admitted:
    """A line let through.

    Attributes:
        held_back: Lines of this key held back since the last one let through.
        is_first: No line of this key was let through before (or since it was forgotten).
    """

    held_back: int
    is_first: bool


class LogThrottle:
    """Lets one line per key through per ``interval_s``; thread-safe.

    Args:
        interval_s: Shortest time between two lines of one key.
        clock: Seconds; monotonic by default. A caller may pass its own times to :meth:`admit`
            (a frame's capture time); a time earlier than the last line's lets the line through.
    """

    def __init__(self, interval_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._logged_at: dict[Hashable, float] = {}
        self._held_back: dict[Hashable, int] = {}

    def admit(
        self, key: Hashable = None, *, now: float | None = None, is_news: bool = False
    ) -> Admitted | None:
        """Whether to log a line of ``key`` now: ``None`` holds it back (counted), else what was held back.

        ``is_news``: the line says something the last one did not (the failure changed kind): it
        goes at once, with the count held back before it.
        """
        at = self._clock() if now is None else now
        with self._lock:
            last = self._logged_at.get(key)
            if not is_news and last is not None and 0 <= at - last < self.interval_s:
                self._held_back[key] = self._held_back.get(key, 0) + 1
                return None
            self._logged_at[key] = at
            return Admitted(held_back=self._held_back.pop(key, 0), is_first=last is None)

    def forget(self, key: Hashable = None) -> None:
        """Start ``key`` afresh (it recovered): its next line goes at once and counts as the first."""
        with self._lock:
            self._logged_at.pop(key, None)
            self._held_back.pop(key, None)

    def forget_where(self, matches: Callable[[Hashable], bool]) -> None:
        """:meth:`forget` every key for which ``matches`` is true (a subscription's lines of each level)."""
        with self._lock:
            for key in [k for k in self._logged_at if matches(k)]:
                self._logged_at.pop(key, None)
                self._held_back.pop(key, None)
