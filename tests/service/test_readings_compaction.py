"""Compacting the reading history in short transactions: alerts and acknowledgements need the write lock too.

One pass used to fold up to an hour of raw readings (3.6 M rows at 1,000 sensors) in one
transaction, holding SQLite's write lock for tens of seconds: every other writer failed
with "database is locked". The transactions are counted here, not timed.
"""

from __future__ import annotations

import math
import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

import anjian.service.readings as readings_module
from anjian.pipeline.sensors.config import ReadingHistoryConfig
from anjian.pipeline.sensors.reading import Reading
from anjian.service.config import StorageConfig
from anjian.service.readings import ReadingStore
from anjian.service.store import EventStore
from anjian.service.tables import ReadingRow
from tests.factories import make_event
from tests.service.conftest import FakeClock
from tests.support.waiting import wait_for

DAY = 86_400.0
NOW = 1_800_000_000.0  # a multiple of 60: bucket edges fall on whole minutes
CUT = NOW - DAY  # raw readings before this are folded at NOW (default raw_for_s, 60 s buckets)
ROWS = 50  # rows per compaction transaction in these tests


@pytest.fixture
def small_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction transactions of at most ``ROWS`` rows, so a small backlog takes many of them."""
    monkeypatch.setattr(readings_module, "_TRANSACTION_ROWS", ROWS)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"))
    yield store
    store.close()


def _backlog(readings: ReadingStore, sensors: int, seconds: int) -> int:
    """``sensors`` sensors at 1 Hz over the ``seconds`` before the raw window's edge; how many readings."""
    start = CUT - seconds
    batch = [
        Reading(f"s-{i}", float(t % 10), start + t, start + t) for t in range(seconds) for i in range(sensors)
    ]
    readings.add(batch)
    readings.flush()
    return len(batch)


def _raw_before_cut(store: EventStore) -> int:
    with store.database.read() as session:
        return int(
            session.scalar(select(func.count()).where(ReadingRow.bucket_s == 0, ReadingRow.at < CUT)) or 0
        )


@pytest.mark.usefixtures("small_transactions")
def test_a_backlog_is_folded_in_many_transactions_each_of_bounded_rows(store: EventStore) -> None:
    readings = ReadingStore(store.database, ReadingHistoryConfig(), clock=FakeClock(NOW))
    backlog = _backlog(readings, sensors=3, seconds=600)  # 10 minutes: 1,800 rows, 10 buckets
    left_after_commit: list[int] = []
    store.database.on_write_commit(lambda _session: left_after_commit.append(_raw_before_cut(store)))

    assert readings.compact() == backlog

    assert left_after_commit[-1] == 0
    folded = [before - after for before, after in zip([backlog, *left_after_commit], left_after_commit)]
    assert len([f for f in folded if f]) >= backlog / ROWS, folded
    assert max(folded) <= ROWS, f"one transaction folded {max(folded)} rows: {folded}"
    points = readings.trend("s-0", 0, NOW)
    assert [p.count for p in points] == [60] * 10, "a bucket split between transactions is still one row"
    assert (points[0].at, points[0].value, points[0].min, points[0].max) == (CUT - 570, 4.5, 0.0, 9.0)


@pytest.mark.usefixtures("small_transactions")
def test_rows_past_the_keep_period_are_deleted_in_transactions_of_bounded_rows(store: EventStore) -> None:
    """After a long outage the retention DELETE is days of buckets: it too takes the lock in small steps."""
    readings = ReadingStore(store.database, ReadingHistoryConfig(keep_for_s=10 * DAY), clock=FakeClock(NOW))
    readings.add([Reading(f"s-{i % 3}", 1.0, NOW - 11 * DAY + i, NOW) for i in range(600)])
    readings.flush()
    left_after_commit: list[int] = []

    def count_rows(_session: Session) -> None:
        with store.database.read() as session:
            left_after_commit.append(int(session.scalar(select(func.count(ReadingRow.id))) or 0))

    store.database.on_write_commit(count_rows)

    assert readings.compact() == 0

    deleted = [before - after for before, after in zip([600, *left_after_commit], left_after_commit)]
    assert left_after_commit[-1] == 0 and len([d for d in deleted if d]) >= 600 / ROWS, deleted
    assert max(deleted) <= ROWS, deleted


