"""The sensors' reading history: raw for a day, then one row per bucket (mean, min, max), then gone.

``ReadingStore`` is the ``ReadingSink`` of the sensor runner: ``add`` queues and
returns; a writer thread inserts what is queued every ``flush_interval_s`` in one
transaction (1,000 sensors at 1 Hz is one insert of 1,000 rows a second). Every
``compact_interval_s`` (the first pass soon after start) it downsamples raw rows
older than ``raw_for_s`` into ``bucket_s`` buckets (whole buckets only, so a bucket
is never split between two rows) and deletes rows older than ``keep_for_s``.
Storage per sensor is thus bounded: ``raw_for_s`` of raw readings plus
``keep_for_s / bucket_s`` buckets.

Compaction shares the database's one write lock (SQLite) with new alerts and
operators' acknowledgements, and after an outage its backlog is hours of readings
(3.6 M rows an hour at 1,000 sensors). So a pass is many short transactions, each of
at most ``_TRANSACTION_ROWS`` rows within one bucket: the database sums them
(``GROUP BY sensor_id``), so Python holds one row per sensor, never the readings. A
bucket split between transactions is merged with the row the first part stored,
as is a reading that arrives after its bucket was folded. Between transactions the
pass pauses as long as the last one held the lock, so a writer polling on SQLite's
busy timeout gets in.

``trend`` answers the trend API: the points of one sensor over a window, raw and
bucketed rows merged, re-bucketed to at most ``max_points`` by the database.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Float,
    Integer,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from anjian.pipeline.sensors.config import ReadingHistoryConfig
from anjian.pipeline.sensors.reading import Reading
from anjian.service.database import Database
from anjian.service.periodic import PeriodicThread
from anjian.service.tables import ReadingRow

__all__ = ["ReadingStore", "TrendPoint"]

logger = logging.getLogger(__name__)

_MAX_QUEUED = 200_000  # readings waiting for the writer before new ones are dropped (and counted)
_TRANSACTION_ROWS = 20_000  # rows one compaction transaction folds or deletes at most (~0.1 s of write lock)
_MAX_PAUSE_S = 1.0  # longest pause between two compaction transactions
_FIRST_COMPACT_AFTER_S = 30.0  # the first pass after start: a restart's backlog is taken soon, in small steps


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One point of a sensor's trend.

    Attributes:
        at: Epoch seconds: the reading's time, or the middle of a bucket.
        value: The reading, or the bucket's mean.
        min: Lowest reading in the point (the value itself for a raw reading).
        max: Highest reading in the point.
        count: Readings the point stands for.
    """

    at: float
    value: float
    min: float
    max: float
    count: int


