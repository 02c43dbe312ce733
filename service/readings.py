"""The sensors' reading history: raw for a day, then one row per bucket (mean, min, max), then gone.

``ReadingStore`` is the ``ReadingSink`` of the sensor runner: ``add`` queues and
returns; a writer thread inserts what is queued every ``flush_interval_s`` in one
transaction (1,000 sensors at 1 Hz is one insert of 1,000 rows a second). Every
``compact_interval_s`` it downsamples raw rows older than ``raw_for_s`` into
``bucket_s`` buckets (whole buckets only, so a bucket is never split between two
rows) and deletes rows older than ``keep_for_s``. Storage per sensor is thus
bounded: ``raw_for_s`` of raw readings plus ``keep_for_s / bucket_s`` buckets.

``trend`` answers the trend API: the points of one sensor over a window, raw and
bucketed rows merged, re-bucketed to at most ``max_points``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from anjian.pipeline.sensors.config import ReadingHistoryConfig
from anjian.pipeline.sensors.reading import Reading
from anjian.service.database import Database
from anjian.service.periodic import PeriodicThread
from anjian.service.tables import ReadingRow

__all__ = ["ReadingStore", "TrendPoint"]

logger = logging.getLogger(__name__)

_MAX_QUEUED = 200_000  # readings waiting for the writer before new ones are dropped (and counted)
_COMPACT_SPAN_BUCKETS = 60  # buckets of raw readings downsampled per compaction pass at most


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
        """Stop both threads and write what is still queued."""
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

        Returns:
            Raw rows folded into buckets by this pass.
        """
        now = self._clock() if now is None else now
        bucket_s = self.config.bucket_s
        with self._db.write() as session:
            horizon = now - self.config.keep_for_s
            for size in _bucket_sizes(
                session
            ):  # by (bucket_s, at): a bare "at <" scanned every row under the lock
                session.execute(
                    delete(ReadingRow).where(ReadingRow.bucket_s == size, ReadingRow.at < horizon)
                )
            oldest = session.scalar(select(func.min(ReadingRow.at)).where(ReadingRow.bucket_s == 0))
            if oldest is None:
                return 0
            cut = math.floor((now - self.config.raw_for_s) / bucket_s) * bucket_s
            cut = min(cut, (math.floor(oldest / bucket_s) + _COMPACT_SPAN_BUCKETS) * bucket_s)
            raw = session.execute(
                select(ReadingRow.sensor_id, ReadingRow.at, ReadingRow.value).where(
                    ReadingRow.bucket_s == 0, ReadingRow.at < cut
                )
            ).all()
            if not raw:
                return 0
            buckets = _bucketed(((r.sensor_id, r.at, r.value) for r in raw), bucket_s)
            buckets = _merged_with_stored(session, buckets, bucket_s)
            session.execute(insert(ReadingRow), [bucket.row(bucket_s) for bucket in buckets])
            session.execute(delete(ReadingRow).where(ReadingRow.bucket_s == 0, ReadingRow.at < cut))
        logger.info(
            "readings: %d raw reading(s) before %.0f kept as %d bucket(s)", len(raw), cut, len(buckets)
        )
        return len(raw)

    def trend(self, sensor_id: str, start: float, end: float, *, max_points: int = 1000) -> list[TrendPoint]:
        """The points of ``sensor_id`` between ``start`` and ``end`` (epoch seconds), at most ``max_points``.

        Raw readings and buckets are merged in time order; when there are more than
        ``max_points``, consecutive points are merged into equal spans of the window
        (mean weighted by count, min of mins, max of maxes).
        """
        with self._db.read() as session:
            rows = session.execute(
                select(ReadingRow.at, ReadingRow.value, ReadingRow.min, ReadingRow.max, ReadingRow.count)
                .where(ReadingRow.sensor_id == sensor_id, ReadingRow.at >= start, ReadingRow.at <= end)
                .order_by(ReadingRow.at)
            ).all()
        points = [TrendPoint(at, value, low, high, count) for at, value, low, high, count in rows]
        if len(points) <= max_points:
            return points
        span = (end - start) / max_points
        return _merged(points, start, span)


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


def _merged_with_stored(session: Session, buckets: list[_Bucket], bucket_s: int) -> list[_Bucket]:
    """``buckets`` with any bucket already stored for the same sensor and span folded in (and that row deleted).

    A reading that arrives after its span was downsampled (late, or the first after a
    restart) would otherwise become a second bucket of the same span: a spike on the chart.
    """
    spans = {bucket.at for bucket in buckets}
    stored = session.scalars(
        select(ReadingRow).where(ReadingRow.bucket_s == bucket_s, ReadingRow.at.in_(spans))
    ).all()
    by_key = {(bucket.sensor_id, bucket.at): bucket for bucket in buckets}
    for row in stored:
        bucket = by_key.get((row.sensor_id, row.at))
        if bucket is not None:
            bucket.add(_Bucket(row.sensor_id, row.at, row.value * row.count, row.min, row.max, row.count))
            session.delete(row)
    return buckets


def _bucketed(rows: Iterable[tuple[str, float, float]], bucket_s: int) -> list[_Bucket]:
    """One bucket per (sensor, span of ``bucket_s``) of raw ``(sensor_id, at, value)``."""
    buckets: dict[tuple[str, int], _Bucket] = {}
    for sensor_id, at, value in rows:
        index = math.floor(at / bucket_s)
        reading = _Bucket(sensor_id, (index + 0.5) * bucket_s, value, value, value, 1)
        bucket = buckets.get((sensor_id, index))
        if bucket is None:
            buckets[(sensor_id, index)] = reading
        else:
            bucket.add(reading)
    return list(buckets.values())


def _merged(points: Sequence[TrendPoint], start: float, span: float) -> list[TrendPoint]:
    """Points merged into spans of ``span`` seconds from ``start``."""
    merged: list[TrendPoint] = []
    group: list[TrendPoint] = []
    group_index: int | None = None
    for point in [*points, None]:
        index = None if point is None else math.floor((point.at - start) / span)
        if group and index != group_index:
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
            group = []
        if point is not None:
            group.append(point)
            group_index = index
    return merged