@pytest.mark.usefixtures("small_transactions")
def test_a_writer_blocked_by_compaction_gets_in_before_the_pass_ends(sqlite_store: EventStore) -> None:
    """A writer that starts while compaction holds SQLite's write lock gets it at the next commit.

    The writer starts inside compaction's first transaction; after that transaction
    commits, compaction waits for the writer, which must have stored its alert while raw
    readings remained to be folded (the old single transaction had folded them all).
    """
    store = sqlite_store
    readings = ReadingStore(store.database, ReadingHistoryConfig(), clock=FakeClock(NOW))
    _backlog(readings, sensors=3, seconds=600)
    compactor = threading.get_ident()
    failures: list[BaseException] = []
    left_when_stored: list[int] = []
    alert = make_event(snapshot_jpeg=None)

    def store_an_alert() -> None:
        try:
            store.upsert_event(alert)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    writer = threading.Thread(target=store_an_alert)

    def start_writer_under_the_lock(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if threading.get_ident() == compactor and statement.startswith("DELETE") and writer.ident is None:
            writer.start()

    def wait_for_writer(_session: Session) -> None:
        if threading.get_ident() == compactor and writer.ident is not None and not left_when_stored:
            writer.join(timeout=60)
            left_when_stored.append(_raw_before_cut(store))

    event.listen(store.database.engine, "before_cursor_execute", start_writer_under_the_lock)
    store.database.on_write_commit(wait_for_writer)
    try:
        readings.compact()
    finally:
        event.remove(store.database.engine, "before_cursor_execute", start_writer_under_the_lock)
    assert writer.ident is not None and not writer.is_alive()
    assert not failures, failures
    assert left_when_stored and left_when_stored[0] > 0, "the alert was stored only after the whole pass"
    assert store.get_event(alert.id) is not None
    assert _raw_before_cut(store) == 0


@pytest.mark.usefixtures("small_transactions")
def test_a_pass_ends_after_its_current_transaction_once_the_store_stops(sqlite_store: EventStore) -> None:
    readings = ReadingStore(sqlite_store.database, ReadingHistoryConfig(), clock=FakeClock(NOW))
    backlog = _backlog(readings, sensors=3, seconds=600)

    def stop_once_some_are_folded(_session: Session) -> None:
        if _raw_before_cut(sqlite_store) < backlog:
            readings.stop()

    sqlite_store.database.on_write_commit(stop_once_some_are_folded)

    folded = readings.compact()

    assert 0 < folded <= ROWS
    assert _raw_before_cut(sqlite_store) == backlog - folded


def test_the_first_pass_runs_soon_after_start_not_one_interval_later(
    sqlite_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart's backlog is taken soon, in small steps, rather than all at once 5 minutes later."""
    monkeypatch.setattr(readings_module, "_FIRST_COMPACT_AFTER_S", 0.01)
    readings = ReadingStore(sqlite_store.database, ReadingHistoryConfig(), clock=FakeClock(NOW))
    _backlog(readings, sensors=2, seconds=120)
    readings.start()
    try:
        assert wait_for(lambda: _raw_before_cut(sqlite_store) == 0, timeout_s=30)
    finally:
        readings.stop()


def _expected_points(raw: list[Reading], cut: float) -> list[tuple[float, float, float, float, int]]:
    """What one pass of the old compaction kept: a bucket per (sensor, minute) before ``cut``, raw after."""
    minutes: dict[int, list[float]] = defaultdict(list)
    points = []
    for reading in raw:
        if reading.at < cut:
            minutes[math.floor(reading.at / 60)].append(reading.value)
        else:
            points.append((reading.at, reading.value, reading.value, reading.value, 1))
    points += [((m + 0.5) * 60, sum(v) / len(v), min(v), max(v), len(v)) for m, v in minutes.items()]
    return sorted(points)


@pytest.mark.usefixtures("small_transactions")
def test_folding_in_spans_keeps_the_mean_min_max_and_count_of_each_minute(
    store: EventStore, clock: FakeClock
) -> None:
    """Irregular readings, a bucket split between transactions, late readings into folded minutes, and more
    readings at one instant than a transaction holds: every minute is still one row with the same figures."""
    rng = random.Random(7)
    raw: dict[str, list[Reading]] = defaultdict(list)
    for sensor_id in ("a", "b", "c"):
        at = CUT - 900 + rng.random()
        while at < CUT + 120:
            raw[sensor_id].append(Reading(sensor_id, rng.uniform(-50, 50), at, at))
            at += rng.uniform(0.2, 4.0)
    raw["a"] += [Reading("a", rng.uniform(-50, 50), CUT - 601.5, CUT) for _ in range(ROWS + 10)]
    clock.now = NOW - 300
    readings = ReadingStore(store.database, ReadingHistoryConfig(), clock=clock)
    for batch in raw.values():
        readings.add(batch)
    readings.flush()
    first = readings.compact()  # folds what is before CUT - 300
    late = [Reading(s, rng.uniform(-80, 80), CUT - 300 - rng.uniform(1, 400), CUT) for s in "abc" * 5]
    for reading in late:
        raw[reading.sensor_id].append(reading)
    readings.add(late)
    readings.flush()
    clock.now = NOW

    second = readings.compact()

    assert first + second == sum(1 for batch in raw.values() for r in batch if r.at < CUT)
    for sensor_id, batch in raw.items():
        stored = sorted((p.at, p.value, p.min, p.max, p.count) for p in readings.trend(sensor_id, 0, NOW))
        expected = _expected_points(batch, CUT)
        assert [(at, low, high, count) for at, _, low, high, count in stored] == [
            (at, low, high, count) for at, _, low, high, count in expected
        ], sensor_id
        assert [value for _, value, *_ in stored] == pytest.approx([value for _, value, *_ in expected])
