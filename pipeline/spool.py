"""An ordered on-disk queue of byte records that survives a process restart (the pipeline's outbox).

Each record is one file ``{seq:012d}.rec`` in the spool folder, written atomically
(temporary file, flush, fsync, rename), so a crash leaves whole records or none.
Records come back oldest first; ``remove`` deletes one once it has been delivered.
A record the receiver rejects for good can be moved to ``rejected/`` for a person
to look at (``<UTC time>Z-<seq>.rec`` with its ``.reason.txt``); the newest are kept, at
most 1,000 and ``max_rejected_bytes`` (oldest go first; the one just refused always stays).
Thread-safe within one process; one process per folder.

Bytes are counted as the disk holds them: a file takes whole blocks (``st_blocks``), so a
1.4 kB record takes 4 KiB, and the folder's own entries take blocks too (a folder that held
a million records keeps ~30 MB of them). Counting ``len(data)`` saw half of what a spool of
alerts took. With ``max_bytes`` the waiting records and their folder never take more: a new
record first makes room by dropping the oldest waiting ones (:attr:`DiskSpool.evicted` counts
them; the caller decides what to log). Why the oldest go, not the newest: see
``anjian.pipeline.http_sink``. The records :meth:`DiskSpool.peek_many` handed out last (the batch
being sent) are passed over: they are on their way, and dropping them counted delivered revisions
as lost (only when nothing else is left to drop do they go, so the bound holds). A record that alone
does not fit raises :class:`RecordTooLargeError`.

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
from collections import deque
from pathlib import Path

from anjian.models.atomic import TEMPORARY_PREFIX, write_atomic

__all__ = ["DiskSpool", "RecordTooLargeError"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{12})\.rec$")
_REJECTED_DIR = "rejected"
_REJECTED_MARK = "r"  # refused records are named r<number>-<stamp>Z-<seq>.rec
_REJECTED_NAME = re.compile(rf"^{_REJECTED_MARK}(\d+)-")
_MAX_REJECTED = 1000  # refused records kept for a person to look at; older ones go
_MAX_REJECTED_BYTES = 256 * 1024 * 1024  # and the bytes they take (a 413 is a record too big: the biggest)


class RecordTooLargeError(ValueError):
    """A record that alone takes more than the spool's ``max_bytes``: it can never be spooled (the disk is fine)."""


