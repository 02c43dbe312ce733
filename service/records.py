"""Immutable records the stores hand out: copies of database rows, safe to use outside a session.

Times are epoch seconds, as in ``anjian.pipeline.event.Event``; ``anjian.service.schemas`` turns
them into the ISO strings of the API. The mapping between an event and its row lives here,
both ways: ``apply_event`` writes a pipeline revision onto a row, ``event_from_row`` reads a
row back as a ``StoredEvent``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from anjian.pipeline.event import Behaviour, Event, EventBox, IncidentFacts, RiskLevel, SensorFacts
from anjian.service.copying import copy_fields
from anjian.service.lifecycle import AlertState
from anjian.service.tables import AuditRow, DeliveryRow, EventRow, SubscriptionRow

__all__ = [
    "AuditEntry",
    "DeliveryStatus",
    "StoredEvent",
    "Subscription",
    "WebhookDelivery",
    "apply_event",
    "audit_from_row",
    "delivery_from_row",
    "event_from_row",
    "subscription_from_row",
]


class DeliveryStatus(StrEnum):
    """Where one webhook delivery stands; ``failed`` ones are the dead letters."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class StoredEvent(IncidentFacts):
    """An event as stored: the pipeline's fields plus the alert's lifecycle.

    What is stored, on purpose: every field of the pipeline's ``Event`` (its highest
    revision), ``track_id`` included (so a control room can tell two incidents about
    the same person from two people, and an integrator can follow one person's
    incidents on a camera while the tracker keeps them), except the evidence bytes:
    the snapshot and clip are files in the data folder, and the row keeps their
    paths. The tracker restarts its ids with the pipeline, so a ``track_id`` only
    means something together with the camera and the incident's times. A sensor
    event's reading (``sensor``: value, peak, threshold, unit ...) is kept as one
    JSON document: it is shown and sent whole, never filtered on alone. It begins
    with the ``IncidentFacts`` the pipeline's ``Event`` begins with.

    Attributes:
        severity: Current colour: the detected one, raised by each escalation.
        detected_severity: The colour the pipeline gave it.
        state: Alert lifecycle state.
        track_id: Tracker id of the person or object the incident is about, or ``None``.
        snapshot_path: Snapshot file relative to the data folder, or ``None``.
        clip_path: Clip (MP4) relative to the data folder, or ``None``.
        assignee: Who was dispatched, once dispatched.
        escalations: How many times the alert was escalated.
        escalated_at: When it was last escalated.
        acknowledged_at: When it was acknowledged.
        state_changed_at: When it entered ``state``.
        version: Bumped at every change (revision, action, escalation): the live feed's cursor.
        created_at: When the service first stored the incident.
        updated_at: When the service last changed it.
        sensor: The reading behind a sensor event, ``None`` for a camera's.
    """

    detected_severity: RiskLevel
    state: AlertState
    ended_at: float | None
    zone_id: str | None
    model_version: str
    message: str
    boxes: tuple[EventBox, ...]
    track_id: int | None
    snapshot_path: str | None
    clip_path: str | None
    assignee: str | None
    escalations: int
    escalated_at: float | None
    acknowledged_at: float | None
    state_changed_at: float
    version: int
    created_at: float
    updated_at: float
    sensor: SensorFacts | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of an alert's audit trail.

    Attributes:
        id: Row id, increasing in time.
        event_id: The alert.
        at: When, epoch seconds.
        actor: Who: an API token's name, ``"pipeline"`` or ``"system"`` (escalation).
        action: ``raise``, ``escalate`` or an ``Action`` value.
        from_state: State before (``None`` when raised).
        to_state: State after.
        severity: The alert's colour after the action.
        assignee: Who was dispatched (``dispatch`` only).
        note: Work-order note, disposal note, false-alarm reason, or empty.
    """

    id: int
    event_id: str
    at: float
    actor: str
    action: str
    from_state: AlertState | None
    to_state: AlertState
    severity: RiskLevel
    assignee: str | None
    note: str


@dataclass(frozen=True, slots=True)
class Subscription:
    """A webhook endpoint and its filters; empty filter lists match everything.

    Attributes:
        source: ``"config"`` (from the site YAML) or ``"api"``.
        secret: HMAC secret, or ``None`` for unsigned deliveries (never shown by the API).
        retry_for_s: How long a delivery is retried before it becomes a dead letter.
        max_attempts: Optional cap on attempts.
    """

    id: int
    source: str
    url: str
    secret: str | None = field(repr=False)
    description: str
    timeout_s: float
    retry_for_s: float
    max_attempts: int | None
    kinds: tuple[str, ...]
    site_ids: tuple[str, ...]
    camera_ids: tuple[str, ...]
    behaviours: tuple[str, ...]
    is_active: bool
    created_at: float

    def matches(self, kind: str, event: StoredEvent) -> bool:
        """Whether this subscription wants ``kind`` announced for ``event``."""
        return (
            self.is_active
            and (not self.kinds or kind in self.kinds)
            and (not self.site_ids or event.site_id in self.site_ids)
            and (not self.camera_ids or event.camera_id in self.camera_ids)
            and (not self.behaviours or event.behaviour.value in self.behaviours)
        )


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One row of the webhook outbox.

    Attributes:
        idempotency_key: The same for every attempt of this delivery (sent as a header).
        subscription_id: Where it goes.
        kind: ``event.created``, ``event.acknowledged`` …
        status: pending, delivered or failed (a dead letter).
        attempts: POSTs made so far.
        next_attempt_at: When it is due (a pending row), else ``None``.
        retry_until: Last moment an attempt may be scheduled; later it is a dead letter.
        payload: The JSON body, fixed when the row was enqueued (``WebhookPayload``).
    """

    id: int
    idempotency_key: str
    subscription_id: int
    event_id: str
    revision: int
    kind: str
    url: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    last_status_code: int | None
    next_attempt_at: float | None
    retry_until: float
    delivered_at: float | None
    payload: dict[str, Any]
    created_at: float


