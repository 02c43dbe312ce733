"""Free space on the storage folder's file system, against ``storage.min_free_mb``.

The database (SQLite by default) and the evidence files live in ``storage.dir``. When
its file system fills, SQLite can no longer commit and the event writer stores no alert
at all, while the database still answers reads. So the free space is watched on its
own: ``/readyz`` answers 503 below the threshold, ``/metrics`` exports the free bytes
(``anjian_storage_free_bytes``), and the change either way is logged once. Once low, the
storage counts as fine again only with 10 % more than the threshold free, so a disk
hovering at the threshold (every snapshot written, every WAL checkpoint) does not flap
readiness and the log.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DiskUsage", "SpaceReading", "StorageSpace"]

logger = logging.getLogger(__name__)

DiskUsage = Callable[[Path], tuple[int, int, int]]
"""Reads ``(total, used, free)`` bytes of the file system holding a path (``shutil.disk_usage``)."""

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpaceReading:
    """One reading of the storage folder's file system.

    Attributes:
        free_bytes: Bytes free for this process; ``None`` when the file system could not be read.
        total_bytes: Size of the file system; ``None`` when it could not be read.
        min_free_bytes: The threshold (``storage.min_free_mb``); 0 when there is none.
        problem: Why the storage is not fit to store alerts (too little free space, or the
            file system cannot be read), for ``/readyz`` (so no path) and the log; ``None`` when it is.
    """

    free_bytes: int | None
    total_bytes: int | None
    min_free_bytes: int
    problem: str | None

    @property
    def is_low(self) -> bool:
        """Whether the storage is below its threshold (or could not be read)."""
        return self.problem is not None


class StorageSpace:
    """Reads the free space of the storage folder's file system and logs when it crosses the threshold.

    Thread-safe: ``/readyz``, the metrics scrape and the evidence retention all read it.

    Args:
        path: The storage folder (``storage.dir``).
        min_free_bytes: Below this many free bytes (or when the file system cannot be read)
            the storage is low, until 10 % more is free; 0 checks nothing (the free space is
            still read, for the gauge).
        disk_usage: Reads ``(total, used, free)`` of the path's file system; tests inject one.

    Example:
        >>> space = StorageSpace(Path("data"), min_free_bytes=500 * 1024 * 1024)
        >>> space.read().is_low
        False
    """

    def __init__(self, path: Path, *, min_free_bytes: int, disk_usage: DiskUsage = shutil.disk_usage) -> None:
        if min_free_bytes < 0:
            raise ValueError(f"expected min_free_bytes >= 0, got {min_free_bytes}")
        self.path = path
        self.min_free_bytes = min_free_bytes
        self._disk_usage = disk_usage
        self._lock = threading.Lock()
        self._was_low = False

    def read(self) -> SpaceReading:
        """Read the free space now; log once (warning) when it falls below the threshold, once (info) when back.

        Returns:
            The reading; its ``problem`` says why the storage is low, if it is.
        """
        try:
            total, _used, free = self._disk_usage(self.path)
        except OSError as exc:
            unread = f"cannot read the free space of storage.dir: {exc.strerror or type(exc).__name__}"
            reading = SpaceReading(None, None, self.min_free_bytes, unread if self.min_free_bytes else None)
        else:
            problem: str | None = None
            with self._lock:
                needed = self.min_free_bytes + (self.min_free_bytes // 10 if self._was_low else 0)
            if free < needed:
                where = "below" if free < self.min_free_bytes else "since it fell below, not yet 10 % over"
                problem = (
                    f"{free / _MB:.0f} MB free on the file system of storage.dir, {where} "
                    f"storage.min_free_mb ({self.min_free_bytes / _MB:.0f} MB): alerts will soon fail to be "
                    "stored. Free space there, or settle old alerts so that their evidence can be deleted "
                    "(storage.reclaim_below_mb, keep_evidence_days, max_evidence_gb)"
                )
            reading = SpaceReading(free, total, self.min_free_bytes, problem)
        self._log_change(reading)
        return reading

    def _log_change(self, reading: SpaceReading) -> None:
        """Log when the storage becomes low or stops being low; nothing while it stays the same."""
        with self._lock:
            if reading.is_low == self._was_low:
                return
            self._was_low = reading.is_low
        if reading.is_low:
            logger.warning("storage (%s): %s; /readyz answers 503 until then", self.path, reading.problem)
        else:
            logger.info(
                "storage: %.0f MB free on the file system of %s again; /readyz no longer refuses for it",
                (reading.free_bytes or 0) / _MB,
                self.path,
            )
