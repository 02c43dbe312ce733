"""The in-process ``EventSink`` of the service: store each revision, keep its snapshot, announce it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from pipeline.event import Event
from service.evidence import EvidenceStore
from service.metrics import ServiceMetrics
from service.store import EventStore, UpsertResult
from service.webhooks import WebhookDispatcher

__all__ = ["SinkStats", "StoreSink"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Counters of a ``StoreSink`` since it was created.

    Attributes:
        published: Revisions received.
        stored: Revisions applied to the store.
        ignored: Stale or duplicate revisions the store ignored.
        failed: Revisions lost because storing them raised.
        snapshot_failures: Snapshots or clips that could not be written (the event was stored without).
    """

    published: int = 0
    stored: int = 0
    ignored: int = 0
    failed: int = 0
    snapshot_failures: int = 0


class StoreSink:
    """Implements ``pipeline.sink.EventSink`` by writing straight to the store, in the caller's thread.

    For each revision: write its snapshot (when it carries one and is newer than
    the stored revision), upsert the event and enqueue one webhook delivery per
    configured URL in the same transaction, then wake the dispatcher. ``publish``
    never raises into the pipeline: failures are logged with the camera id and
    counted in ``stats()``.

    A call costs one small SQLite transaction plus, when a snapshot comes, one
    file write with fsync: milliseconds, but a database locked by another writer
    can hold it for up to the store's busy timeout.

    Args:
        store: Where events go.
        evidence: Where snapshots go.
        dispatcher: The webhook worker to wake after each stored revision;
            ``None`` stores events without waking anyone.
        metrics: Counts received revisions, when given.

    Example:
        >>> sink = StoreSink(store, EvidenceStore(config.storage.dir), dispatcher)
        >>> sink.publish(event)        # from the pipeline thread
    """

    def __init__(
        self,
        store: EventStore,
        evidence: EvidenceStore,
        dispatcher: WebhookDispatcher | None = None,
        *,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._store = store
        self._evidence = evidence
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._lock = threading.Lock()
        self._stats = SinkStats()

    def stats(self) -> SinkStats:
        """A copy of the counters."""
        with self._lock:
            return self._stats

    def publish(self, event: Event) -> None:
        """Store one event revision and announce it; never raises.

        Args:
            event: A revision from the pipeline.
        """
        self._count(published=1)
        try:
            self.store_event(event)
        except Exception:
            self._count(failed=1)
            logger.exception(
                "%s: cannot store revision %d of %s event %s",
                event.camera_id,
                event.revision,
                event.behaviour,
                event.id,
            )

    def store_event(self, event: Event) -> UpsertResult:
        """``publish`` without the safety net: what ``POST /ingest/events`` calls.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database failed.
        """
        snapshot_path = self._save_snapshot(event)
        result = self._store.upsert_event(event, snapshot_path=snapshot_path)
        if self._metrics is not None:
            self._metrics.ingested.labels(
                behaviour=event.behaviour.value,
                severity=event.severity.value,
                result="applied" if result.is_applied else "duplicate",
            ).inc()
        if not result.is_applied:
            self._count(ignored=1)
            return result
        self._count(stored=1)
        self._save_clip(event)
        if result.deliveries_enqueued and self._dispatcher is not None:
            self._dispatcher.wake()
        return result

    def _save_clip(self, event: Event) -> None:
        """Write the clip a revision brings and link it to the event; a failure keeps the event."""
        if event.clip_mp4 is None:
            return
        try:
            path = self._evidence.save_clip(event.camera_id, event.id, event.clip_mp4)
            self._store.attach_clip(event.id, path)
        except Exception:
            self._count(snapshot_failures=1)
            logger.exception("%s: cannot save the clip of event %s; the event keeps no clip", event.camera_id, event.id)

    def _save_snapshot(self, event: Event) -> str | None:
        """Write the revision's snapshot if it brings one and is not stale; ``None`` keeps the stored one."""
        if event.snapshot_jpeg is None:
            return None
        stored = self._store.get_event(event.id)
        if stored is not None and stored.revision >= event.revision:
            return None  # stale or duplicate: must not overwrite the evidence of a newer revision
        try:
            return self._evidence.save_snapshot(event.camera_id, event.id, event.snapshot_jpeg)
        except Exception:
            self._count(snapshot_failures=1)
            logger.exception(
                "%s: cannot save the snapshot of event %s; storing it without one", event.camera_id, event.id
            )
            return None

    def _count(
        self,
        *,
        published: int = 0,
        stored: int = 0,
        ignored: int = 0,
        failed: int = 0,
        snapshot_failures: int = 0,
    ) -> None:
        """Add to the counters."""
        with self._lock:
            s = self._stats
            self._stats = SinkStats(
                published=s.published + published,
                stored=s.stored + stored,
                ignored=s.ignored + ignored,
                failed=s.failed + failed,
                snapshot_failures=s.snapshot_failures + snapshot_failures,
            )
