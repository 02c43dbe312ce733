"""An ordered on-disk queue of byte records that survives a process restart (the pipeline's outbox).

Each record is one file ``{seq:012d}.rec`` in the spool folder, written atomically
(temporary file, flush, fsync, rename), so a crash leaves whole records or none.
Records come back oldest first; ``remove`` deletes one once it has been delivered.
A record the receiver rejects for good can be moved to ``rejected/`` for a person
to look at (``<UTC time>Z-<seq>.rec`` with its ``.reason.txt``; the newest 1,000 are kept). Thread-safe within one process; one process per folder.

Example:
    >>> spool = DiskSpool(Path("data/spool"))
    >>> seq = spool.append(b'{"id": ...}')
    >>> spool.peek()
    (1, b'{"id": ...}')
    >>> spool.remove(1)
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

from anjian.models.atomic import TEMPORARY_PREFIX, write_atomic

__all__ = ["DiskSpool"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{12})\.rec$")
_REJECTED_DIR = "rejected"
_MAX_REJECTED = 1000  # refused records kept for a person to look at; older ones go


class DiskSpool:
    """A FIFO of byte records kept as files in one folder.

    Args:
        directory: The spool folder; created if missing. Records left by an
            earlier process are kept and come first.
        is_fsync: Flush each record to disk before it counts as written. Turn off
            only in tests.

    Raises:
        OSError: The folder cannot be created or read.
    """

    def __init__(self, directory: Path | str, *, is_fsync: bool = True) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._is_fsync = is_fsync
        self._lock = threading.Lock()
        for leftover in self._dir.glob(f"{TEMPORARY_PREFIX}*"):
            leftover.unlink(missing_ok=True)  # a write interrupted by a crash: never counted
        self._seqs = sorted(int(m.group(1)) for p in self._dir.iterdir() if (m := _NAME.match(p.name)))
        self._sizes = {seq: self._size_on_disk(seq) for seq in self._seqs}
        self._bytes = sum(self._sizes.values())  # kept with _sizes: read for every event spooled
        self._next_seq = (self._seqs[-1] + 1) if self._seqs else 1
        if self._seqs:
            logger.info("spool %s: %d record(s) left from before", self._dir, len(self._seqs))

    @property
    def directory(self) -> Path:
        """The spool folder."""
        return self._dir

    def __len__(self) -> int:
        with self._lock:
            return len(self._seqs)

    @property
    def size_bytes(self) -> int:
        """Bytes of the records waiting (``rejected/`` not counted)."""
        with self._lock:
            return self._bytes

    def _forget_size(self, seq: int) -> None:
        """Drop a record's size from the total (under ``_lock``)."""
        self._bytes -= self._sizes.pop(seq, 0)

    def _size_on_disk(self, seq: int) -> int:
        try:
            return self._path(seq).stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, data: bytes) -> int:
        """Write a record after the others; returns its sequence number.

        Raises:
            OSError: The disk refused the write (full, read-only).
        """
        with self._lock:
            seq = self._next_seq
            write_atomic(self._path(seq), data, is_fsync=self._is_fsync)
            self._next_seq += 1
            self._seqs.append(seq)
            self._sizes[seq] = len(data)
            self._bytes += len(data)
            return seq

    def peek(self) -> tuple[int, bytes] | None:
        """The oldest record as ``(seq, data)``, or ``None`` when the spool is empty."""
        with self._lock:
            while self._seqs:
                seq = self._seqs[0]
                try:
                    return seq, self._path(seq).read_bytes()
                except FileNotFoundError:
                    logger.warning("spool %s: record %d vanished; skipping it", self._dir, seq)
                    self._forget_size(self._seqs.pop(0))
            return None

    def peek_many(self, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """The oldest records as ``(seq, data)``, at most ``limit`` of them and ``max_bytes`` together.

        The oldest record is returned even when it alone is larger than ``max_bytes``,
        so a big record is sent alone rather than never.
        """
        records: list[tuple[int, bytes]] = []
        size = 0
        with self._lock:
            index = 0
            while index < len(self._seqs) and len(records) < limit:
                seq = self._seqs[index]
                try:
                    data = self._path(seq).read_bytes()
                except FileNotFoundError:
                    logger.warning("spool %s: record %d vanished; skipping it", self._dir, seq)
                    self._forget_size(self._seqs.pop(index))
                    continue
                if records and size + len(data) > max_bytes:
                    break
                records.append((seq, data))
                size += len(data)
                index += 1
        return records

    def remove(self, seq: int) -> None:
        """Delete a delivered record (no error if it is already gone)."""
        with self._lock:
            self._path(seq).unlink(missing_ok=True)
            self._forget_size(seq)
            if seq in self._seqs:
                self._seqs.remove(seq)

    def reject(self, seq: int, reason: str) -> Path:
        """Move a record the receiver refuses for good to ``rejected/``, with the reason beside it.

        Returns:
            Where the record now lies.
        """
        with self._lock:
            target_dir = self._dir / _REJECTED_DIR
            target_dir.mkdir(exist_ok=True)
            # Stamped: sequence numbers start again at 1 with an empty spool after a restart, and a
            # record refused then replaced one refused before (kept for a person to look at).
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.6f}"[1:]
            target = target_dir / f"{stamp}Z-{self._path(seq).name}"
            os.replace(self._path(seq), target)
            (target_dir / f"{target.name}.reason.txt").write_text(reason, encoding="utf-8")
            self._forget_size(seq)
            if seq in self._seqs:
                self._seqs.remove(seq)
            self._prune_rejected(target_dir)
            return target

    @staticmethod
    def _prune_rejected(target_dir: Path) -> None:
        """Keep the newest ``_MAX_REJECTED`` refused records (and their reasons): the folder never fills a disk."""
        records = sorted(target_dir.glob("*.rec"))  # the stamp first: oldest first
        for old in records[: max(0, len(records) - _MAX_REJECTED)]:
            old.unlink(missing_ok=True)
            old.with_name(f"{old.name}.reason.txt").unlink(missing_ok=True)

    def _path(self, seq: int) -> Path:
        return self._dir / f"{seq:012d}.rec"
