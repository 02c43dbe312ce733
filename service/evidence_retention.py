"""Evidence retention: the snapshots and clips of settled alerts are deleted when the disk needs the space.

Each event keeps a snapshot (50-130 kB) and a clip (100 kB to MBs) under ``storage.dir``;
without retention a camera that flaps a false alarm adds hundreds of MB a day until the
disk is full and no alert can be stored. By default nothing is deleted while the disk has
room: like a video recorder overwriting its oldest footage, evidence goes only when the
free space runs low. One pass, every hour (the first a minute after start):

1. **Census**: the evidence folder is walked once: its size (``anjian_evidence_bytes``),
   and the ``.tmp-*`` files an interrupted write left (``kill -9``, power cut) are
   deleted once an hour old, so a write in progress is never touched.
2. **Age** (``storage.keep_evidence_days``, off by default): the evidence of every
   *settled* alert (resolved, false alarm, closed) that has not changed for that long is
   deleted. Age is counted against the wall clock, but never past one day after the
   newest change stored in the events table: a clock far ahead (a bad RTC before NTP
   syncs) keeps evidence longer, it never deletes it early.
3. **Size** (``storage.max_evidence_gb``, off by default): while the evidence is over the
   cap, that of the settled alerts that changed longest ago is deleted too, whatever its age.
4. **Free space** (``storage.reclaim_below_mb``, by default twice ``min_free_mb``): while
   the file system of ``storage.dir`` has less free than that (the reading ``/readyz``
   uses), that of the settled alerts that changed longest ago is deleted until as many
   bytes were freed as were missing.

Rules that hold whatever the settings:

- An alert still open (raised, acknowledged, dispatched) keeps its evidence however old:
  someone still has to look at it.
- Age counts from the alert's last change (``updated_at``: its last revision, action,
  escalation or clip): an incident still going on, or settled yesterday after months,
  keeps its evidence.
- Oldest change first, ``batch`` alerts per write transaction, each followed by a pause
  as long as the transaction held the write lock (at most a second), so the event writer
  and the operators get the lock at least half the time, however slow the storage.
- The incident and its audit trail stay. Its row keeps no path to a deleted file: in the
  same transaction as the files go, ``snapshot_path`` and ``clip_path`` are cleared and
  ``version`` raised, so the API lists it without ``snapshot_url``/``clip_url``, the
  dashboard says it has no snapshot, and the evidence routes answer 404 (never a 500 for
  a file that is gone). ``updated_at`` is left alone: expiring evidence is not news, and
  the live feed must not replay months of old alerts to every screen.

Files are deleted inside the transaction that clears the paths (which holds the write
lock), so no revision of that alert is stored in between. Should the commit fail after
the files went, the rows still name them: the API answers 404 (file missing) and the
next pass clears them.

Between passes the position reached (``updated_at``, id) is kept: every alert before it
was either cleared or still open when passed, and settling an alert moves its
``updated_at`` to now, ahead of it again. So a pass reads only what changed since, not
years of cleared alerts (after a restart, the first pass reads them once). Each pass
starts ``look_back_s`` (5 minutes) before that position, because writers stamp
``updated_at`` before they get the write lock, so their commits land slightly out of time
order; the rows re-read there are cheap (cleared, or still open). The position is taken
from the candidates as read *before* they were locked (on PostgreSQL a row locked meanwhile
comes back with its new ``updated_at``; such a row changed, so it is left for later, in its
new place), and never goes past the time the pass started. An alert settled while the
wall clock stood more than ``look_back_s`` behind that position (a step back) waits for the
first pass after the next restart: evidence is kept longer, never deleted early.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from anjian.service.lifecycle import AlertState
from anjian.service.periodic import PeriodicThread
from anjian.service.tables import EventRow

if TYPE_CHECKING:
    from anjian.service.database import Database
    from anjian.service.evidence import EvidenceStore
    from anjian.service.metrics import ServiceMetrics
    from anjian.service.storage_space import StorageSpace

__all__ = ["SETTLED_STATES", "EvidenceRetention", "RetentionPass"]

logger = logging.getLogger(__name__)

SETTLED_STATES: Final[frozenset[AlertState]] = frozenset(
    {AlertState.RESOLVED, AlertState.FALSE_ALARM, AlertState.CLOSED}
)
"""The states whose alerts may lose their evidence: no one needs to act on them any more."""

_GB = 1024**3
_PASS_INTERVAL_S = 3600.0
_TICK_S = 60.0
_STALE_TEMPORARY_S = 3600.0
_LOOK_BACK_S = 300.0
_MAX_PAUSE_S = 1.0
_CLOCK_AHEAD_S = 86_400.0
"""Age is never counted past this long after the newest change stored (a clock far ahead)."""


@dataclass(frozen=True, slots=True)
class RetentionPass:
    """What one retention pass did.

    Attributes:
        expired: Alerts whose evidence was deleted for its age (``keep_evidence_days``).
        evicted: Alerts whose evidence was deleted to fit under ``max_evidence_gb``.
        reclaimed: Alerts whose evidence was deleted because the disk's free space was below
            ``reclaim_below_mb``.
        freed_bytes: Bytes of evidence deleted (stale temporaries included).
        evidence_bytes: Size of the evidence left.
        removed_temporaries: Stale ``.tmp-*`` files deleted.
        not_deleted: Alerts whose files could not be deleted (their rows keep their paths).
    """

    expired: int = 0
    evicted: int = 0
    reclaimed: int = 0
    freed_bytes: int = 0
    evidence_bytes: int = 0
    removed_temporaries: int = 0
    not_deleted: int = 0


@dataclass(slots=True)
class _Tally:
    """What the batches of one phase did."""

    cleared: int = 0
    freed_bytes: int = 0
    not_deleted: int = 0
    first_error: OSError | None = None


class EvidenceRetention:
    """Deletes the evidence of settled alerts by free space, age and size, and crash leftovers, in a thread.

    Args:
        database: The service's database (the ``events`` table).
        evidence: The evidence folder.
        keep_s: Settled alerts unchanged this long lose their evidence; ``None``: never for age.
        max_bytes: Above this much evidence, settled alerts lose theirs, oldest first; ``None``: no cap.
        reclaim_below_bytes: While ``space`` reads less free than this, settled alerts lose
            their evidence, oldest first, until that much is free; 0 (or no ``space``): never.
        clock: Epoch seconds, the store's clock (``updated_at`` is stamped with it).
        metrics: Counts deleted evidence and exports the evidence size, when given.
        space: Read every tick, so a storage running low is logged even when nothing polls
            ``/readyz`` or ``/metrics``; and by each pass, for ``reclaim_below_bytes``.
        batch: Alerts per write transaction.
        interval_s: Seconds between passes (the first runs ``tick_s`` after ``start``).
        tick_s: Seconds between the thread's wake-ups (each reads ``space``).
        stale_temporary_s: A ``.tmp-*`` file unmodified this long is a crash's leftover.
        pause_s: Least wait between two batches; the wait is as long as the batch held the
            write lock (at most ``max_pause_s``), so the event writer and the operators' actions
            get the lock in between (SQLite has one writer at a time).
        max_pause_s: Longest wait between two batches.
        look_back_s: Each pass starts this long before the position the last one reached.
        monotonic: Seconds of a monotonic clock (the pass schedule and the pauses); tests inject one.

    Example:
        >>> retention = EvidenceRetention(store.database, evidence, keep_s=90 * 86_400, max_bytes=None)
        >>> retention.prune()          # one pass now; or start() / stop() for the hourly thread
        RetentionPass(expired=12, ...)
    """

    def __init__(
        self,
        database: Database,
        evidence: EvidenceStore,
        *,
        keep_s: float | None,
        max_bytes: int | None,
        reclaim_below_bytes: int = 0,
        clock: Callable[[], float] = time.time,
        metrics: ServiceMetrics | None = None,
        space: StorageSpace | None = None,
        batch: int = 100,
        interval_s: float = _PASS_INTERVAL_S,
        tick_s: float = _TICK_S,
        stale_temporary_s: float = _STALE_TEMPORARY_S,
        pause_s: float = 0.05,
        max_pause_s: float = _MAX_PAUSE_S,
        look_back_s: float = _LOOK_BACK_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch < 1:
            raise ValueError(f"expected batch >= 1, got {batch}")
        if (keep_s is not None and keep_s <= 0) or (max_bytes is not None and max_bytes <= 0):
            raise ValueError(f"expected keep_s and max_bytes > 0 or None, got {keep_s} and {max_bytes}")
        if reclaim_below_bytes < 0:
            raise ValueError(f"expected reclaim_below_bytes >= 0, got {reclaim_below_bytes}")
        self._db = database
        self._evidence = evidence
        self._keep_s = keep_s
        self._max_bytes = max_bytes
        self._reclaim_below_bytes = reclaim_below_bytes
        self._clock = clock
        self._metrics = metrics
        self._space = space
        self._batch = batch
        self._interval_s = interval_s
        self._stale_temporary_s = stale_temporary_s
        self._pause_s = pause_s
        self._max_pause_s = max_pause_s
        self._look_back_s = look_back_s
        self._monotonic = monotonic
        self._cursor: tuple[float, str] | None = None  # (updated_at, id) every alert before was handled
        self._is_clock_ahead = False  # logged once each way
        self._lock = threading.Lock()  # one pass at a time (the thread, or a caller's prune())
        self._stopping = threading.Event()
        self._next_pass = monotonic()
        self._ticker = PeriodicThread(
            self._tick, interval_s=tick_s, name="anjian-evidence-retention", transient=(SQLAlchemyError,)
        )

    def start(self) -> None:
        """Start the background thread: the first pass one tick after, then one every ``interval_s``.

        Raises:
            RuntimeError: It was started or stopped before.
        """
        self._ticker.start()

    def stop(self) -> None:
        """Stop the thread after the batch in progress; safe to call twice and before ``start``."""
        self._stopping.set()
        self._ticker.stop()

    def prune(self) -> RetentionPass:
        """Run one pass now: census and stale temporaries, then age, size and free space; see the module docstring.

        Returns:
            What it did (also logged when it deleted anything, and counted in the metrics).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database failed; what was done before stays done.
        """
        with self._lock:
            now = self._clock()
            free_bytes = self._free_bytes()
            census = self._evidence.census(stale_before=now - self._stale_temporary_s)
            total = census.total_bytes
            freed = census.removed_bytes
            if self._cursor is not None:  # look back: commits land slightly out of updated_at order
                self._cursor = (self._cursor[0] - self._look_back_s, "")
            aged = _Tally()
            if self._keep_s is not None:
                reference = self._age_reference(now)
                if reference is not None:
                    aged = self._clear(before=reference - self._keep_s, reason="age")
                    total = max(0, total - aged.freed_bytes)
                    freed += aged.freed_bytes
            capped = _Tally()
            if self._max_bytes is not None and total > self._max_bytes:
                capped = self._clear(before=None, reason="size", bytes_over=total - self._max_bytes)
                total = max(0, total - capped.freed_bytes)
                freed += capped.freed_bytes
                if total > self._max_bytes:
                    logger.warning(
                        "evidence: %.2f GB kept, over storage.max_evidence_gb (%.2f GB): the rest belongs to "
                        "alerts still open (never deleted), or to files no alert names",
                        total / _GB,
                        self._max_bytes / _GB,
                    )
            reclaimed = _Tally()
            missing = 0 if free_bytes is None else self._reclaim_below_bytes - free_bytes - freed
            if missing > 0:
                reclaimed = self._clear(before=None, reason="space", bytes_over=missing)
                total = max(0, total - reclaimed.freed_bytes)
                if reclaimed.freed_bytes < missing:
                    logger.warning(
                        "evidence: %.0f MB short of storage.reclaim_below_mb (%.0f MB) free on the file system "
                        "of storage.dir, and no more settled alerts' evidence to delete: the rest belongs to "
                        "alerts still open (never deleted), or to other files there",
                        (missing - reclaimed.freed_bytes) / 1024**2,
                        self._reclaim_below_bytes / 1024**2,
                    )
            if self._cursor is not None and self._cursor[0] > now:  # never past the pass's start
                self._cursor = (now, "")
        done = RetentionPass(
            expired=aged.cleared,
            evicted=capped.cleared,
            reclaimed=reclaimed.cleared,
            freed_bytes=aged.freed_bytes + capped.freed_bytes + reclaimed.freed_bytes + census.removed_bytes,
            evidence_bytes=total,
            removed_temporaries=census.removed_temporaries,
            not_deleted=aged.not_deleted + capped.not_deleted + reclaimed.not_deleted,
        )
        self._report(done, aged.first_error or capped.first_error or reclaimed.first_error)
        return done

    # ------------------------------------------------------------ internals

    def _tick(self) -> None:
        """Read the free space (logged when it crosses its threshold); run a pass when one is due."""
        if self._space is not None:
            self._space.read()
        if self._monotonic() < self._next_pass:
            return
        self._next_pass = self._monotonic() + self._interval_s
        self.prune()

    def _free_bytes(self) -> int | None:
        """Free bytes on the storage's file system, when free-space reclaiming is on and it can be read."""
        if self._space is None or not self._reclaim_below_bytes:
            return None
        return self._space.read().free_bytes

    def _age_reference(self, now: float) -> float | None:
        """The time age is counted to: ``now``, but at most a day after the newest change stored; ``None``: none.

        A wall clock far ahead (a bad RTC before NTP syncs) would otherwise make every
        settled alert look old. Keeping evidence longer is safe; deleting it early is not.
        """
        with self._db.read() as session:
            newest: float | None = session.scalar(select(func.max(EventRow.updated_at)))
        if newest is None:
            return None
        is_ahead = now > newest + _CLOCK_AHEAD_S
        if is_ahead != self._is_clock_ahead:
            self._is_clock_ahead = is_ahead
            if is_ahead:
                logger.warning(
                    "evidence: the clock is %.1f days past the newest change stored; storage.keep_evidence_days "
                    "is counted to one day after that change instead (the clock may be ahead, or no alert "
                    "changed since), so no evidence is deleted early",
                    (now - newest) / 86_400,
                )
            else:
                logger.info("evidence: the clock agrees with the stored changes again; age counted to now")
        return min(now, newest + _CLOCK_AHEAD_S)

    def _clear(self, *, before: float | None, reason: str, bytes_over: int = 0) -> _Tally:
        """Delete the evidence of settled alerts changed before ``before`` (any time: ``None``), batch by batch.

        With ``bytes_over``, stops once that many bytes were freed.
        """
        tally = _Tally()
        while not self._stopping.is_set():
            started = self._monotonic()
            is_full_batch = self._clear_batch(before, tally, bytes_over)
            if not is_full_batch or (bytes_over and tally.freed_bytes >= bytes_over):
                break
            held = self._monotonic() - started
            self._stopping.wait(min(max(held, self._pause_s), self._max_pause_s))
        if self._metrics is not None and tally.cleared:
            self._metrics.evidence_deleted.labels(reason=reason).inc(tally.cleared)
        return tally

    def _clear_batch(self, before: float | None, tally: _Tally, bytes_over: int) -> bool:
        """One transaction: the next ``batch`` candidates' files deleted and their paths cleared.

        Returns:
            Whether a whole batch was read (more may follow).
        """
        candidates = select(
            EventRow.id, EventRow.camera_id, EventRow.snapshot_path, EventRow.clip_path, EventRow.updated_at
        ).where(
            EventRow.state.in_(sorted(state.value for state in SETTLED_STATES)),
            or_(EventRow.snapshot_path.is_not(None), EventRow.clip_path.is_not(None)),
        )
        query = candidates.add_columns(EventRow.version)
        if before is not None:
            query = query.where(EventRow.updated_at < before)
        if self._cursor is not None:
            at, event_id = self._cursor
            query = query.where(
                EventRow.updated_at >= at, tuple_(EventRow.updated_at, EventRow.id) > tuple_(at, event_id)
            )
        query = query.order_by(EventRow.updated_at, EventRow.id).limit(self._batch)
        cleared: list[str] = []
        cursor = self._cursor
        with self._db.write() as session:
            # Read, then lock: on PostgreSQL a row locked meanwhile comes back from FOR UPDATE with its
            # new updated_at, which must move neither the cursor nor the row's turn.
            rows = session.execute(query).all()
            ids = [row[0] for row in rows]
            locked = (
                {
                    row[0]: (row[4], row[5])
                    for row in session.execute(
                        candidates.add_columns(EventRow.version).where(EventRow.id.in_(ids)).with_for_update()
                    ).all()
                }
                if ids
                else {}
            )
            for event_id, camera_id, snapshot_path, clip_path, updated_at, version in rows:
                if bytes_over and tally.freed_bytes >= bytes_over:
                    break
                cursor = (updated_at, event_id)
                if locked.get(event_id) != (updated_at, version):  # changed meanwhile: its new turn comes
                    continue
                try:
                    freed = self._evidence.delete_event(camera_id, event_id, (snapshot_path, clip_path))
                except OSError as exc:  # kept, and its row keeps its paths; tried again after a restart
                    tally.not_deleted += 1
                    tally.first_error = tally.first_error or exc
                    continue
                tally.freed_bytes += freed
                cleared.append(event_id)
            if cleared:
                session.execute(
                    update(EventRow)
                    .where(EventRow.id.in_(cleared))
                    .values(snapshot_path=None, clip_path=None, version=EventRow.version + 1)
                    .execution_options(synchronize_session=False)
                )
        self._cursor = cursor
        tally.cleared += len(cleared)
        return len(rows) == self._batch

    def _report(self, done: RetentionPass, error: OSError | None) -> None:
        """Log a pass that deleted anything, or could not; export the evidence size."""
        if self._metrics is not None:
            self._metrics.evidence_bytes.set(done.evidence_bytes)
        if done.expired or done.evicted or done.reclaimed or done.removed_temporaries:
            logger.info(
                "evidence: deleted the snapshots and clips of %d settled alert(s) older than "
                "storage.keep_evidence_days, %d more over storage.max_evidence_gb and %d more to free space "
                "on the disk (storage.reclaim_below_mb), and %d file(s) left by interrupted writes: "
                "%.1f MB freed, %.2f GB kept",
                done.expired,
                done.evicted,
                done.reclaimed,
                done.removed_temporaries,
                done.freed_bytes / 1024**2,
                done.evidence_bytes / _GB,
            )
        if done.not_deleted:
            logger.warning(
                "evidence: cannot delete the evidence of %d settled alert(s), kept for now: %s",
                done.not_deleted,
                error,
            )
