"""A plant's side of the bus: its outbox announcements and camera and sensor health out, supervisors' remarks in.

Out. Every change of an event already enqueues one outbox row per subscription in the
change's own transaction (``anjian.service.outbox``). A plant with a ``bus:`` section has
one more subscription, ``bus:hub``, so each event revision and lifecycle change gets a
row; the webhook dispatcher claims it like any other and hands it to ``PlantBus.send``,
which publishes it to the plant's own JetStream (``PLANT_<id>_EVENTS``, on the plant's
disk) with ``Nats-Msg-Id: <plant>:<outbox idempotency key>:<digest of its payload>``.
JetStream drops a re-publish of the same id (a retry after a lost ack). The digest keeps
a different change that got the same key apart: a plant database restored from a backup
hands out its audit ids again, and its new changes were dropped as the old ones' retries.
The dispatcher's retries and dead letters cover a plant's nats-server that is down. The
link to the hub is not on this path at all: the hub's stream sources the plant's when the
link is up.

A detection revision carries its snapshot (base64, inside the JSON) when the whole message
fits the server's ``max_payload`` (what the server announced when the client connected);
otherwise it goes without it (logged, counted in ``PlantBusStats.snapshots_left_out``): an
event that never reaches the hub is worse than one without its picture, which stays on the
plant. The message carries no mark of it (a hub that does not know a new field would refuse
the event): the hub shows the event without a snapshot.

In. A consumer on the plant's commands stream (sourced from the hub's) writes each
supervisor's remark into the incident's audit trail (``anjian.service.bus.remarks``),
publishes a ``RemarkReceipt`` (the hub shows the remark delivered), then acks it; a receipt
that cannot be published yet brings the remark again (it is written once). Fields of a
remark this plant does not know (a hub upgraded first) are left out and logged once. A core
subscription answers the hub's requests for clips, which stay on the plant until asked for
(``anjian.service.bus.clips``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from anjian.cameras.url import mask_credentials, mask_url
from anjian.pipeline.counters import Counters
from anjian.service.bus import subjects
from anjian.service.bus.address import BUS_ADDRESS
from anjian.service.bus.clips import ClipResponder
from anjian.service.bus.config import BusConfig
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.consuming import run_pull_consumer
from anjian.service.bus.errors import BusUnavailableError
from anjian.service.bus.messages import (
    CameraReport,
    EventChange,
    HealthReport,
    RemarkReceipt,
    SensorReport,
    parse_hub_remark,
)
from anjian.service.bus.remarks import record_remark
from anjian.service.bus.signing import SIGNATURE_HEADER, is_signed_by, signature
from anjian.service.bus.streams import ensure_plant_streams
from anjian.service.channels.outcome import SendOutcome
from anjian.service.copying import copy_fields
from anjian.service.errors import EvidenceError
from anjian.service.evidence import EvidenceStore
from anjian.service.periodic import PeriodicThread
from anjian.service.schemas import WebhookPayload
from anjian.service.store import EventStore
from anjian.service.subscriptions import SubscriptionSpec

if TYPE_CHECKING:
    from anjian.pipeline.sensors.health import SensorHealth
    from anjian.service.api.deps import CameraHealthProvider
    from anjian.service.records import Subscription, WebhookDelivery

__all__ = ["PlantBus", "PlantBusStats"]

logger = logging.getLogger(__name__)

_STORED: Final = 200  # the status an outbox row records for a message the plant's JetStream stored
_DETECTION_KINDS: Final = frozenset({"event.created", "event.updated", "event.ended"})
_FETCH_BATCH: Final = 64
_RETRY_S: Final = 1.0
_HOLD_BACK_S: Final = 2.0
_CLIP_QUEUE: Final = "anjian-plant-clips"
_HEADROOM: Final = 16 * 1024  # below max_payload: room for the headers (message id, signature)
_DIGEST_HEX: Final = 16  # hex digits of a payload's SHA-256 in its message id
_MOST_UNKNOWN_FIELDS: Final = 50  # unknown fields of the hub's remarks logged (once each) at most


@dataclass(frozen=True, slots=True)
class PlantBusStats:
    """Counters since start: event announcements published without their snapshot (over the server's max_payload)."""

    snapshots_left_out: int = 0


class PlantBus:
    """Publishes a plant's outbox deliveries and camera and sensor health to its JetStream; records the hub's remarks.

    Args:
        config: The ``bus:`` section.
        site_id: The site's id (the plant id unless ``config.plant_id`` is set).
        store: The plant's event store (remarks go into its audit trails).
        evidence: Where the snapshots sent with detection revisions are read.
        camera_health: The cameras' health, reported every ``config.health_interval_s``; ``None``: none.
        camera_names: Each camera's name in the site config, reported with its health (the hub shows
            the names the control room knows, not ids).
        sensor_health: The sensors' health (``SensorRunner.health``), reported with the cameras';
            ``None``: none (``report_sensors`` may name it later).
        clock: Epoch seconds.

    Raises:
        ValueError: The plant id cannot be used on the bus (it holds a dot).
    """

    def __init__(
        self,
        config: BusConfig,
        *,
        site_id: str,
        store: EventStore,
        evidence: EvidenceStore,
        camera_health: CameraHealthProvider | None = None,
        camera_names: Mapping[str, str] | None = None,
        sensor_health: Callable[[], list[SensorHealth]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plant_id = subjects.check_bus_id(
            "plant id (bus.plant_id, or the site id)", config.plant_id or site_id
        )
        self._config = config
        self._store = store
        self._evidence = evidence
        self._camera_health = camera_health
        self._camera_names = dict(camera_names or {})
        self._sensor_health = sensor_health
        self._clock = clock
        self.connection = BusConnection(config.url, name=f"anjian-plant-{self.plant_id}")
        self._counters = Counters(PlantBusStats())
        self._is_ready = False  # the streams were ensured (only the loop thread reads and writes it)
        self._health: PeriodicThread | None = None
        self._unknown_fields: set[str] = set()  # fields of the hub's remarks logged as unknown

    def stats(self) -> PlantBusStats:
        """The counters as they are now."""
        return self._counters.snapshot()

    def report_sensors(self, sensor_health: Callable[[], list[SensorHealth]]) -> None:
        """Report the sensors' health too (the sensor runner is built after the bus); call before ``start``."""
        self._sensor_health = sensor_health

    def subscription_spec(self) -> SubscriptionSpec:
        """The outbox subscription of the hub: every kind of every event, retried for the stream's retention."""
        return SubscriptionSpec(
            url=BUS_ADDRESS,
            description="the supervising hub, through the plant's NATS leaf node",
            timeout_s=self._config.publish_timeout_s,
            retry_for_s=self._config.retention_days * 86_400.0,
        )

    def start(self) -> None:
        """Connect (in the background), start the remark consumer and the health reports."""
        self.connection.start()
        self.connection.spawn(self._consume_remarks())
        self.connection.spawn(self._serve_clips())
        if self._camera_health is not None or self._sensor_health is not None:
            self._health = PeriodicThread(
                self.report_health,
                interval_s=self._config.health_interval_s,
                name="anjian-bus-health",
                transient=(BusUnavailableError,),
            )
            self._health.start()

    def stop(self) -> None:
        """Stop the health reports, the consumer and the connection; safe to call twice."""
        if self._health is not None:
            self._health.stop()
        self.connection.stop()

    # ---------------------------------------------------------------- out

    async def _ensure(self, js: JetStreamContext) -> None:
        """Create the plant's streams once (again after a failure: a server that lost its store)."""
        if self._is_ready:
            return
        await ensure_plant_streams(
            js, self.plant_id, hub_domain=self._config.hub_domain, retention_days=self._config.retention_days
        )
        self._is_ready = True

    def _publish(self, subject: str, data: bytes, msg_id: str) -> None:
        """Publish to the plant's JetStream (signed, with a key) and wait for it to be stored."""

        async def publish(js: JetStreamContext) -> None:
            await self._publish_on(js, subject, data, msg_id)

        self.connection.call(publish, timeout_s=self._config.publish_timeout_s + 1.0)

    async def _publish_on(self, js: JetStreamContext, subject: str, data: bytes, msg_id: str) -> None:
        """``_publish`` on the loop: publish (signed, with a key) and wait for it to be stored."""
        headers = {"Nats-Msg-Id": msg_id}
        if self._config.signing_key is not None:
            headers[SIGNATURE_HEADER] = signature(self._config.signing_key.get_secret_value(), data)
        await self._ensure(js)
        try:
            await js.publish(subject, data, timeout=self._config.publish_timeout_s, headers=headers)
        except (NotFoundError, nats.errors.NoRespondersError):
            self._is_ready = False  # the stream is gone (a wiped server): create it on the next try
            raise

    def send(self, subscription: Subscription, delivery: WebhookDelivery) -> SendOutcome:
        """Publish one claimed outbox delivery to the plant's JetStream; never raises.

        Returns:
            Status 200 once the plant's JetStream stored it; else the error (the dispatcher retries).
            While the plant's nats-server is unreachable nothing is sent: the delivery is held back
            for ``_HOLD_BACK_S`` without counting an attempt, so the backoff does not grow through an
            outage and the backlog flows within seconds of the server's return.
        """
        del subscription
        if not self.connection.is_connected:
            return SendOutcome(
                None,
                f"the plant's NATS server at {mask_url(self._config.url)} is not reachable",
                retry_after_s=_HOLD_BACK_S,
                is_attempted=False,
            )
        try:
            payload = WebhookPayload.model_validate(delivery.payload)
            change = EventChange(
                plant_id=self.plant_id,
                key=delivery.idempotency_key,
                sent_at=self._clock(),
                payload=payload,
                snapshot_jpeg=self._snapshot(payload) if delivery.kind in _DETECTION_KINDS else None,
            )
            subject = subjects.event_subject(self.plant_id)
            msg_id = f"{self.plant_id}:{delivery.idempotency_key}:{_digest(delivery.payload)}"
            try:
                self._publish(subject, self._fitting(change), msg_id)
            except nats.errors.MaxPayloadError:  # a server with a lower max_payload since it was measured
                if change.snapshot_jpeg is None:
                    raise
                self._publish(subject, self._without_snapshot(change, self.connection.max_payload()), msg_id)
        except ValidationError as exc:
            return SendOutcome(
                None, f"the stored announcement is not a valid payload: {exc.error_count()} error(s)"
            )
        except Exception as exc:  # noqa: BLE001 - every failure is an attempt the dispatcher retries
            reason = mask_credentials(str(exc), url=self._config.url)
            return SendOutcome(None, f"NATS publish failed: {type(exc).__name__}: {reason}")
        return SendOutcome(_STORED, None)

    def _fitting(self, change: EventChange) -> bytes:
        """The announcement's JSON; without its snapshot when it would not fit the server's ``max_payload``."""
        data = change.model_dump_json().encode()
        max_payload = self.connection.max_payload()
        if change.snapshot_jpeg is None or max_payload is None or len(data) <= max_payload - _HEADROOM:
            return data
        return self._without_snapshot(change, max_payload, size=len(data))

    def _without_snapshot(
        self, change: EventChange, max_payload: int | None, *, size: int | None = None
    ) -> bytes:
        """The announcement's JSON without its snapshot (logged and counted: the snapshot stays on the plant)."""
        event = change.payload.event
        logger.warning(
            "%s: snapshot of event %s (%d bytes; a %s-byte message) is over the NATS server's max_payload "
            "(%s bytes); the event goes to the hub without it",
            event.camera_id,
            event.id,
            len(change.snapshot_jpeg or b""),
            "?" if size is None else size,
            "?" if max_payload is None else max_payload,
        )
        self._counters.add(snapshots_left_out=1)
        return change.model_copy(update={"snapshot_jpeg": None}).model_dump_json().encode()

    def _snapshot(self, payload: WebhookPayload) -> bytes | None:
        """The event's snapshot, when it has one no bigger than ``max_snapshot_bytes``."""
        event = payload.event
        if event.snapshot_url is None or self._config.max_snapshot_bytes == 0:
            return None
        relpath = EvidenceStore.snapshot_relpath(event.camera_id, event.id)
        try:
            data = self._evidence.read(relpath)
        except EvidenceError as exc:
            logger.warning("%s: snapshot of event %s not sent to the hub: %s", event.camera_id, event.id, exc)
            return None
        if len(data) > self._config.max_snapshot_bytes:
            logger.warning(
                "%s: snapshot of event %s (%d bytes) is over bus.max_snapshot_bytes; not sent",
                event.camera_id,
                event.id,
                len(data),
            )
            return None
        return data

    def report_health(self) -> None:
        """Publish the cameras' and sensors' health now (the periodic thread calls it).

        Raises:
            BusUnavailableError: The plant's NATS server cannot be reached.
        """
        if self._camera_health is None and self._sensor_health is None:
            return
        now = self._clock()
        report = HealthReport(
            plant_id=self.plant_id,
            sent_at=now,
            cameras=[
                CameraReport(
                    camera_id=h.camera_id,
                    name=self._camera_names.get(h.camera_id),
                    state=h.state,
                    since=h.since,
                    fps=h.fps,
                    reconnects=h.reconnects,
                    last_error=None if h.last_error is None else h.last_error[:1000],
                    last_frame_at=h.last_frame_at,
                )
                for h in (self._camera_health() if self._camera_health is not None else [])
            ],
            sensors=[
                copy_fields(SensorReport, h, open_kinds=list(h.open_kinds))
                for h in (self._sensor_health() if self._sensor_health is not None else [])
            ],
        )
        # A camera without a name goes without the field: a hub older than it refuses unknown fields, and
        # dropped every health report of an upgraded plant (its cameras all went stale there).
        unnamed = {i: {"name"} for i, camera in enumerate(report.cameras) if camera.name is None}
        self._publish(
            subjects.health_subject(self.plant_id),
            report.model_dump_json(exclude={"cameras": unnamed} if unnamed else None).encode(),
            f"{self.plant_id}:h{now!r}",
        )

    # ----------------------------------------------------------------- in

    async def _serve_clips(self) -> None:
        """Answer the hub's clip requests: subscribe once connected (the client renews it after reconnects)."""
        key = self._config.signing_key
        responder = ClipResponder(
            self.plant_id,
            self._store,
            self._evidence,
            signing_key=None if key is None else key.get_secret_value(),
            client=self.connection.client,
        )
        while True:
            try:
                if not self.connection.is_connected:
                    await asyncio.sleep(_RETRY_S / 2)
                    continue
                await self.connection.client().subscribe(
                    subjects.clip_subject(self.plant_id), queue=_CLIP_QUEUE, cb=responder.handle
                )
                logger.info("plant %s: answering clip requests", self.plant_id)
                return
            except Exception as exc:  # noqa: BLE001 - a connection lost meanwhile: try again
                logger.warning("plant %s: cannot answer clip requests yet: %s", self.plant_id, exc)
                await asyncio.sleep(_RETRY_S)

    async def _consume_remarks(self) -> None:
        """Record every remark of the plant's commands stream; reconnect and resume after any fault."""

        async def handle(messages: list[Msg]) -> None:
            for message in messages:
                await self._apply_remark(message)

        def forget() -> None:
            self._is_ready = False

        await run_pull_consumer(
            self.connection,
            stream=subjects.plant_commands_stream(self.plant_id),
            durable=subjects.PLANT_COMMANDS_CONSUMER,
            batch=_FETCH_BATCH,
            ack_wait_s=30.0,
            setup=self._ensure,
            handle=handle,
            on_fault=forget,
            name=f"plant {self.plant_id}: remark consumer",
        )

    async def _apply_remark(self, message: Msg) -> None:
        """Write one remark into the audit trail, tell the hub, and ack it; a malformed one is dropped (term).

        The receipt says ``recorded`` (also for a remark there already: it came again) or
        ``no_such_event``; one that cannot be published yet brings the remark again.
        """
        try:
            remark, unknown = parse_hub_remark(message.data)
        except ValidationError as exc:
            logger.error("plant %s: dropping a malformed remark: %s", self.plant_id, exc)
            await message.term()
            return
        key = self._config.signing_key
        if key is not None and not is_signed_by(key.get_secret_value(), message.data, message.headers):
            logger.error(
                "plant %s: dropping remark %s: not signed with this plant's key", self.plant_id, remark.id
            )
            await message.term()
            return
        if remark.plant_id != self.plant_id:
            logger.error("plant %s: dropping a remark addressed to %s", self.plant_id, remark.plant_id)
            await message.term()
            return
        self._log_unknown_fields(unknown)
        loop = asyncio.get_running_loop()
        outcome: Literal["recorded", "no_such_event"] = "recorded"
        try:
            await loop.run_in_executor(None, lambda: record_remark(self._store, remark, now=self._clock()))
        except KeyError:
            logger.error("plant %s: remark on unknown event %s dropped", self.plant_id, remark.event_id)
            outcome = "no_such_event"
        except Exception as exc:  # noqa: BLE001 - a busy database: the remark comes again
            logger.warning("plant %s: cannot record remark %s yet: %s", self.plant_id, remark.id, exc)
            await message.nak(delay=_RETRY_S)
            return
        receipt = RemarkReceipt(
            plant_id=self.plant_id,
            event_id=remark.event_id,
            remark_id=remark.id,
            outcome=outcome,
            sent_at=self._clock(),
        )
        try:
            await self._publish_on(
                self.connection.jetstream(),
                subjects.receipt_subject(self.plant_id),
                receipt.model_dump_json().encode(),
                f"{self.plant_id}:receipt:{remark.id}",
            )
        except Exception as exc:  # noqa: BLE001 - the plant's JetStream is in trouble: the remark comes again
            logger.warning(
                "plant %s: cannot confirm remark %s to the hub yet: %s: %s",
                self.plant_id,
                remark.id,
                type(exc).__name__,
                exc,
            )
            await message.nak(delay=_RETRY_S)
            return
        await message.ack()

    def _log_unknown_fields(self, unknown: tuple[str, ...]) -> None:
        """Log the fields of a remark this plant does not know, once each (a hub upgraded before it)."""
        room = max(0, _MOST_UNKNOWN_FIELDS - len(self._unknown_fields))
        new = [name for name in unknown if name not in self._unknown_fields][:room]
        if new:
            self._unknown_fields.update(new)
            logger.warning(
                "plant %s: the hub sends remark field(s) this plant does not know (%s): recorded without them; "
                "upgrade the plant to keep them",
                self.plant_id,
                ", ".join(new),
            )


def _digest(payload: Mapping[str, Any]) -> str:
    """The first hex digits of the SHA-256 of a stored payload's JSON (keys sorted): the same for every retry."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST_HEX]
