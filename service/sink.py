"""Where event revisions enter the store: one writer thread that stores them in batches.

Both ways in go through ``StoreSink``:

- the in-process pipeline (``anjian run``) calls ``publish`` from its analysis
  thread: the revision is queued and ``publish`` returns at once, so a slow or
  locked database never stalls the cameras (the frame path never blocks);
- ``POST /ingest/events`` calls ``submit`` and awaits the returned future, which
  resolves once the revision is committed: nothing acknowledged is lost.

One writer thread drains the queue: it takes every revision waiting (up to
``max_batch``), writes their snapshots (in parallel, each fsynced), stores them
all in one transaction with their audit lines and webhook deliveries
(``EventStore.upsert_events``), then resolves the futures (the commit wakes the webhook
dispatcher once, through the outbox). SQLite allows one writer at a time; one transaction per batch
instead of one per revision is what lets ingest keep up with hundreds of
revisions a second.

Queue policy. Revisions from ``publish`` are never dropped and never refused:
the queue is unbounded but watched. Dropping would lose an alert, and blocking
(even with a timeout) would stall every camera while the database is locked;
the pipeline produces a few revisions a second, so even a minute of a locked
database queues a few hundred, mostly without snapshots. The depth is exported
(``anjian_ingest_backlog``) and logged when it crosses 1,000, 10,000 and
100,000. A batch that fails to store is retried with backoff (its ``publish``
revisions stay queued, in order), except a revision that can never be stored as
it is (the database refuses a value it holds, ``DataError``, or it changes its
incident's camera or behaviour, ``RevisionRefusedError``): the batch is stored
again one revision at a time, and that one is set aside (logged with its event id
and the reason, counted in ``SinkStats.set_aside``) instead of blocking every later
revision. Revisions from ``submit`` get backpressure
instead: beyond ``max_backlog`` queued, ``submit`` raises ``IngestBusyError``
(503 for the pipeline, whose disk spool sends it again later), and a failed
batch fails their futures at once (the pipeline retries those too).

A full disk. A snapshot that cannot be written (no space, permissions) does not hold
its revision back: the revision is stored without it in the same transaction, so the
alert still goes out (the text needs ~2 kB of the database, a snapshot 100 kB of the
disk). When the transaction fails too (SQLite cannot commit on a full disk), the batch
is retried with its snapshots' bytes, so the retry that succeeds once space is freed
stores them as well. Only a revision *stored* without its snapshot or clip is counted
(``snapshot_failures``, once however many retries it took) and logged, one line per
batch. A failed batch is logged with its traceback once, then on one line at most once
a minute while the failures go on, and once more when storing works again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.exc import DataError, SQLAlchemyError

from anjian.cameras.backoff import backoff_delay_s
from anjian.pipeline.counters import Counters
from anjian.pipeline.event import Event
from anjian.pipeline.log_throttle import LogThrottle
from anjian.service.errors import EvidenceError, IngestBusyError, RevisionRefusedError
from anjian.service.evidence import EvidenceStore
from anjian.service.metrics import ServiceMetrics
from anjian.service.store import EventStore, UpsertResult

__all__ = ["SinkStats", "StoreSink"]

logger = logging.getLogger(__name__)

_BACKLOG_WARNINGS = (1_000, 10_000, 100_000)
_FAILURE_LOG_EVERY_S = 60.0  # while batches keep failing, one log line per this long
_IDS_LOGGED = 3
_NEW, _RUNNING, _STOPPING, _STOPPED = "new", "running", "stopping", "stopped"


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Counters of a ``StoreSink`` since it was created.

    Attributes:
        published: Revisions received (``publish`` and ``submit``).
        stored: Revisions applied to the store.
        ignored: Stale or duplicate revisions the store ignored.
        failed: Revisions not stored: ingested ones whose batch failed (the
            pipeline sends them again), or queued ones left when ``stop`` gave up.
        set_aside: Revisions that can never be stored as they are (the database refuses a value
            they hold, or they change their incident's camera or behaviour): logged and dropped, not retried.
        snapshot_failures: Snapshots and clips that could not be written (disk full, permissions), their
            revisions stored without them; counted once, when the revision is stored, however often its
            batch was retried.
        batches: Transactions written.
        retries: Failed batches of published revisions, retried.
    """

    published: int = 0
    stored: int = 0
    ignored: int = 0
    failed: int = 0
    set_aside: int = 0
    snapshot_failures: int = 0
    batches: int = 0
    retries: int = 0


