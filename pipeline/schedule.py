"""Schedules: recurring local-time windows (shifts, cleaning windows) in a time zone.

Times everywhere else in the pipeline are epoch seconds; a ``Schedule`` converts
them to the schedule's local time (daylight-saving aware, via ``zoneinfo``) to answer
"is this instant inside a window?" and "which windows ended between these instants?".
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from anjian.pipeline.config import WEEKDAYS, ScheduleConfig

__all__ = ["Schedule"]


def _clock_time(hhmm: str) -> tuple[int, int]:
    """``"08:30"`` → ``(8, 30)``; ``"24:00"`` → ``(24, 0)``."""
    hours, minutes = hhmm.split(":")
    return int(hours), int(minutes)


class Schedule:
    """Recurring windows of one ``ScheduleConfig``.

    A window starts on each listed weekday at ``start`` local time and ends at ``end``
    the same day, or the next day when ``end`` is at or before ``start`` (a night
    shift). No window starts on an excluded date.

    Args:
        config: The windows.
        default_time_zone: IANA zone used when the config names none (the site's).

    Example:
        >>> night = Schedule(ScheduleConfig(windows=[{"start": "22:00", "end": "06:00"}]), "Asia/Shanghai")
        >>> night.is_active(1_700_000_000.0)   # 2023-11-15 06:13 in Shanghai
        False
    """

    def __init__(self, config: ScheduleConfig, default_time_zone: str = "UTC") -> None:
        self.config = config
        self.tz = ZoneInfo(config.time_zone or default_time_zone)
        self._excluded = frozenset(config.exclude_dates)

    def _windows_starting_on(self, day: dt.date) -> list[tuple[float, float]]:
        """Epoch ``(start, end)`` of the windows that start on local ``day``."""
        if day in self._excluded:
            return []
        weekday = WEEKDAYS[day.weekday()]
        out = []
        for window in self.config.windows:
            if weekday not in window.days:
                continue
            sh, sm = _clock_time(window.start)
            eh, em = _clock_time(window.end)
            start = dt.datetime.combine(day, dt.time(sh % 24, sm), self.tz) + dt.timedelta(days=sh // 24)
            end_day = day if (eh, em) > (sh, sm) else day + dt.timedelta(days=1)
            end = dt.datetime.combine(end_day, dt.time(eh % 24, em), self.tz) + dt.timedelta(days=eh // 24)
            out.append((start.timestamp(), end.timestamp()))
        return out

    def _local_date(self, t: float) -> dt.date:
        return dt.datetime.fromtimestamp(t, self.tz).date()

    def window_at(self, t: float) -> tuple[float, float] | None:
        """The window ``(start, end)`` (epoch seconds) containing instant ``t``, or ``None``."""
        today = self._local_date(t)
        for day in (today - dt.timedelta(days=1), today):
            for start, end in self._windows_starting_on(day):
                if start <= t < end:
                    return start, end
        return None

    def is_active(self, t: float) -> bool:
        """True when epoch instant ``t`` is inside a window."""
        return self.window_at(t) is not None

    def ends_between(self, t0: float, t1: float) -> list[float]:
        """Window ends ``e`` with ``t0 < e <= t1``, in order (epoch seconds)."""
        if t1 <= t0:
            return []
        first, last = self._local_date(t0) - dt.timedelta(days=1), self._local_date(t1)
        ends: set[float] = set()
        day = first
        while day <= last:
            ends.update(end for _, end in self._windows_starting_on(day) if t0 < end <= t1)
            day += dt.timedelta(days=1)
        return sorted(ends)