class ReadingStore:
    """Keeps the sensors' readings in the service's database (see the module docstring).

    Args:
        database: The service's database (the ``sensor_readings`` table).
        config: Resolution and retention.
        clock: Wall clock, epoch seconds.

    Example:
        >>> readings = ReadingStore(store.database, ReadingHistoryConfig())
        >>> readings.start(); readings.add([Reading("nh3-1", 12.5, at, at)]); readings.stop()
    """

    def __init__(
        self, database: Database, config: ReadingHistoryConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = database
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._queue: deque[Reading] = deque()
        self.dropped = 0
        self.written = 0
        self._writer = PeriodicThread(
            self.flush,
            interval_s=config.flush_interval_s,
            name="anjian-readings",
            transient=(SQLAlchemyError,),
        )
        self._compactor = PeriodicThread(
            self.compact,
            interval_s=config.compact_interval_s,
            first_after_s=min(_FIRST_COMPACT_AFTER_S, config.compact_interval_s),
            name="anjian-readings-compact",
            transient=(SQLAlchemyError,),
        )

    def add(self, readings: list[Reading]) -> None:
        """Queue readings for the writer (dropped and counted past 200,000 waiting)."""
        with self._lock:
            room = _MAX_QUEUED - len(self._queue)
            self._queue.extend(readings[: max(0, room)])
            if room < len(readings):
                self.dropped += len(readings) - max(0, room)

    def start(self) -> None:
        """Start the writer and the compactor."""
        self._writer.start()
        self._compactor.start()

    def stop(self) -> None:
        """Stop both threads (a compaction pass ends after its current transaction); write what is queued."""
        self._stopping.set()
        self._writer.stop()
        self._compactor.stop()
        try:
            self.flush()
        except SQLAlchemyError as exc:
            logger.error("readings: %d queued reading(s) not written at stop: %s", len(self._queue), exc)

    def flush(self) -> int:
        """Write every queued reading now; returns how many."""
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
        if not batch:
            return 0
        rows = [
            {
                "sensor_id": r.sensor_id,
                "at": r.at,
                "value": r.value,
                "min": r.value,
                "max": r.value,
                "count": 1,
                "bucket_s": 0,
            }
            for r in batch
        ]
        try:
            with self._db.write() as session:
                session.execute(insert(ReadingRow), rows)
        except SQLAlchemyError:
            with self._lock:  # keep them for the next try, oldest first
                self._queue.extendleft(reversed(batch))
            raise
        self.written += len(rows)
        return len(rows)

    def compact(self, now: float | None = None) -> int:
        """Downsample raw readings older than ``raw_for_s`` (whole buckets) and delete those past ``keep_for_s``.

        Runs as many short write transactions as the backlog needs (see the module
        docstring), pausing between them; ends early, between two of them, once
        ``stop`` is called.

        Args:
            now: Epoch seconds to compact as of; the store's clock when ``None``.

        Returns:
            Raw rows folded into buckets by this pass.
        """
        now = self._clock() if now is None else now
        horizon = now - self.config.keep_for_s
        with self._db.read() as session:
            sizes = _bucket_sizes(session)
        for size in sizes:
            while self._transaction(functools.partial(_delete_expired, bucket_s=size, horizon=horizon)):
                pass
        bucket_s = self.config.bucket_s
        cut = math.floor((now - self.config.raw_for_s) / bucket_s) * bucket_s
        folded = transactions = 0
        while span := self._transaction(functools.partial(self._fold_span, cut=cut)):
            folded += span
            transactions += 1
        if folded:
            logger.info(
                "readings: %d raw reading(s) before %.0f folded into buckets in %d transaction(s)",
                folded,
                cut,
                transactions,
            )
        return folded

    def _transaction(self, work: Callable[[Session], int]) -> int:
        """Run ``work`` in one write transaction, then pause as long as it took; its rows (0: none, stopping).

        The pause leaves the lock free half the time, so another writer sleeping in
        SQLite's busy handler (up to 100 ms a poll) finds it free instead of losing every
        race to the next transaction.
        """
        if self._stopping.is_set():
            return 0
        started = time.monotonic()
        with self._db.write() as session:
            if not self._db.is_sqlite:  # PostgreSQL: see _fold_span
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            rows = work(session)
        if rows:
            self._stopping.wait(min(time.monotonic() - started, _MAX_PAUSE_S))
        return rows

    def _fold_span(self, session: Session, *, cut: float) -> int:
        """Fold the oldest raw readings before ``cut`` (one bucket, ``_TRANSACTION_ROWS`` at most); how many.

        The readings are summed per sensor by the database, merged with any bucket row
        already stored for the same sensor and bucket (the first part of a bucket split
        between transactions, or a reading that arrived late), and deleted. On
        PostgreSQL the transaction is REPEATABLE READ, so a reading committed meanwhile
        is neither summed nor deleted, but folded by the next span.
        """
        bucket_s = self.config.bucket_s
        oldest = session.scalar(select(func.min(ReadingRow.at)).where(ReadingRow.bucket_s == 0))
        if oldest is None or oldest >= cut:
            return 0
        index = math.floor(oldest / bucket_s)
        end = _span_end(session, 0, oldest, min(cut, (index + 1) * bucket_s))
        raw = (ReadingRow.bucket_s == 0, ReadingRow.at < end)
        sums = session.execute(
            select(
                ReadingRow.sensor_id,
                func.sum(ReadingRow.value),
                func.min(ReadingRow.value),
                func.max(ReadingRow.value),
                func.count(),
            )
            .where(*raw)
            .group_by(ReadingRow.sensor_id)
        ).all()
        at = (index + 0.5) * bucket_s
        buckets = [
            _Bucket(sensor_id, at, total, low, high, count) for sensor_id, total, low, high, count in sums
        ]
        folded = sum(bucket.count for bucket in buckets)
        _merge_stored(session, buckets, bucket_s)
        session.execute(insert(ReadingRow), [bucket.row(bucket_s) for bucket in buckets])
        session.execute(delete(ReadingRow).where(*raw).execution_options(synchronize_session=False))
        return folded

    def trend(self, sensor_id: str, start: float, end: float, *, max_points: int = 1000) -> list[TrendPoint]:
        """The points of ``sensor_id`` between ``start`` and ``end`` (epoch seconds), at most ``max_points``.

        Raw readings and buckets are merged in time order; when there are more than
        ``max_points``, consecutive points are merged into equal spans of the window
        (mean and time weighted by count, min of mins, max of maxes). The database merges
        them (``GROUP BY`` the span), so at most ``max_points + 1`` rows are read into
        Python whatever the window holds (90 days of a 1 Hz sensor read 214k rows, 73 MB).
        A window that ends before it starts holds no point; one of no length (``end == start``)
        holding more than ``max_points`` readings at that instant gives their one merged point
        (a zero span divided by nothing on SQLite and raised "division by zero" on PostgreSQL).

        Raises:
            ValueError: ``max_points`` is below 1.
        """
        if max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {max_points}")
        window = (ReadingRow.sensor_id == sensor_id, ReadingRow.at >= start, ReadingRow.at <= end)
        columns = (ReadingRow.at, ReadingRow.value, ReadingRow.min, ReadingRow.max, ReadingRow.count)
        with self._db.read() as session:
            rows = session.execute(
                select(*columns).where(*window).order_by(ReadingRow.at).limit(max_points + 1)
            ).all()
            if len(rows) <= max_points:
                return [TrendPoint(at, value, low, high, count) for at, value, low, high, count in rows]
            merging = select(
                func.sum(ReadingRow.at * ReadingRow.count),
                func.sum(ReadingRow.value * ReadingRow.count),
                func.min(ReadingRow.min),
                func.max(ReadingRow.max),
                func.sum(ReadingRow.count),
            ).where(*window)
            span_s = (end - start) / max_points
            if span_s > 0:  # else every row is at the instant ``start == end``: one group, no division
                span = _span_index(start, span_s, is_sqlite=self._db.is_sqlite)
                merging = merging.group_by(span).order_by(func.min(ReadingRow.at))
            merged = session.execute(merging).all()
        return [
            TrendPoint(at_total / count, value_total / count, low, high, int(count))
            for at_total, value_total, low, high, count in merged
        ]


def _span_index(start: float, span: float, *, is_sqlite: bool) -> ColumnElement[Any]:
    """SQL for the index of the span of ``span`` seconds from ``start`` a reading's ``at`` falls in (``at >= start``).

    ``floor`` on PostgreSQL; SQLite has it only when built with its math functions, but
    there ``CAST AS INTEGER`` truncates, the same for the non-negative quotient. Both
    compute in double precision, as ``math.floor((at - start) / span)`` does.
    """
    quotient = (ReadingRow.at - literal(start, Float)) / literal(span, Float)
    return quotient.cast(Integer) if is_sqlite else func.floor(quotient)


def _bucket_sizes(session: Session) -> list[int]:
    """The ``bucket_s`` values stored (0, raw, among them), each found by one index seek.

    SQLite reads ``DISTINCT bucket_s`` by scanning the whole index; ``MIN(...) WHERE bucket_s >
    last`` steps through the few distinct values instead.
    """
    sizes: list[int] = []
    size = session.scalar(select(func.min(ReadingRow.bucket_s)))
    while size is not None:
        sizes.append(size)
        size = session.scalar(select(func.min(ReadingRow.bucket_s)).where(ReadingRow.bucket_s > size))
    return sizes


def _span_end(session: Session, bucket_s: int, oldest: float, end: float) -> float:
    """Where a span of ``bucket_s`` rows from ``oldest`` (their first) towards ``end`` stops.

    ``end``, or earlier so that at most ``_TRANSACTION_ROWS`` rows lie before it (found by
    one walk of the ``(bucket_s, at)`` index); more only when more than that share the
    instant ``oldest``, which must still make progress.
    """
    nth = session.scalar(
        select(ReadingRow.at)
        .where(ReadingRow.bucket_s == bucket_s, ReadingRow.at < end)
        .order_by(ReadingRow.at)
        .offset(_TRANSACTION_ROWS)
        .limit(1)
    )
    if nth is None:
        return end
    return nth if nth > oldest else math.nextafter(oldest, math.inf)


def _delete_expired(session: Session, *, bucket_s: int, horizon: float) -> int:
    """Delete the oldest rows of ``bucket_s`` before ``horizon``, ``_TRANSACTION_ROWS`` at most; how many.

    By ``(bucket_s, at)``: a bare ``at <`` scanned every row under the lock.
    """
    oldest = session.scalar(
        select(func.min(ReadingRow.at)).where(ReadingRow.bucket_s == bucket_s, ReadingRow.at < horizon)
    )
    if oldest is None:
        return 0
    end = _span_end(session, bucket_s, oldest, horizon)
    result = session.execute(
        delete(ReadingRow)
        .where(ReadingRow.bucket_s == bucket_s, ReadingRow.at < end)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount


@dataclass(slots=True)
class _Bucket:
    """The readings of one sensor over one span: their sum, min, max and count."""

    sensor_id: str
    at: float
    total: float
    low: float
    high: float
    count: int

    def add(self, other: _Bucket) -> None:
        """Fold ``other`` (the same sensor and span) into this one."""
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        self.count += other.count

    def row(self, bucket_s: int) -> dict[str, object]:
        """The bucket as a ``sensor_readings`` row."""
        return {
            "sensor_id": self.sensor_id,
            "at": self.at,
            "value": self.total / self.count,
            "min": self.low,
            "max": self.high,
            "count": self.count,
            "bucket_s": bucket_s,
        }


def _merge_stored(session: Session, buckets: list[_Bucket], bucket_s: int) -> None:
    """Fold into ``buckets`` any row already stored for the same sensor and span, and delete that row.

    A reading that arrives after its span was downsampled (late, or the first after a
    restart), or the rest of a bucket split between transactions, would otherwise
    become a second row of the same span: a spike on the chart.
    """
    by_key = {(bucket.sensor_id, bucket.at): bucket for bucket in buckets}
    if not by_key:
        return
    stored = session.execute(
        select(
            ReadingRow.id,
            ReadingRow.sensor_id,
            ReadingRow.at,
            ReadingRow.value,
            ReadingRow.min,
            ReadingRow.max,
            ReadingRow.count,
        ).where(ReadingRow.bucket_s == bucket_s, ReadingRow.at.in_({bucket.at for bucket in buckets}))
    ).all()
    merged: list[dict[str, object]] = []
    for row_id, sensor_id, at, value, low, high, count in stored:
        bucket = by_key.get((sensor_id, at))
        if bucket is not None:
            bucket.add(_Bucket(sensor_id, at, value * count, low, high, count))
            merged.append({"row_id": row_id})
    if merged:
        table = cast(Table, ReadingRow.__table__)  # Core: an executemany of DELETE by id
        session.execute(table.delete().where(table.c.id == bindparam("row_id")), merged)