@dataclass(slots=True)
class _Job:
    """One queued revision; ``future`` is set for ``submit`` (the ingest route awaits it)."""

    event: Event
    future: Future[UpsertResult] | None


@dataclass(frozen=True, slots=True)
class _Snapshots:
    """The snapshots of a batch: per revision the path written (``None``: keep the stored one), and the failures."""

    paths: list[str | None]
    failed: list[Event]
    first_error: Exception | None


def _describe(exc: BaseException) -> str:
    """One line saying what failed: the exception's type, its first line and its notes (at most ~300 characters)."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}"[:240]
    notes = [note for note in getattr(exc, "__notes__", ()) if isinstance(note, str)]
    return "; ".join([line, *notes])[:400]


def _refusal(event: Event, exc: DataError) -> RevisionRefusedError:
    """The ``RevisionRefusedError`` of a revision the database refused, with the database's reason."""
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    reason = "; ".join(lines)[:500] or type(exc.orig).__name__
    refusal = RevisionRefusedError(
        event.id, event.revision, f"the database refuses a value it holds: {reason}"
    )
    refusal.__cause__ = exc
    return refusal


class StoreSink:
    """Implements ``anjian.pipeline.sink.EventSink`` and the ingest path over one batching writer thread.

    The writer starts with the first revision (or ``start``); ``stop`` stores what is
    queued and ends it. ``publish`` never raises into the pipeline and never blocks;
    failures are logged with the camera id and counted in ``stats()``.

    Args:
        store: Where events go.
        evidence: Where snapshots and clips go.
        metrics: Counts received revisions, the backlog and the batch sizes, when given.
        max_batch: Most revisions stored in one transaction.
        max_backlog: Queued revisions beyond which ``submit`` refuses (``IngestBusyError``).
        evidence_threads: Snapshots written in parallel within a batch (each is fsynced).
        retry_base_s: Wait after a failed batch of published revisions, doubled each time.
        retry_max_s: Longest wait between retries.

    Example:
        >>> sink = StoreSink(store, EvidenceStore(config.storage.dir))
        >>> sink.publish(event)                     # from the pipeline thread: queued
        >>> result = sink.submit(event).result()    # ingest: once committed
        >>> sink.stop()                             # stores what is queued
    """

    def __init__(
        self,
        store: EventStore,
        evidence: EvidenceStore,
        *,
        metrics: ServiceMetrics | None = None,
        max_batch: int = 256,
        max_backlog: int = 10_000,
        evidence_threads: int = 8,
        retry_base_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        if max_batch < 1 or max_backlog < 1 or evidence_threads < 1:
            raise ValueError(
                "expected max_batch, max_backlog and evidence_threads >= 1, got "
                f"{max_batch}, {max_backlog} and {evidence_threads}"
            )
        if not 0 < retry_base_s <= retry_max_s:
            raise ValueError(
                f"expected 0 < retry_base_s <= retry_max_s, got {retry_base_s} and {retry_max_s}"
            )
        self._store = store
        self._evidence = evidence
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_backlog = max_backlog
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._io = ThreadPoolExecutor(evidence_threads, thread_name_prefix="anjian-evidence")
        self._jobs: deque[_Job] = deque()
        self._in_flight = 0
        self._state = _NEW
        self._cond = threading.Condition()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_backlog = 0
        self._counters = Counters(SinkStats())
        self._failed_attempts = 0  # failed batches in a row (the writer thread's)
        self._failing_since = 0.0  # monotonic time of the first of them
        self._failure_log = LogThrottle(_FAILURE_LOG_EVERY_S)

    # ------------------------------------------------------------- public

    def stats(self) -> SinkStats:
        """A copy of the counters."""
        return self._counters.snapshot()

    def backlog(self) -> int:
        """Revisions queued or being written."""
        with self._cond:
            return len(self._jobs) + self._in_flight

    def start(self) -> None:
        """Start the writer thread (``publish`` and ``submit`` start it too); safe to call twice.

        Raises:
            RuntimeError: The sink was stopped.
        """
        with self._cond:
            self._start_locked()

    def publish(self, event: Event) -> None:
        """Queue one revision from the pipeline; never blocks, never raises, never drops.

        After ``stop`` a revision is stored in the calling thread rather than lost.

        Args:
            event: A revision from the pipeline.
        """
        self._counters.add(published=1)
        if self._enqueue(_Job(event, None), is_refusable=False):
            return
        try:
            self._store_batch([event])
        except Exception:
            self._counters.add(failed=1)
            logger.exception(
                "%s: cannot store revision %d of %s event %s",
                event.camera_id,
                event.revision,
                event.behaviour,
                event.id,
            )

    def submit(self, event: Event) -> Future[UpsertResult]:
        """Queue one ingested revision; the future resolves once it is committed.

        Returns:
            Resolves to the store's ``UpsertResult``, or raises what storing raised
            (``sqlalchemy.exc.SQLAlchemyError``).

        Raises:
            IngestBusyError: ``max_backlog`` revisions are already queued, or the sink is stopping.
        """
        self._counters.add(published=1)
        future: Future[UpsertResult] = Future()
        # Running from the start: a caller that gives up (a client that hung up) cannot cancel it,
        # so the writer always resolves it; the revision is stored either way.
        future.set_running_or_notify_cancel()
        if not self._enqueue(_Job(event, future), is_refusable=True):
            raise IngestBusyError("the service is stopping; send the event again in a moment")
        return future

    def store_event(self, event: Event) -> UpsertResult:
        """Store one revision now, in the calling thread, in its own transaction (no queue).

        What ``publish`` falls back to after ``stop``; also the one-write-per-request
        path that ``anjian bench service`` measures batching against.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database failed.
        """
        self._counters.add(published=1)
        return self._store_batch([event])[0]

    def flush(self, timeout_s: float) -> bool:
        """Wait until every queued revision was written (or failed).

        Returns:
            ``True`` when nothing is left, ``False`` when ``timeout_s`` ran out first.
        """
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and not self._in_flight, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Store what is queued, then end the writer thread; safe to call twice.

        Revisions published afterwards are stored in the caller's thread; ``submit``
        refuses them. When the database does not take the queue within ``timeout_s``,
        what is left is counted as failed and logged.
        """
        with self._cond:
            if self._state in (_STOPPING, _STOPPED):
                return
            was_running = self._state == _RUNNING
            self._state = _STOPPING
            self._cond.notify_all()
        thread = self._thread
        if was_running and thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                self._abort.set()
                logger.error(
                    "event writer: %d revision(s) not stored within %.0fs of stopping",
                    self.backlog(),
                    timeout_s,
                )
        with self._cond:
            self._state = _STOPPED
        self._io.shutdown(wait=False)

    # ------------------------------------------------------------- queue

    def _start_locked(self) -> None:
        """Start the writer if it is new (the caller holds ``_cond``)."""
        if self._state == _RUNNING:
            return
        if self._state != _NEW:
            raise RuntimeError("a stopped StoreSink cannot be restarted; create a new one")
        self._state = _RUNNING
        self._thread = threading.Thread(target=self._run, name="anjian-event-writer", daemon=True)
        self._thread.start()

    def _enqueue(self, job: _Job, *, is_refusable: bool) -> bool:
        """Queue a job; ``False`` when the sink is stopping or stopped."""
        with self._cond:
            if self._state in (_STOPPING, _STOPPED):
                return False
            backlog = len(self._jobs) + self._in_flight
            if is_refusable and backlog >= self._max_backlog:
                raise IngestBusyError(
                    f"{backlog} event revisions are waiting to be stored; send it again in a moment"
                )
            self._jobs.append(job)
            self._start_locked()
            self._cond.notify_all()
        self._watch_backlog(backlog + 1)
        return True

    def _watch_backlog(self, backlog: int) -> None:
        """Export the backlog; warn once each time it crosses a threshold upwards."""
        if self._metrics is not None:
            self._metrics.ingest_backlog.set(backlog)
        crossed = max((t for t in _BACKLOG_WARNINGS if backlog >= t), default=0)
        if crossed > self._warned_backlog:
            logger.warning(
                "event writer: %d revisions waiting to be stored (is the database slow or locked?)", backlog
            )
        self._warned_backlog = crossed

    # ------------------------------------------------------------ writer

    def _run(self) -> None:
        """Writer loop: take what is queued, store it in one transaction, repeat until stopped and empty."""
        while not self._abort.is_set():
            with self._cond:
                self._cond.wait_for(lambda: bool(self._jobs) or self._state != _RUNNING)
                if not self._jobs:
                    return
                count = min(self._max_batch, len(self._jobs))
                batch = [self._jobs.popleft() for _ in range(count)]
                self._in_flight = count
            is_stored = self._write(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()
                backlog = len(self._jobs)
            self._watch_backlog(backlog)
            if is_stored:
                self._recovered()
            else:
                delay_s = backoff_delay_s(
                    self._failed_attempts, base_s=self._retry_base_s, max_s=self._retry_max_s
                )
                self._abort.wait(delay_s)
        with self._cond:
            left = list(self._jobs)
            self._jobs.clear()
        for job in left:
            if job.future is not None:
                job.future.set_exception(IngestBusyError("the service stopped before storing it"))
        self._counters.add(failed=len(left))

    def _write(self, batch: list[_Job]) -> bool:
        """Store a batch; ``False`` when it must be retried (its published revisions are back in front).

        A batch that fails because of one revision's content (``DataError``: a value the
        database cannot hold, or a ``RevisionRefusedError``) is stored again one revision
        at a time, so only that revision is set aside and the rest go on. Any other
        failure (the database does not answer) keeps the whole batch for a retry.
        """
        try:
            results = self._store_batch([job.event for job in batch])
        except (DataError, RevisionRefusedError) as exc:
            if len(batch) > 1:
                return self._write_each(batch)
            self._set_aside(batch[0], exc)
            return True
        except Exception as exc:  # noqa: BLE001 - logged by _fail; the batch is retried
            self._fail(batch, exc)
            return False
        for job, result in zip(batch, results, strict=True):
            if job.future is not None:
                job.future.set_result(result)
        return True

    def _write_each(self, batch: list[_Job]) -> bool:
        """Store a batch one revision per transaction, setting aside those refused for their content."""
        for index, job in enumerate(batch):
            try:
                (result,) = self._store_batch([job.event])
            except (DataError, RevisionRefusedError) as exc:
                self._set_aside(job, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - logged by _fail; the rest is retried
                self._fail(batch[index:], exc)
                return False
            if job.future is not None:
                job.future.set_result(result)
        return True

    def _fail(self, jobs: list[_Job], exc: Exception) -> None:
        """Fail the futures of ``jobs`` and put their published revisions back in front, in order."""
        retried = [job for job in jobs if job.future is None]
        submitted = len(jobs) - len(retried)
        for job in jobs:
            if job.future is not None:
                job.future.set_exception(exc)
        self._counters.add(failed=submitted, retries=1 if retried else 0)
        self._log_failure(jobs, len(retried), exc)
        with self._cond:
            self._jobs.extendleft(reversed(retried))

    def _log_failure(self, jobs: list[_Job], retried: int, exc: Exception) -> None:
        """Log a failed batch: the first of a run with its traceback, then one line at most once a minute."""
        now = time.monotonic()
        self._failed_attempts += 1
        is_first = self._failed_attempts == 1
        if is_first:
            self._failing_since = now
            self._failure_log.forget()
        if self._failure_log.admit(now=now) is None:
            return
        logger.error(
            "event writer: cannot store %d revision(s) of %s (%s); %d will be retried%s",
            len(jobs),
            ", ".join(sorted({job.event.camera_id for job in jobs})),
            _describe(exc),
            retried,
            ""
            if is_first
            else f" ({self._failed_attempts} failed attempts for {now - self._failing_since:.0f}s)",
            exc_info=exc if is_first else None,
        )

    def _recovered(self) -> None:
        """After a run of failed batches, log once that storing works again."""
        if not self._failed_attempts:
            return
        logger.info(
            "event writer: storing again after %d failed attempt(s) over %.0fs",
            self._failed_attempts,
            time.monotonic() - self._failing_since,
        )
        self._failed_attempts = 0

    def _set_aside(self, job: _Job, exc: DataError | RevisionRefusedError) -> None:
        """Give up on a revision that can never be stored: log why, count it, fail its future with a 422's reason."""
        event = job.event
        refusal = exc if isinstance(exc, RevisionRefusedError) else _refusal(event, exc)
        self._counters.add(set_aside=1)
        logger.error(
            "%s: event writer sets aside revision %d of event %s, not retried: %s",
            event.camera_id,
            event.revision,
            event.id,
            refusal.reason,
        )
        if job.future is not None:
            job.future.set_exception(refusal)

    def _store_batch(self, events: Sequence[Event]) -> list[UpsertResult]:
        """Snapshots, one transaction, clips and counters.

        A snapshot that could not be written leaves its revision to be stored without it;
        should the transaction fail as well, the caller retries the revisions, snapshots
        included, and nothing is counted yet.
        """
        snapshots = self._save_snapshots(events)
        try:
            results = self._store.upsert_events(list(zip(events, snapshots.paths, strict=True)))
        except Exception as exc:
            if snapshots.failed:
                exc.add_note(
                    f"{len(snapshots.failed)} snapshot(s) not written either: {snapshots.first_error}"
                )
            raise
        if snapshots.failed:
            self._stored_without("snapshot", snapshots.failed, snapshots.first_error)
        applied = 0
        clips_failed: list[Event] = []
        clip_error: Exception | None = None
        for event, result in zip(events, results, strict=True):
            if self._metrics is not None:
                self._metrics.ingested.labels(
                    behaviour=event.behaviour.value,
                    severity=event.severity.value,
                    result="applied" if result.is_applied else "duplicate",
                ).inc()
            if result.is_applied:
                applied += 1
                error = self._save_clip(event)
                if error is not None:
                    clips_failed.append(event)
                    clip_error = clip_error or error
        if clips_failed:
            self._stored_without("clip", clips_failed, clip_error)
        if self._metrics is not None:
            self._metrics.ingest_batch_size.observe(len(events))
        self._counters.add(stored=applied, ignored=len(events) - applied, batches=1)
        return results

    def _save_snapshots(self, events: Sequence[Event]) -> _Snapshots:
        """Write the snapshot each revision brings, in parallel, unless a newer revision is stored or queued.

        Returns:
            Per revision, the snapshot's relative path, or ``None`` to keep the stored one;
            and the revisions whose snapshot could not be written, with the first error.
        """
        paths: list[str | None] = [None] * len(events)
        carrying = [i for i, event in enumerate(events) if event.snapshot_jpeg is not None]
        if not carrying:
            return _Snapshots(paths, [], None)
        newest = self._store.stored_revisions(events[i].id for i in carrying)
        chosen: dict[str, int] = {}  # event id -> index of the revision whose snapshot is written
        for i in carrying:
            event = events[i]
            if event.revision > newest.get(event.id, 0):
                newest[event.id] = event.revision  # a stale snapshot must not overwrite a newer one
                chosen[event.id] = i
        jobs = [
            (i, events[i], jpeg) for i in chosen.values() if (jpeg := events[i].snapshot_jpeg) is not None
        ]
        if len(jobs) == 1:  # one revision (``store_event``, a trickle): no hand-off to the pool
            i, event, jpeg = jobs[0]
            outcomes = {i: self._save_snapshot(event, jpeg)}
        else:
            futures = {i: self._io.submit(self._save_snapshot, event, jpeg) for i, event, jpeg in jobs}
            outcomes = {i: future.result() for i, future in futures.items()}
        failed: list[Event] = []
        first_error: Exception | None = None
        for i, outcome in outcomes.items():
            if isinstance(outcome, Exception):
                failed.append(events[i])
                first_error = first_error or outcome
            else:
                paths[i] = outcome
        return _Snapshots(paths, failed, first_error)

    def _save_snapshot(self, event: Event, jpeg: bytes) -> str | Exception:
        """Write one snapshot; its relative path, or what prevented it (the caller logs it with the batch's)."""
        try:
            return self._evidence.save_snapshot(event.camera_id, event.id, jpeg)
        except Exception as exc:  # noqa: BLE001 - returned: logged once per batch by the caller
            return exc

    def _save_clip(self, event: Event) -> Exception | None:
        """Write the clip a revision brings and link it to the event; what prevented it, if anything."""
        if event.clip_mp4 is None:
            return None
        try:
            path = self._evidence.save_clip(event.camera_id, event.id, event.clip_mp4)
            self._store.attach_clip(event.id, path)
        except Exception as exc:  # noqa: BLE001 - returned: logged once per batch by the caller
            return exc
        return None

    def _stored_without(self, kind: str, events: list[Event], error: Exception | None) -> None:
        """Count and log, on one line, the revisions of a batch stored without their snapshot or clip."""
        self._counters.add(snapshot_failures=len(events))
        if self._metrics is not None:
            self._metrics.evidence_write_failures.labels(kind=kind).inc(len(events))
        ids = ", ".join(event.id for event in events[:_IDS_LOGGED]) + (
            ", …" if len(events) > _IDS_LOGGED else ""
        )
        # disk full, permissions, bytes that are no JPEG/MP4, a database that cannot take the clip's path
        is_expected = isinstance(error, EvidenceError | ValueError | SQLAlchemyError)
        logger.warning(
            "event writer: stored %d revision(s) of %s without their %s (event %s): %s",
            len(events),
            ", ".join(sorted({event.camera_id for event in events})),
            kind,
            ids,
            error,
            exc_info=None if is_expected else error,
        )
