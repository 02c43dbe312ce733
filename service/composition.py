"""The alert service's composition root: every part built once from the site config, started and closed as one.

The recipe, in order (``build_service_parts``):

1. the event store (opened, migrated when ``storage.is_auto_migrate``), the site's
   webhooks synchronised into its subscriptions table;
2. the evidence folder (snapshots and clips under ``storage.dir``), the watch on its file
   system's free space (``StorageSpace``) and the evidence retention (``EvidenceRetention``);
3. the plant's camera health (``CameraHealthBoard``: this process's cameras and those pipeline
   nodes elsewhere report) and the Prometheus metrics, reading the store and that health;
4. the webhook dispatcher, delivering the store's outbox (webhooks, robots and e-mail, and with a
   ``bus:`` section the supervising hub, through the plant's NATS leaf node: ``PlantBus``);
5. the SLA escalator, raising the colour of alerts left unworked;
6. the event writer (``StoreSink``) that ingest and the in-process pipeline store through;
7. the sensors' reading history (``ReadingStore``) and, when the site has sensors, their
   runner (``anjian.service.sensors``), publishing to the same event writer.

``ServiceParts.start()`` starts the workers (dispatcher, escalator, writer, evidence retention);
``close()`` stops them in reverse order, so the writer stores what is queued while the
dispatcher and the store are still there, and closes the store last.

Who holds the parts starts and closes them: ``create_app(config)`` builds its own and
its lifespan does; ``build_runtime`` (``anjian serve`` / ``anjian run``) builds them,
hands them to ``create_app`` and starts and closes them around the camera pipeline.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anjian.service.bus.plant import PlantBus
from anjian.service.camera_board import CameraHealthBoard
from anjian.service.channels import AlertChannels
from anjian.service.escalation import Escalator
from anjian.service.evidence import EvidenceStore
from anjian.service.evidence_retention import EvidenceRetention
from anjian.service.metrics import ServiceMetrics
from anjian.service.readings import ReadingStore
from anjian.service.sensors import SensorCollector, build_sensor_runner
from anjian.service.sink import StoreSink
from anjian.service.storage_space import DiskUsage, StorageSpace
from anjian.service.store import EventStore
from anjian.service.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from anjian.pipeline.live import LiveView
    from anjian.pipeline.sensors.runner import SensorRunner
    from anjian.service.api.deps import CameraHealthProvider
    from anjian.service.config import AnjianConfig

__all__ = ["DispatcherFactory", "ServiceParts", "build_service_parts"]

DispatcherFactory = Callable[[EventStore, ServiceMetrics], WebhookDispatcher]
"""Builds the webhook dispatcher over the store and metrics (tests tune its backoff and workers)."""


@dataclass(frozen=True)
class ServiceParts:
    """The parts of one alert service, sharing one store.

    Attributes:
        store: The event store (events, audit trails, outbox, tokens, subscriptions).
        evidence: The evidence folder under ``storage.dir``.
        metrics: The Prometheus registry and the counters the parts update.
        dispatcher: The webhook worker delivering the outbox.
        escalator: The SLA escalation worker.
        sink: The event writer that ingest and the in-process pipeline store through.
        camera_health: The health of every camera of the plant: those this process reads
            and those pipelines elsewhere report (``POST /ingest/health``).
        live_view: The latest analysed frame of each camera this process reads (``None``
            when it reads none): the control room's live view.
        channels: The group robots and e-mail of the site's ``channels:``, delivered by the
            dispatcher through the same outbox as webhooks.
        bus: The plant's side of the bus to the supervising hub (``bus:``), ``None`` without one:
            the dispatcher publishes the ``bus:hub`` deliveries through it.
        readings: The sensors' reading history.
        sensors: The sensor runner, ``None`` when the site has no sensors.
        retention: Deletes the evidence of settled alerts when the disk runs low
            (``storage.reclaim_below_mb``), by ``keep_evidence_days`` and ``max_evidence_gb`` when
            set, and the leftovers of interrupted evidence writes (hourly).
    """

    store: EventStore
    evidence: EvidenceStore
    metrics: ServiceMetrics
    dispatcher: WebhookDispatcher
    escalator: Escalator
    sink: StoreSink
    camera_health: CameraHealthBoard
    live_view: LiveView | None = None
    channels: AlertChannels | None = None
    bus: PlantBus | None = None
    readings: ReadingStore | None = None
    sensors: SensorRunner | None = None
    retention: EvidenceRetention | None = None

    def start(self) -> None:
        """Start the bus (when configured), the dispatcher, the escalator, the event writer and the evidence retention.

        Raises:
            RuntimeError: The parts were started or closed before (they start once).
        """
        if self.bus is not None:
            self.bus.start()
        self.dispatcher.start()
        self.escalator.start()
        self.sink.start()
        if self.retention is not None:
            self.retention.start()
        if self.readings is not None:
            self.readings.start()
        if self.sensors is not None:
            self.sensors.start()

    def close(self) -> None:
        """Stop the workers in reverse start order (the writer first stores what is queued), then close the store.

        Safe to call twice, and on parts never started.
        """
        if self.sensors is not None:
            self.sensors.stop()  # their open incidents end, through the writer
        if self.readings is not None:
            self.readings.stop()
        if self.retention is not None:
            self.retention.stop()
        self.sink.stop()
        self.escalator.stop()
        self.dispatcher.stop()
        if self.bus is not None:
            self.bus.stop()
        if self.channels is not None:
            self.channels.close()
        self.store.close()


def _dispatcher(
    clock: Callable[[], float], channels: AlertChannels, bus: PlantBus | None, keep_settled_s: float
) -> DispatcherFactory:
    """The default dispatcher factory: the site's webhook worker on ``clock``, robots, e-mail and bus included."""
    return lambda store, metrics: WebhookDispatcher(
        store, clock=clock, metrics=metrics, channels=channels, bus=bus, keep_settled_s=keep_settled_s
    )


