"""Evidence retention: the snapshots and clips of settled alerts are deleted once old, or past a size cap.

Each event keeps a snapshot (50-130 kB) and a clip (100 kB to MBs) under ``storage.dir``;
without retention a camera that flaps a false alarm adds hundreds of MB a day until the
disk is full and no alert can be stored. One pass, every hour (the first a minute after
start):

1. **Census**: the evidence folder is walked once: its size (``anjian_evidence_bytes``),
   and the ``.tmp-*`` files an interrupted write left (``kill -9``, power cut) are
   deleted once an hour old, so a write in progress is never touched.
2. **Age** (``storage.keep_evidence_days``): the evidence of every *settled* alert
   (resolved, false alarm, closed) that has not changed for that long is deleted.
3. **Size** (``storage.max_evidence_gb``): while the evidence is over the cap, that of
   the settled alerts that changed longest ago is deleted too, whatever its age.

Rules that hold whatever the settings:

- An alert still open (raised, acknowledged, dispatched) keeps its evidence however old:
  someone still has to look at it.
- Age counts from the alert's last change (``updated_at``: its last revision, action,
  escalation or clip): an incident still going on, or settled yesterday after months,
  keeps its evidence.
- Oldest change first, ``batch`` alerts per write transaction, so the event writer and
  the operators wait at most one short transaction for it.
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
years of cleared alerts (after a restart, the first pass reads them once). An alert
settled while the wall clock stood behind that position (a step back) waits for the
first pass after the next restart: evidence is kept longer, never deleted early.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import or_, select, tuple_, update
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


@dataclass(frozen=True, slots=True)
class RetentionPass:
    """What one retention pass did.

    Attributes:
        expired: Alerts whose evidence was deleted for its age (``keep_evidence_days``).
        evicted: Alerts whose evidence was deleted to fit under ``max_evidence_gb``.
        freed_bytes: Bytes of evidence deleted (stale temporaries included).
        evidence_bytes: Size of the evidence left.
        removed_temporaries: Stale ``.tmp-*`` files deleted.
        not_deleted: Alerts whose files could not be deleted (their rows keep their paths).
    """

    expired: int = 0
    evicted: int = 0
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
    """Deletes the evidence of settled alerts by age and size, and crash leftovers, in a background thread.

    Args:
        database: The service's database (the ``events`` table).
        evidence: The evidence folder.
        keep_s: Settled alerts unchanged this long lose their evidence; ``None``: never for age.
        max_bytes: Above this much evidence, settled alerts lose theirs, oldest first; ``None``: no cap.
        clock: Epoch seconds, the store's clock (``updated_at`` is stamped with it).
        metrics: Counts deleted evidence and exports the evidence size, when given.
        space: Read every tick, so a storage running low is logged even when nothing polls
            ``/readyz`` or ``/metrics``.
        batch: Alerts per write transaction.
        interval_s: Seconds between passes (the first runs ``tick_s`` after ``start``).
        tick_s: Seconds between the thread's wake-ups (each reads ``space``).
        stale_temporary_s: A ``.tmp-*`` file unmodified this long is a crash's leftover.
        pause_s: Wait between two batches, so the event writer and the operators' actions get
            the write lock in between (SQLite has one writer at a time).

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
        clock: Callable[[], float] = time.time,
        metrics: ServiceMetrics | None = None,
        space: StorageSpace | None = None,
        batch: int = 100,
        interval_s: float = _PASS_INTERVAL_S,
        tick_s: float = _TICK_S,
        stale_temporary_s: float = _STALE_TEMPORARY_S,
        pause_s: float = 0.05,
    ) -> None:
        if batch < 1:
            raise ValueError(f"expected batch >= 1, got {batch}")
        if (keep_s is not None and keep_s <= 0) or (max_bytes is not None and max_bytes <= 0):
            raise ValueError(f"expected keep_s and max_bytes > 0 or None, got {keep_s} and {max_bytes}")
        self._db = database
        self._evidence = evidence
        self._keep_s = keep_s
        self._max_bytes = max_bytes
        self._clock = clock
        self._metrics = metrics
        self._space = space
        self._batch = batch
        self._interval_s = interval_s
        self._stale_temporary_s = stale_temporary_s
        self._pause_s = pause_s
        self._cursor: tuple[float, str] | None = None  # (updated_at, id) every alert before was handled
        self._lock = threading.Lock()  # one pass at a time (the thread, or a caller's prune())
        self._stopping = threading.Event()
        self._next_pass = time.monotonic()
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
        """Run one pass now: census and stale temporaries, then age, then size; see the module docstring.

        Returns:
            What it did (also logged when it deleted anything, and counted in the metrics).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database failed; what was done before stays done.
        """
        with self._lock:
            now = self._clock()
            census = self._evidence.census(stale_before=now - self._stale_temporary_s)
            total = census.total_bytes
            aged = _Tally()
            if self._keep_s is not None:
                aged = self._clear(before=now - self._keep_s, reason="age")
                total = max(0, total - aged.freed_bytes)
            capped = _Tally()
            if self._max_bytes is not None and total > self._max_bytes:
                capped = self._clear(before=None, reason="size", bytes_over=total - self._max_bytes)
                total = max(0, total - capped.freed_bytes)
                if total > self._max_bytes:
                    logger.warning(
                        "evidence: %.2f GB kept, over storage.max_evidence_gb (%.2f GB): the rest belongs to "
                        "alerts still open, whose evidence is never deleted",
                        total / _GB,
                        self._max_bytes / _GB,
                    )
        done = RetentionPass(
            expired=aged.cleared,
            evicted=capped.cleared,
            freed_bytes=aged.freed_bytes + capped.freed_bytes + census.removed_bytes,
            evidence_bytes=total,
            removed_temporaries=census.removed_temporaries,
            not_deleted=aged.not_deleted + capped.not_deleted,
        )
        self._report(done, aged.first_error or capped.first_error)
        return done

    # ------------------------------------------------------------ internals

    def _tick(self) -> None:
        """Read the free space (logged when it crosses its threshold); run a pass when one is due."""
        if self._space is not None:
            self._space.read()
        if time.monotonic() < self._next_pass:
            return
        self._next_pass = time.monotonic() + self._interval_s
        self.prune()

    def _clear(self, *, before: float | None, reason: str, bytes_over: int = 0) -> _Tally:
        """Delete the evidence of settled alerts changed before ``before`` (any time: ``None``), batch by batch.

        With ``bytes_over``, stops once that many bytes were freed.
        """
        tally = _Tally()
        while not self._stopping.is_set():
            is_full_batch = self._clear_batch(before, tally, bytes_over)
            if not is_full_batch or (bytes_over and tally.freed_bytes >= bytes_over):
                break
            self._stopping.wait(self._pause_s)
        if self._metrics is not None and tally.cleared:
            self._metrics.evidence_deleted.labels(reason=reason).inc(tally.cleared)
        return tally

    def _clear_batch(self, before: float | None, tally: _Tally, bytes_over: int) -> bool:
        """One transaction: the next ``batch`` candidates' files deleted and their paths cleared.

        Returns:
            Whether a whole batch was read (more may follow).
        """
        query = select(
            EventRow.id, EventRow.camera_id, EventRow.snapshot_path, EventRow.clip_path, EventRow.updated_at
        ).where(
            EventRow.state.in_(sorted(state.value for state in SETTLED_STATES)),
            or_(EventRow.snapshot_path.is_not(None), EventRow.clip_path.is_not(None)),
        )
        if before is not None:
            query = query.where(EventRow.updated_at < before)
        if self._cursor is not None:
            at, event_id = self._cursor
            query = query.where(
                EventRow.updated_at >= at, tuple_(EventRow.updated_at, EventRow.id) > tuple_(at, event_id)
            )
        query = query.order_by(EventRow.updated_at, EventRow.id).limit(self._batch).with_for_update()
        cleared: list[str] = []
        cursor = self._cursor
        with self._db.write() as session:
            rows = session.execute(query).all()
            for event_id, camera_id, snapshot_path, clip_path, updated_at in rows:
                if bytes_over and tally.freed_bytes >= bytes_over:
                    break
                cursor = (updated_at, event_id)
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
        if done.expired or done.evicted or done.removed_temporaries:
            logger.info(
                "evidence: deleted the snapshots and clips of %d settled alert(s) older than "
                "storage.keep_evidence_days and %d more over storage.max_evidence_gb, and %d file(s) left by "
                "interrupted writes: %.1f MB freed, %.2f GB kept",
                done.expired,
                done.evicted,
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
