"""The one timer thread of the service's periodic workers: it ticks until stopped and survives failing ticks."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from anjian.service.periodic import PeriodicThread
from tests.support.waiting import wait_for


class _Flaky:
    """Fails on the given tick numbers (1-based) with the given exception; counts every tick."""

    def __init__(self, failures: dict[int, Exception]) -> None:
        self.failures = failures
        self.ticks = 0

    def __call__(self) -> None:
        self.ticks += 1
        if self.ticks in self.failures:
            raise self.failures[self.ticks]


def test_it_ticks_until_stopped_and_a_failing_tick_does_not_end_it(caplog: pytest.LogCaptureFixture) -> None:
    tick = _Flaky({1: RuntimeError("disk on fire")})
    ticker = PeriodicThread(tick, interval_s=0.01, name="anjian-test-ticker")
    ticker.start()
    try:
        assert wait_for(lambda: tick.ticks >= 3), "it ticks again after a failure"
        assert ticker.is_running
    finally:
        ticker.stop()
    assert not ticker.is_running
    stopped_at = tick.ticks
    assert not wait_for(lambda: tick.ticks > stopped_at, timeout_s=0.1), "no tick after stop"
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "anjian-test-ticker failed; retrying in 0.0s" and record.exc_info


def test_a_transient_failure_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    busy = OperationalError("UPDATE", {}, Exception("database is locked"))
    tick = _Flaky({1: busy})
    ticker = PeriodicThread(tick, interval_s=0.01, name="leases", transient=(OperationalError,))
    ticker.start()
    try:
        assert wait_for(lambda: tick.ticks >= 2)
    finally:
        ticker.stop()
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING and not record.exc_info
    assert "leases failed (" in record.getMessage() and "database is locked" in record.getMessage()


def test_it_starts_once_and_stops_twice_quietly() -> None:
    ticker = PeriodicThread(lambda: None, interval_s=60, name="anjian-once")
    ticker.start()
    with pytest.raises(RuntimeError, match="anjian-once starts once"):
        ticker.start()
    ticker.stop()
    ticker.stop()
    with pytest.raises(RuntimeError, match="starts once"):
        ticker.start()


def test_it_refuses_an_interval_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="interval_s must be > 0, got 0"):
        PeriodicThread(lambda: None, interval_s=0, name="x")


def test_the_first_tick_can_come_before_the_first_interval() -> None:
    """The readings compactor takes a restart's backlog soon after start, not one 5-minute interval later."""
    tick = _Flaky({})
    ticker = PeriodicThread(tick, interval_s=3600, first_after_s=0, name="anjian-soon")
    ticker.start()
    try:
        assert wait_for(lambda: tick.ticks >= 1), "the first tick comes after first_after_s"
        assert not wait_for(lambda: tick.ticks >= 2, timeout_s=0.1), "the next ones one interval apart"
    finally:
        ticker.stop()
    with pytest.raises(ValueError, match="first_after_s must be >= 0, got -1"):
        PeriodicThread(lambda: None, interval_s=1, first_after_s=-1, name="x")
