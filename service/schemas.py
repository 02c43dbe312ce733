"""JSON shapes the service shows the outside world: API responses and the webhook payload.

Times are ISO-8601 strings in UTC (``"2025-01-31T08:15:02.250000Z"``) everywhere, in
the API and in webhooks alike; the pipeline's epoch seconds are converted here and
nowhere else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from anjian.cameras.health import CameraState
from anjian.pipeline.event import RiskLevel
from anjian.pipeline.event_wire import (
    BehaviourKind,
    BoxClassName,
    BoxConfidence,
    CameraId,
    Confidence,
    DetectedSeverity,
    IncidentId,
    Message,
    ModelVersion,
    Revision,
    SensorFactsWire,
    SensorReading,
    SiteId,
    TrackId,
    WorkshopId,
    XyxyNorm,
    ZoneId,
)
from anjian.service.copying import copy_fields
from anjian.service.lifecycle import Action, AlertState, allowed_actions

if TYPE_CHECKING:
    from anjian.service.records import AuditEntry, StoredEvent

__all__ = [
    "WEBHOOK_SCHEMA_VERSION",
    "AuditOut",
    "BoxOut",
    "CameraHealthOut",
    "EventList",
    "EventOut",
    "HealthOut",
    "UtcTime",
    "WebhookKind",
    "WebhookPayload",
    "clip_url",
    "datetime_to_epoch",
    "epoch_to_datetime",
    "snapshot_url",
]

WEBHOOK_SCHEMA_VERSION = 1
"""Bumped when the webhook payload changes incompatibly; receivers should check it."""

WebhookKind = Literal[
    "event.created",
    "event.updated",
    "event.ended",
    "event.acknowledged",
    "event.dispatched",
    "event.resolved",
    "event.false_alarm",
    "event.closed",
    "event.escalated",
]


class _SchemaModel(BaseModel):
    """Base of the response models: unknown fields are errors, instances are immutable.

    ``model_validate(record)`` builds one from a store record of the same field names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, from_attributes=True)


def epoch_to_datetime(epoch_s: float) -> datetime:
    """Convert epoch seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def datetime_to_epoch(moment: datetime) -> float:
    """Epoch seconds of a time given to the API (a query parameter); a time without a zone is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _from_epoch(value: object) -> object:
    """Epoch seconds (a record's time) as an aware UTC datetime; anything else unchanged, for pydantic."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch_to_datetime(value)
    return value


UtcTime = Annotated[datetime, BeforeValidator(_from_epoch)]
"""A time the API shows in UTC; a record's epoch seconds convert through ``epoch_to_datetime``."""


def snapshot_url(event_id: str) -> str:
    """The API path serving an event's snapshot, relative to the service root."""
    return f"/events/{event_id}/snapshot.jpg"


def clip_url(event_id: str) -> str:
    """The API path serving an event's clip (MP4, range requests), relative to the service root."""
    return f"/events/{event_id}/clip.mp4"


class BoxOut(_SchemaModel):
    """One detection supporting an event (the fields of ``anjian.pipeline.event_wire.EventBoxWire``)."""

    class_name: BoxClassName
    confidence: BoxConfidence
    xyxy_norm: XyxyNorm


class EventOut(_SchemaModel):
    """One incident as last known to the service (its highest revision).

    The pipeline's facts share their definitions with the wire form
    (``anjian.pipeline.event_wire``); times are UTC here, and the lifecycle is added.
    """

    id: IncidentId
    revision: Revision
    site_id: SiteId
    workshop_id: WorkshopId
    camera_id: CameraId
    behaviour: BehaviourKind
    severity: RiskLevel = Field(..., description="Current colour: detected, raised by escalations.")
    detected_severity: DetectedSeverity
    state: AlertState = Field(..., description="Alert lifecycle state.")
    allowed_actions: list[Action] = Field(..., description="Lifecycle actions possible from `state`.")
    started_at: UtcTime = Field(..., description="Capture time of the first frame, UTC.")
    last_seen_at: UtcTime = Field(..., description="Capture time of the latest supporting frame, UTC.")
    ended_at: UtcTime | None = Field(None, description="When the incident cleared, UTC; null while ongoing.")
    confidence: Confidence
    zone_id: ZoneId = None
    model_version: ModelVersion = ""
    message: Message = ""
    boxes: list[BoxOut] = Field(
        default_factory=list, description="Detections supporting it, on the confirming frame."
    )
    track_id: TrackId = None
    sensor: SensorReading = None
    snapshot_url: str | None = Field(None, description="Path of the snapshot JPEG; null when there is none.")
    clip_url: str | None = Field(None, description="Path of the clip MP4; null when there is none.")
    assignee: str | None = Field(None, description="Who was dispatched, once dispatched.")
    escalations: int = Field(
        0, ge=0, description="Times the alert was escalated for want of acknowledgement."
    )
    escalated_at: UtcTime | None = Field(None, description="Last escalation, UTC.")
    acknowledged_at: UtcTime | None = Field(None, description="When it was acknowledged, UTC.")
    state_changed_at: UtcTime = Field(..., description="When it entered `state`, UTC.")
    version: int = Field(..., ge=1, description="Bumped at every change of the stored alert.")
    created_at: UtcTime = Field(..., description="When the service first stored the incident, UTC.")
    updated_at: UtcTime = Field(..., description="When the service last changed it, UTC.")

    @classmethod
    def from_stored(cls, event: StoredEvent) -> EventOut:
        """Build the response model of a stored event."""
        return copy_fields(
            cls,
            event,
            allowed_actions=allowed_actions(event.state),
            boxes=[copy_fields(BoxOut, box) for box in event.boxes],
            sensor=None if event.sensor is None else SensorFactsWire.from_facts(event.sensor),
            snapshot_url=snapshot_url(event.id) if event.snapshot_path else None,
            clip_url=clip_url(event.id) if event.clip_path else None,
        )


