"""A sensor's trend is merged to its points by the database (SQLite and PostgreSQL), not in Python."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy.orm import Session

from anjian.pipeline.sensors.config import ReadingHistoryConfig
from anjian.pipeline.sensors.reading import Reading
from anjian.service.database import Database
from anjian.service.readings import ReadingStore, TrendPoint
from anjian.service.store import EventStore
from tests.service.conftest import FakeClock

DAY = 86_400.0
NOW = 1_800_000_000.0  # a multiple of 60: bucket edges fall on whole minutes


class _CountingSession:
    """A session whose every result is read whole first, and its rows counted into ``fetched``."""

    def __init__(self, session: Session, fetched: list[int]) -> None:
        self._session = session
        self._fetched = fetched

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        frozen = self._session.execute(*args, **kwargs).freeze()
        self._fetched.append(len(frozen.data))
        return frozen()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class _CountingDatabase:
    """``database`` whose read sessions count the rows their queries return."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self.fetched: list[int] = []
        self.is_sqlite = database.is_sqlite

    @contextmanager
    def read(self) -> Iterator[_CountingSession]:
        with self._database.read() as session:
            yield _CountingSession(session, self.fetched)


def _merged_in_python(points: Sequence[TrendPoint], start: float, span: float) -> list[TrendPoint]:
    """What the trend answered when it merged every row in Python: spans of ``span`` s from ``start``."""
    groups: dict[int, list[TrendPoint]] = {}
    for point in points:
        groups.setdefault(math.floor((point.at - start) / span), []).append(point)
    merged = []
    for _, group in sorted(groups.items()):
        count = sum(p.count for p in group)
        merged.append(
            TrendPoint(
                at=sum(p.at * p.count for p in group) / count,
                value=sum(p.value * p.count for p in group) / count,
                min=min(p.min for p in group),
                max=max(p.max for p in group),
                count=count,
            )
        )
    return merged


def _readings(store: EventStore, clock: FakeClock) -> ReadingStore:
    """Two hours of one 1 Hz sensor: the first hour folded into minute buckets, the second raw."""
    clock.now = NOW
    readings = ReadingStore(store.database, ReadingHistoryConfig(raw_for_s=3600), clock=clock)
    readings.add(
        [Reading("nh3-1", float((i * 7) % 23) + 0.25, NOW - 7200 + i, NOW - 7200 + i) for i in range(7200)]
    )
    readings.add([Reading("dust-1", 1.0, NOW - 10 + i, NOW - 10 + i) for i in range(10)])
    readings.flush()
    assert readings.compact() == 3600
    return readings


def test_a_long_window_is_merged_by_the_database_reading_no_more_rows_than_points(
    store: EventStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """90 days of a 1 Hz sensor read 214k rows (73 MB) into Python to draw 600 points."""
    readings = _readings(store, clock)
    start, end, max_points = NOW - 7200, NOW, 100
    every_row = readings.trend("nh3-1", start, end, max_points=10_000)
    assert len(every_row) == 60 + 3600  # the buckets of the first hour, then the raw hour
    counting = _CountingDatabase(store.database)
    monkeypatch.setattr(readings, "_db", counting)

    points = readings.trend("nh3-1", start, end, max_points=max_points)

    assert sum(counting.fetched) <= 2 * (max_points + 1), counting.fetched
    expected = _merged_in_python(every_row, start, (end - start) / max_points)
    assert len(points) == len(expected) <= max_points + 1  # a reading at ``end`` itself is a span of its own
    for got, want in zip(points, expected, strict=True):
        assert got.count == want.count and (got.min, got.max) == (want.min, want.max)
        assert got.at == pytest.approx(want.at, rel=1e-12) and got.value == pytest.approx(
            want.value, rel=1e-12
        )


@pytest.mark.parametrize("max_points", [3660, 5000], ids=["exactly-max-points", "fewer-than-max-points"])
def test_a_window_within_max_points_is_answered_row_for_row(
    store: EventStore, clock: FakeClock, max_points: int
) -> None:
    readings = _readings(store, clock)

    points = readings.trend("nh3-1", NOW - 7200, NOW, max_points=max_points)

    assert len(points) == 3660 and all(p.count == 60 for p in points[:60]) and points[60].count == 1
    assert [p.at for p in points] == sorted(p.at for p in points)
    assert readings.trend("dust-1", NOW - 7200, NOW, max_points=10) == [
        TrendPoint(NOW - 10 + i, 1.0, 1.0, 1.0, 1) for i in range(10)
    ]


def test_a_window_one_reading_over_max_points_is_merged(store: EventStore, clock: FakeClock) -> None:
    readings = _readings(store, clock)

    points = readings.trend("nh3-1", NOW - 7200, NOW, max_points=3659)

    assert len(points) <= 3660 and sum(p.count for p in points) == 7200
    assert readings.trend("nh3-1", NOW + 1, NOW + 2) == []


def test_a_window_of_no_length_merges_the_readings_of_that_instant_into_one_point(
    store: EventStore, clock: FakeClock
) -> None:
    """Its span was zero: SQLite divided to NULL, PostgreSQL raised "division by zero" (a 500)."""
    clock.now = NOW
    readings = ReadingStore(store.database, ReadingHistoryConfig(), clock=clock)
    readings.add([Reading("nh3-1", float(i), NOW, NOW) for i in range(20)])
    readings.flush()

    assert readings.trend("nh3-1", NOW, NOW, max_points=10) == [TrendPoint(NOW, 9.5, 0.0, 19.0, 20)]
    assert readings.trend("nh3-1", NOW, NOW - 1, max_points=10) == []  # ends before it starts: nothing
    with pytest.raises(ValueError, match="max_points must be >= 1, got 0"):
        readings.trend("nh3-1", NOW - 1, NOW, max_points=0)