def apply_event(row: EventRow, event: Event) -> None:
    """Copy the pipeline's fields of a revision onto its row (an escalated colour is kept if higher).

    The lifecycle columns, the evidence paths and the bookkeeping (``version``,
    ``updated_at``) are the store's to set.
    """
    row.revision = event.revision
    row.site_id = event.site_id
    row.workshop_id = event.workshop_id
    row.camera_id = event.camera_id
    row.behaviour = Behaviour(event.behaviour).value
    detected = RiskLevel(event.severity)
    row.detected_severity = detected.value
    current = RiskLevel(row.severity) if row.severity else detected
    row.severity = (current if row.escalations and current.rank > detected.rank else detected).value
    row.started_at = event.started_at
    row.last_seen_at = event.last_seen_at
    row.ended_at = event.ended_at
    row.confidence = event.confidence
    row.zone_id = event.zone_id
    row.model_version = event.model_version
    row.message = event.message
    row.boxes = [_box_to_json(box) for box in event.boxes]
    row.track_id = event.track_id
    row.sensor = None if event.sensor is None else _sensor_to_json(event.sensor)


def event_from_row(row: EventRow) -> StoredEvent:
    """Copy an event row into an immutable record."""
    return copy_fields(
        StoredEvent,
        row,
        behaviour=Behaviour(row.behaviour),
        severity=RiskLevel(row.severity),
        detected_severity=RiskLevel(row.detected_severity),
        state=AlertState(row.state),
        boxes=tuple(_box_from_json(box) for box in row.boxes),
        sensor=None if row.sensor is None else _sensor_from_json(row.sensor),
    )


def _sensor_to_json(facts: SensorFacts) -> dict[str, Any]:
    """A sensor event's reading as the ``sensor`` JSON column keeps it."""
    return {**asdict(facts), "camera_ids": list(facts.camera_ids)}


def _sensor_from_json(data: dict[str, Any]) -> SensorFacts:
    """A sensor event's reading of the ``sensor`` JSON column."""
    return SensorFacts(**{**data, "camera_ids": tuple(data.get("camera_ids", ()))})


def _box_to_json(box: EventBox) -> dict[str, Any]:
    """A box as the ``boxes`` JSON column keeps it."""
    return {"class_name": box.class_name, "confidence": box.confidence, "xyxy_norm": list(box.xyxy_norm)}


def _box_from_json(data: dict[str, Any]) -> EventBox:
    """A box of the ``boxes`` JSON column."""
    x1, y1, x2, y2 = (float(v) for v in data["xyxy_norm"])
    return EventBox(
        class_name=str(data["class_name"]), confidence=float(data["confidence"]), xyxy_norm=(x1, y1, x2, y2)
    )


def audit_from_row(row: AuditRow) -> AuditEntry:
    """Copy an audit row into an immutable record."""
    return copy_fields(
        AuditEntry,
        row,
        from_state=None if row.from_state is None else AlertState(row.from_state),
        to_state=AlertState(row.to_state),
        severity=RiskLevel(row.severity),
    )


def subscription_from_row(row: SubscriptionRow) -> Subscription:
    """Copy a subscription row into an immutable record."""
    return copy_fields(
        Subscription,
        row,
        kinds=tuple(row.kinds),
        site_ids=tuple(row.site_ids),
        camera_ids=tuple(row.camera_ids),
        behaviours=tuple(row.behaviours),
    )


def delivery_from_row(row: DeliveryRow) -> WebhookDelivery:
    """Copy a delivery row into an immutable record."""
    return copy_fields(WebhookDelivery, row, status=DeliveryStatus(row.status), payload=dict(row.payload))
