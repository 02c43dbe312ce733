"""Schedules: local-time windows with a time zone, overnight shifts, weekdays, holidays."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from anjian.pipeline.config import CameraPipelineConfig, ScheduleConfig, ScheduleWindowConfig
from anjian.pipeline.schedule import Schedule

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _at(text: str, tz: ZoneInfo = SHANGHAI) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


DAY = ScheduleConfig(
    windows=[ScheduleWindowConfig(days=["mon", "tue", "wed", "thu", "fri"], start="08:00", end="18:00")]
)
NIGHT = ScheduleConfig(windows=[ScheduleWindowConfig(start="22:00", end="06:00")])


@pytest.mark.parametrize(
    ("config", "when", "active"),
    [
        (DAY, "2024-03-04 08:00", True),  # a Monday, first second of the shift
        (DAY, "2024-03-04 17:59:59", True),
        (DAY, "2024-03-04 18:00", False),  # the end is exclusive
        (DAY, "2024-03-04 07:59:59", False),
        (DAY, "2024-03-09 10:00", False),  # a Saturday
        (NIGHT, "2024-03-04 23:00", True),
        (NIGHT, "2024-03-05 05:59", True),  # the window started the day before
        (NIGHT, "2024-03-05 06:00", False),
        (NIGHT, "2024-03-05 12:00", False),
    ],
    ids=[
        "day-start",
        "day-last-second",
        "day-end",
        "before-day",
        "weekend",
        "night",
        "past-midnight",
        "night-end",
        "noon",
    ],
)
def test_is_active_in_the_site_time_zone(config: ScheduleConfig, when: str, active: bool) -> None:
    assert Schedule(config, "Asia/Shanghai").is_active(_at(when)) is active


def test_schedule_time_zone_overrides_the_site() -> None:
    utc_day = ScheduleConfig(time_zone="UTC", windows=[ScheduleWindowConfig(start="08:00", end="18:00")])
    assert Schedule(utc_day, "Asia/Shanghai").is_active(_at("2024-03-04 17:00"))  # 09:00 UTC


def test_holidays_have_no_window() -> None:
    config = DAY.model_copy(update={"exclude_dates": [dt.date(2024, 3, 4)]})
    assert not Schedule(config, "Asia/Shanghai").is_active(_at("2024-03-04 10:00"))


def test_daylight_saving_keeps_local_times() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    schedule = Schedule(
        ScheduleConfig(windows=[ScheduleWindowConfig(start="08:00", end="09:00")]), "Europe/Berlin"
    )
    assert schedule.window_at(_at("2024-03-31 08:30", berlin)) == (
        _at("2024-03-31 08:00", berlin),
        _at("2024-03-31 09:00", berlin),
    )


def test_ends_between_lists_window_ends_in_order() -> None:
    schedule = Schedule(NIGHT, "Asia/Shanghai")
    ends = schedule.ends_between(_at("2024-03-04 00:00"), _at("2024-03-06 12:00"))
    assert ends == [_at("2024-03-04 06:00"), _at("2024-03-05 06:00"), _at("2024-03-06 06:00")]
    assert schedule.ends_between(_at("2024-03-04 06:00"), _at("2024-03-04 07:00")) == []  # (t0, t1]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ScheduleWindowConfig(start="8:00"), "HH:MM"),
        (lambda: ScheduleWindowConfig(end="25:00"), "HH:MM"),
        (
            lambda: ScheduleConfig(time_zone="Mars/Olympus", windows=[ScheduleWindowConfig()]),
            "unknown time zone",
        ),
        (
            lambda: CameraPipelineConfig(
                id="c", url="x.mp4", behaviours={"open_flame": {"schedule": "nope"}}
            ),
            "no schedule 'nope'",
        ),
        (lambda: ScheduleWindowConfig(days=[]), "at least 1 item"),  # was a window never active
    ],
    ids=["short-hour", "hour-25", "unknown-zone", "unknown-schedule-name", "no-days"],
)
def test_invalid_schedules_are_rejected(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]
