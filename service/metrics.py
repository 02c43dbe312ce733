"""Prometheus metrics of the service, served at ``/metrics``.

Counters and the latency histogram are kept in memory by the parts that act
(the webhook dispatcher, ingest, the lifecycle routes, the escalator). Gauges that
describe state (events per behaviour/colour/state, outbox depth, camera fps and
health) are read at scrape time from the database and the camera readers, so they
are right after a restart too. Each app has its own registry, so several apps in
one process (tests) do not collide.

Metric names: ``anjian_events``, ``anjian_ingested_revisions_total``,
``anjian_ingest_backlog``, ``anjian_ingest_batch_size``,
``anjian_transitions_total``, ``anjian_escalations_total``,
``anjian_webhook_deliveries_total``, ``anjian_webhook_delivery_latency_seconds``,
``anjian_webhook_failed_attempts_total``, ``anjian_webhook_failure_log_suppressed_total``,
``anjian_webhook_outbox``, ``anjian_camera_fps``, ``anjian_camera_up``,
``anjian_camera_state``, ``anjian_storage_free_bytes``, ``anjian_storage_size_bytes``,
``anjian_evidence_bytes``, ``anjian_evidence_deleted_total``, ``anjian_evidence_write_failures_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from anjian.cameras.health import CameraHealth, CameraState
from anjian.service.records import DeliveryStatus

if TYPE_CHECKING:
    from anjian.service.storage_space import StorageSpace
    from anjian.service.store import EventStore

__all__ = ["CONTENT_TYPE", "ServiceMetrics"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)


class _StateCollector(Collector):
    """Gauges read at scrape time: stored events, outbox depth, camera fps and state."""

    def __init__(self, store: EventStore, camera_health: Callable[[], Sequence[CameraHealth]] | None) -> None:
        self._store = store
        self._camera_health = camera_health

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges; a database that does not answer leaves its gauges out."""
        try:
            counts = self._store.count_events()
            depth = {status: self._store.outbox.count(status) for status in DeliveryStatus}
        except SQLAlchemyError:
            logger.exception("metrics: the database does not answer")
        else:
            events = GaugeMetricFamily(
                "anjian_events",
                "Stored events by behaviour, colour and state.",
                labels=["behaviour", "severity", "state"],
            )
            for (behaviour, severity, state), count in sorted(counts.items()):
                events.add_metric([behaviour, severity, state], count)
            yield events
            outbox = GaugeMetricFamily(
                "anjian_webhook_outbox",
                "Webhook deliveries by status (failed: dead letters).",
                labels=["status"],
            )
            for status, count in depth.items():
                outbox.add_metric([status.value], count)
            yield outbox
        if self._camera_health is None:
            return
        fps = GaugeMetricFamily(
            "anjian_camera_fps", "Frames per second handed to the pipeline.", labels=["camera_id"]
        )
        up = GaugeMetricFamily(
            "anjian_camera_up", "1 when the camera is online, else 0.", labels=["camera_id"]
        )
        states = GaugeMetricFamily(
            "anjian_camera_state",
            "1 for the camera's current connection state.",
            labels=["camera_id", "state"],
        )
        for health in self._camera_health():
            fps.add_metric([health.camera_id], health.fps)
            up.add_metric([health.camera_id], 1.0 if health.state is CameraState.ONLINE else 0.0)
            for candidate in CameraState:
                states.add_metric(
                    [health.camera_id, candidate.value], 1.0 if candidate is health.state else 0.0
                )
        yield fps
        yield up
        yield states


class _StorageCollector(Collector):
    """Gauges of the storage folder's file system, read at scrape time (left out when it cannot be read)."""

    def __init__(self, space: StorageSpace) -> None:
        self._space = space

    def collect(self) -> Iterator[Metric]:
        """Yield the free and total bytes of the file system holding ``storage.dir``."""
        reading = self._space.read()
        if reading.free_bytes is None or reading.total_bytes is None:
            return
        yield GaugeMetricFamily(
            "anjian_storage_free_bytes",
            "Bytes free on the file system of storage.dir (database and evidence); below "
            "storage.min_free_mb /readyz answers 503.",
            value=reading.free_bytes,
        )
        yield GaugeMetricFamily(
            "anjian_storage_size_bytes", "Size of the file system of storage.dir.", value=reading.total_bytes
        )


class ServiceMetrics:
    """The service's Prometheus registry and the counters the service's parts update.

    Args:
        store: Read at scrape time for the state gauges.
        camera_health: Reports camera health, when this process reads cameras.
        storage_space: The storage folder's free space, read at scrape time; ``/readyz`` checks
            the same object (``storage_space``), so its threshold is logged once, by whichever asks first.
    """

    def __init__(
        self,
        store: EventStore,
        camera_health: Callable[[], Sequence[CameraHealth]] | None = None,
        *,
        storage_space: StorageSpace | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.storage_space = storage_space
        self.ingested = Counter(
            "anjian_ingested_revisions",
            "Event revisions received, by behaviour, colour and result (applied or duplicate).",
            ["behaviour", "severity", "result"],
            registry=self.registry,
        )
        self.ingest_backlog = Gauge(
            "anjian_ingest_backlog",
            "Event revisions queued for the event writer (published by the pipeline or ingested over HTTP).",
            registry=self.registry,
        )
        self.ingest_batch_size = Histogram(
            "anjian_ingest_batch_size",
            "Event revisions stored per transaction by the event writer.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.transitions = Counter(
            "anjian_transitions", "Lifecycle actions taken, by action.", ["action"], registry=self.registry
        )
        self.escalations = Counter(
            "anjian_escalations", "Alerts escalated for want of acknowledgement.", registry=self.registry
        )
        self.deliveries = Counter(
            "anjian_webhook_deliveries",
            "Webhook, robot and e-mail delivery attempts by result: delivered, retry (failed, will retry), "
            "dead_letter (gave up), deferred (held back without an attempt: a robot at its rate or in a "
            "vendor's rate-limit wait, or a receiver that gave no answer to another delivery).",
            ["result"],
            registry=self.registry,
        )
        self.webhook_failures = Counter(
            "anjian_webhook_failed_attempts",
            "Failed webhook attempts (transport error or non-2xx, retried or given up), by subscription id.",
            ["subscription_id"],
            registry=self.registry,
        )
        self.webhook_log_suppressed = Counter(
            "anjian_webhook_failure_log_suppressed",
            "Failed webhook attempts not logged because their webhook was logged less than a minute before.",
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "anjian_webhook_delivery_latency_seconds",
            "Seconds from enqueueing an announcement to its successful delivery.",
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.evidence_bytes = Gauge(
            "anjian_evidence_bytes",
            "Bytes of snapshots and clips under storage.dir, as of the last evidence retention pass (hourly).",
            registry=self.registry,
        )
        self.evidence_deleted = Counter(
            "anjian_evidence_deleted",
            "Settled alerts whose snapshot and clip were deleted, by reason: age (storage.keep_evidence_days), "
            "size (storage.max_evidence_gb) or space (free space below storage.reclaim_below_mb).",
            ["reason"],
            registry=self.registry,
        )
        self.evidence_write_failures = Counter(
            "anjian_evidence_write_failures",
            "Event revisions stored without the snapshot or clip they brought (it could not be written: disk "
            "full, permissions), by kind (snapshot or clip).",
            ["kind"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(store, camera_health))
        if storage_space is not None:
            self.registry.register(_StorageCollector(storage_space))

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