class DiskSpool:
    """A FIFO of byte records kept as files in one folder.

    Args:
        directory: The spool folder; created if missing. Records left by an
            earlier process are kept and come first.
        is_fsync: Flush each record to disk before it counts as written. Turn off
            only in tests.
        max_bytes: Most bytes the waiting records and the folder's entries take on disk
            (``rejected/`` apart); ``None``: no bound. Past it the oldest records are dropped.
        max_rejected_bytes: Most bytes the refused records in ``rejected/`` take, besides the
            one refused last.

    Raises:
        OSError: The folder cannot be created or read.
        ValueError: ``max_bytes`` or ``max_rejected_bytes`` is below 1.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        is_fsync: bool = True,
        max_bytes: int | None = None,
        max_rejected_bytes: int = _MAX_REJECTED_BYTES,
    ) -> None:
        if (max_bytes is not None and max_bytes < 1) or max_rejected_bytes < 1:
            raise ValueError(
                f"expected max_bytes and max_rejected_bytes >= 1, got {max_bytes} and {max_rejected_bytes}"
            )
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._is_fsync = is_fsync
        self._max_bytes = max_bytes
        self._max_rejected_bytes = max_rejected_bytes
        self._lock = threading.Lock()
        for leftover in self._dir.glob(f"{TEMPORARY_PREFIX}*"):
            leftover.unlink(missing_ok=True)  # a write interrupted by a crash: never counted
        # oldest first; delivery removes from the left (a list's remove(0) was O(n) per record)
        self._seqs = deque(sorted(int(m.group(1)) for p in self._dir.iterdir() if (m := _NAME.match(p.name))))
        self._sizes = {seq: self._size_on_disk(seq) for seq in self._seqs}
        self._bytes = sum(self._sizes.values())  # kept with _sizes: read for every event spooled
        self._dir_bytes = _allocated_bytes(self._dir)
        self._block_bytes = max(512, self._dir.stat().st_blksize)
        self._evicted = 0
        self._rejected_count: int | None = None  # the largest number in rejected/, once read
        # the seqs the last peek_many handed out (the batch being sent): eviction passes over them
        self._in_flight: set[int] = set()
        self._next_seq = (self._seqs[-1] + 1) if self._seqs else 1
        if self._seqs:
            logger.info("spool %s: %d record(s) left from before", self._dir, len(self._seqs))
        if max_bytes is not None:
            with self._lock:
                self._make_room(0, keep=None)  # a lower cap than the last run's

    @property
    def directory(self) -> Path:
        """The spool folder."""
        return self._dir

    def __len__(self) -> int:
        with self._lock:
            return len(self._seqs)

    @property
    def size_bytes(self) -> int:
        """Bytes the records waiting and the folder's entries take on disk (``rejected/`` not counted)."""
        with self._lock:
            return self._bytes + self._dir_bytes

    @property
    def max_bytes(self) -> int | None:
        """The bound on :attr:`size_bytes`, or ``None``."""
        return self._max_bytes

    @property
    def evicted(self) -> int:
        """Records dropped, oldest first (those being sent last), to keep within ``max_bytes`` since this spool
        was opened."""
        with self._lock:
            return self._evicted

    def _forget_size(self, seq: int) -> None:
        """Drop a record's size from the total (under ``_lock``)."""
        self._bytes -= self._sizes.pop(seq, 0)

    def _size_on_disk(self, seq: int) -> int:
        try:
            return _allocated_bytes(self._path(seq))
        except FileNotFoundError:
            return 0

    def append(self, data: bytes) -> int:
        """Write a record after the others; returns its sequence number.

        With ``max_bytes``, the oldest records are dropped first as far as needed for it to fit
        (counted in :attr:`evicted`), those handed out by :meth:`peek_many` last.

        Raises:
            OSError: The disk refused the write (full, read-only).
            RecordTooLargeError: The record alone takes more than ``max_bytes`` (a ``ValueError``).
        """
        with self._lock:
            if self._max_bytes is not None:
                need = -(-len(data) // self._block_bytes) * self._block_bytes
                if need + self._dir_bytes > self._max_bytes:
                    raise RecordTooLargeError(
                        f"a record of {len(data)} bytes does not fit in a spool of at most {self._max_bytes} bytes"
                    )
                self._make_room(need, keep=None)
            seq = self._next_seq
            write_atomic(self._path(seq), data, is_fsync=self._is_fsync)
            self._next_seq += 1
            self._seqs.append(seq)
            self._sizes[seq] = max(len(data), self._size_on_disk(seq))
            self._bytes += self._sizes[seq]
            self._dir_bytes = _allocated_bytes(self._dir)
            if self._max_bytes is not None:
                self._make_room(0, keep=seq)  # it took more than its blocks (the folder grew)
            return seq

    def _make_room(self, need: int, *, keep: int | None) -> None:
        """Drop the oldest records until ``need`` more bytes fit under ``max_bytes``, never ``keep`` (under ``_lock``).

        The records being sent (the last :meth:`peek_many`) go last: they are the oldest, and dropping
        them counted revisions that arrive as lost.
        """
        if self._max_bytes is None:
            return
        while self._seqs and self._bytes + self._dir_bytes + need > self._max_bytes:
            index = self._oldest_to_drop(keep)
            if index is None:
                return
            seq = self._seqs[index]
            del self._seqs[index]  # O(index): at most the batch in flight lies before it
            self._in_flight.discard(seq)
            self._path(seq).unlink(missing_ok=True)
            self._forget_size(seq)
            self._evicted += 1

    def _oldest_to_drop(self, keep: int | None) -> int | None:
        """Where the oldest record not in flight lies in the order, else the oldest one; never ``keep``.

        The scan passes over at most ``len(_in_flight)`` records (the batch: at most 200; they
        are the oldest, as ``peek_many`` hands out the oldest).
        """
        for index, seq in enumerate(self._seqs):
            if seq == keep:
                break  # the newest: nothing after it
            if seq not in self._in_flight:
                return index
        # only records in flight are left (or none): the oldest goes all the same, so the bound holds
        return 0 if self._seqs and self._seqs[0] != keep else None

    def peek(self) -> tuple[int, bytes] | None:
        """The oldest record as ``(seq, data)``, or ``None`` when the spool is empty."""
        with self._lock:
            while self._seqs:
                seq = self._seqs[0]
                try:
                    return seq, self._path(seq).read_bytes()
                except FileNotFoundError:
                    logger.warning("spool %s: record %d vanished; skipping it", self._dir, seq)
                    self._forget_size(self._seqs.popleft())
            return None

    def peek_many(self, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """The oldest records as ``(seq, data)``, at most ``limit`` of them and ``max_bytes`` together.

        The oldest record is returned even when it alone is larger than ``max_bytes``,
        so a big record is sent alone rather than never. The records returned are in flight until
        removed (or the next call): :meth:`append` drops them only when nothing else is left.
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
                    del self._seqs[index]
                    self._forget_size(seq)
                    continue
                if records and size + len(data) > max_bytes:
                    break
                records.append((seq, data))
                size += len(data)
                index += 1
            self._in_flight = {seq for seq, _ in records}
        return records

    def remove(self, seq: int) -> None:
        """Delete a delivered record (no error if it is already gone)."""
        with self._lock:
            self._path(seq).unlink(missing_ok=True)
            self._drop_seq(seq)

    def _drop_seq(self, seq: int) -> None:
        """Take ``seq`` out of the order and the byte count (under ``_lock``); no scan when it is gone already.

        It is the oldest, but for a record refused in the middle of a batch: ``_sizes`` holds exactly
        the seqs waiting, so one evicted or vanished meanwhile is found absent in O(1) (scanning the
        deque for it took 20 ms a batch with 20k waiting).
        """
        self._in_flight.discard(seq)
        if seq not in self._sizes:
            return
        self._forget_size(seq)
        if self._seqs and self._seqs[0] == seq:
            self._seqs.popleft()
        else:
            self._seqs.remove(seq)

    def reject(self, seq: int, reason: str) -> Path | None:
        """Move a record the receiver refuses for good to ``rejected/``, with the reason beside it.

        Returns:
            Where the record now lies, or ``None`` when it was gone already (dropped to keep within
            ``max_bytes`` while it was being sent).
        """
        with self._lock:
            target_dir = self._dir / _REJECTED_DIR
            target_dir.mkdir(exist_ok=True)
            # Numbered in the order refused, then stamped for a person: sequence numbers start again at 1
            # with an empty spool after a restart (a record refused then replaced one refused before), and
            # the wall clock alone did not order them (read twice, a second rolling over between the reads
            # put a record before older ones, and pruning kept the oldest).
            now = time.time()
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1_000_000):06d}"
            target = (
                target_dir
                / f"{_REJECTED_MARK}{self._next_rejected(target_dir):010d}-{stamp}Z-{self._path(seq).name}"
            )
            try:
                os.replace(self._path(seq), target)
            except FileNotFoundError:
                self._drop_seq(seq)
                return None
            (target_dir / f"{target.name}.reason.txt").write_text(reason, encoding="utf-8")
            self._drop_seq(seq)
            self._prune_rejected(target_dir)
            return target

    def _next_rejected(self, target_dir: Path) -> int:
        """The number of the next refused record: one past the largest in ``rejected/`` (read once)."""
        if self._rejected_count is None:
            numbers = [
                int(m.group(1)) for p in target_dir.glob("*.rec") if (m := _REJECTED_NAME.match(p.name))
            ]
            self._rejected_count = max(numbers, default=0)
        self._rejected_count += 1
        return self._rejected_count

    def _prune_rejected(self, target_dir: Path) -> None:
        """Keep the newest refused records (and their reasons) within ``_MAX_REJECTED`` and ``max_rejected_bytes``.

        Oldest go first; the newest (refused just now) always stays. The folder never fills a disk.
        """
        # oldest first: by number (older names without one, stamp first, sort before: digits before the mark)
        records = sorted(target_dir.glob("*.rec"))
        sizes = [
            _allocated_bytes(path, missing=0) + _allocated_bytes(_reason_path(path), missing=0)
            for path in records
        ]
        count, total = len(records), sum(sizes)
        for old, size in zip(records[:-1], sizes[:-1], strict=True):
            if count <= _MAX_REJECTED and total <= self._max_rejected_bytes:
                break
            old.unlink(missing_ok=True)
            _reason_path(old).unlink(missing_ok=True)
            count -= 1
            total -= size

    def _path(self, seq: int) -> Path:
        return self._dir / f"{seq:012d}.rec"


def _reason_path(record: Path) -> Path:
    """The ``.reason.txt`` beside a refused record."""
    return record.with_name(f"{record.name}.reason.txt")


def _allocated_bytes(path: Path, *, missing: int | None = None) -> int:
    """Bytes a file (or folder) takes on disk: whole blocks (``st_blocks``), at least its size.

    ``missing``: returned when ``path`` is gone; ``None`` raises ``FileNotFoundError``.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        if missing is None:
            raise
        return missing
    return max(st.st_blocks * 512, st.st_size)