def build_service_parts(
    config: AnjianConfig,
    *,
    camera_health: CameraHealthProvider | None = None,
    camera_node: str | None = None,
    live_view: LiveView | None = None,
    clock: Callable[[], float] = time.time,
    make_dispatcher: DispatcherFactory | None = None,
    disk_usage: DiskUsage = shutil.disk_usage,
) -> ServiceParts:
    """Build the alert service's parts from the site config, once, in start-up order (not started).

    Args:
        config: The validated site config.
        camera_health: Reports the health of the cameras this process reads (``anjian
            run``); ``None`` for a service that reads none. Pipelines elsewhere add theirs.
        camera_node: This process's node name (``anjian run --node NAME``), shown with its cameras.
        live_view: The runner's live view (``anjian run``); ``None`` for a service that reads no cameras.
        clock: Time source of the store, the dispatcher and the camera reports' age, epoch seconds.
        make_dispatcher: Builds the webhook dispatcher; default the site's, on ``clock``.
        disk_usage: Reads the storage folder's file system ``(total, used, free)`` for ``/readyz``
            and ``/metrics`` (``shutil.disk_usage``; tests inject a full disk).

    Returns:
        The parts; the caller starts them (``start()``) and closes them (``close()``).

    Raises:
        DatabaseError: The database cannot be opened, or its schema is behind and
            ``storage.is_auto_migrate`` is off.

    Example:
        >>> parts = build_service_parts(load_config("site.yaml"))
        >>> app = create_app(config, parts)
        >>> parts.start()  # ... serve ...; parts.close()
    """
    store = EventStore.from_config(config.storage, clock=clock)
    board = CameraHealthBoard(
        camera_health,
        local_node=camera_node,
        camera_order=[camera.id for _, camera in config.cameras()],
        clock=clock,
    )
    channels: AlertChannels | None = None
    try:
        channels = AlertChannels.from_config(config, clock=clock)
        evidence = EvidenceStore(config.storage.dir)
        bus = (
            None
            if config.bus is None
            else PlantBus(
                config.bus,
                site_id=config.site.id,
                store=store,
                evidence=evidence,
                camera_health=board,
                camera_names={camera.id: camera.name for _, camera in config.cameras() if camera.name},
                clock=clock,
            )
        )
        specs = channels.subscription_specs() + ([] if bus is None else [bus.subscription_spec()])
        store.subscriptions.sync_config(config.webhooks, channels=specs)
        space = StorageSpace(
            config.storage.dir, min_free_bytes=config.storage.min_free_mb * 1024 * 1024, disk_usage=disk_usage
        )
        metrics = ServiceMetrics(store, board, storage_space=space)
        dispatcher = (
            make_dispatcher or _dispatcher(clock, channels, bus, config.storage.keep_deliveries_days * 86_400)
        )(store, metrics)
    except BaseException:
        if channels is not None:
            channels.close()
        store.close()
        raise
    escalator = Escalator(store, config.sla, metrics=metrics)
    sink = StoreSink(store, evidence, metrics=metrics)
    max_evidence_gb = config.storage.max_evidence_gb
    keep_evidence_days = config.storage.keep_evidence_days
    reclaim_below_mb = config.storage.reclaim_below_mb
    retention = EvidenceRetention(
        store.database,
        evidence,
        keep_s=None if keep_evidence_days is None else keep_evidence_days * 86_400,
        max_bytes=None if max_evidence_gb is None else int(max_evidence_gb * 1024**3),
        reclaim_below_bytes=(2 * config.storage.min_free_mb if reclaim_below_mb is None else reclaim_below_mb)
        * 1024
        * 1024,
        clock=clock,
        metrics=metrics,
        space=space,
    )
    readings = ReadingStore(store.database, config.sensor_history, clock=clock)
    sensors = build_sensor_runner(config, sink, readings, live_view=live_view, clock=clock)
    if sensors is not None:
        metrics.registry.register(SensorCollector(sensors))
        if bus is not None:
            bus.report_sensors(sensors.health)
    return ServiceParts(
        store,
        evidence,
        metrics,
        dispatcher,
        escalator,
        sink,
        board,
        live_view,
        channels,
        bus,
        readings,
        sensors,
        retention,
    )