class AuditOut(_SchemaModel):
    """One line of an alert's audit trail: who did what, when, with which note."""

    id: int = Field(..., ge=1, description="Increasing in time.")
    event_id: str
    at: UtcTime = Field(..., description="When, UTC.")
    actor: str = Field(..., description='API token name, "pipeline" or "system" (escalation).')
    action: str = Field(
        ..., description="raise, escalate, acknowledge, dispatch, resolve, false_alarm or close."
    )
    from_state: AlertState | None = Field(None, description="State before; null when raised.")
    to_state: AlertState
    severity: RiskLevel = Field(..., description="Colour after the action.")
    assignee: str | None = None
    note: str = ""


class EventList(_SchemaModel):
    """A page of events, newest first."""

    items: list[EventOut]
    count: int = Field(..., ge=0, description="Number of items in this page.")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class CameraHealthOut(_SchemaModel):
    """One camera's connection state and counters."""

    camera_id: str
    state: CameraState
    since: UtcTime = Field(..., description="When the camera entered this state, UTC.")
    fps: float = Field(..., ge=0, description="Recent rate of frames handed to the pipeline.")
    frames_decoded: int = Field(..., ge=0)
    frames_delivered: int = Field(..., ge=0)
    frames_dropped: int = Field(..., ge=0)
    decode_errors: int = Field(..., ge=0)
    reconnects: int = Field(..., ge=0)
    last_error: str | None = Field(None, description="Last error, credentials masked.")
    last_frame_at: UtcTime | None = Field(None, description="Time of the last frame handed on, UTC.")
    node: str | None = Field(
        None,
        description="The pipeline node reading the camera (a plant with several nodes); null otherwise. "
        "A camera whose node stopped reporting it shows state `stale` until a node reports it again.",
    )


class HealthOut(_SchemaModel):
    """Liveness and the state of the parts the service depends on."""

    status: Literal["ok", "degraded"] = Field(..., description='"degraded" when the database fails.')
    version: str = Field(..., description="anjian version.")
    is_database_ok: bool
    is_dispatcher_running: bool = Field(..., description="Whether the webhook worker thread is alive.")
    pending_deliveries: int | None = Field(
        None, ge=0, description="Webhook deliveries not yet delivered or given up; null if unknown."
    )
    cameras: list[CameraHealthOut] = Field(
        default_factory=list,
        description="Cameras read by this process and those pipelines elsewhere report (`POST /ingest/health`).",
    )


class WebhookPayload(_SchemaModel):
    """The JSON body POSTed to each webhook for every announcement of an event.

    Receivers should deduplicate on the ``Idempotency-Key`` header (the same for
    every retry of one delivery), and order by ``event.version``: retries can
    deliver announcements out of order.
    """

    schema_version: int = Field(WEBHOOK_SCHEMA_VERSION, description="Version of this payload shape.")
    kind: WebhookKind = Field(
        ...,
        description="event.created (revision 1), event.updated, event.ended (ended_at is set), or a "
        "lifecycle change: event.acknowledged / dispatched / resolved / false_alarm / closed / escalated.",
    )
    event: EventOut
    change: AuditOut | None = Field(None, description="The lifecycle change announced; null for detections.")

    @staticmethod
    def kind_of(event: StoredEvent) -> WebhookKind:
        """``event.ended`` once ``ended_at`` is set, else ``event.created`` for revision 1, else ``event.updated``."""
        if event.ended_at is not None:
            return "event.ended"
        return "event.created" if event.revision == 1 else "event.updated"

    @classmethod
    def for_event(
        cls, event: StoredEvent, *, kind: WebhookKind | None = None, change: AuditEntry | None = None
    ) -> WebhookPayload:
        """Build the payload announcing ``event`` (by default its detection kind, see ``kind_of``)."""
        return cls(
            kind=kind or cls.kind_of(event),
            event=EventOut.from_stored(event),
            change=None if change is None else AuditOut.model_validate(change),
        )
