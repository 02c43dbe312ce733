"""The hub API's request and response models (times in UTC ISO, as the service's API).

Each response model is built from the store's record of the same field names (``model_validate``,
or ``copy_fields`` where a field is derived); times
are ``UtcTime``, so a record's epoch seconds become UTC datetimes on the way.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from anjian.pipeline.sensors.health import ALARM_KINDS
from anjian.service.copying import copy_fields
from anjian.service.hub.records import PlantSummary, SensorStatus
from anjian.service.schemas import UtcTime
from anjian.service.storable_text import StorableText

__all__ = [
    "CameraOut",
    "EventDetailOut",
    "HubAuditOut",
    "HubEventOut",
    "MeOut",
    "OverviewOut",
    "PlantOut",
    "RemarkIn",
    "RemarkOut",
    "SensorOut",
]


class _Out(BaseModel):
    """Base of the hub's response models: immutable, built from a record with ``model_validate``."""

    model_config = ConfigDict(frozen=True, from_attributes=True)


class PlantOut(_Out):
    """One plant on the hub's view."""

    plant_id: str
    name: str
    group: str
    open_by_colour: dict[str, int] = Field(..., description="Open incidents per current colour.")
    open_total: int
    overdue: int = Field(..., description="Raised incidents past their colour's acknowledge deadline.")
    acknowledge_median_s: float | None = Field(..., description="Median time from raise to acknowledgement.")
    resolve_median_s: float | None = Field(..., description="Median time from raise to resolution.")
    cameras_by_state: dict[str, int]
    sensors_by_state: dict[str, int] = Field(
        ..., description="Sensors per state: ok, waiting, fault, offline."
    )
    last_message_at: UtcTime | None = Field(..., description="When the plant was last heard from.")
    is_silent: bool = Field(..., description="Not heard from within hub.silent_after_s (or never).")
    clock_offset_s: float | None = Field(
        ...,
        description="The hub's clock minus the plant's (seconds, on its newest health report; positive: the "
        "plant's runs behind). Overdue is judged in the hub's time; null before the plant's first report.",
    )

    @classmethod
    def from_summary(cls, summary: PlantSummary, *, now: float, silent_after_s: float) -> PlantOut:
        """The response model of a plant summary at ``now`` (epoch seconds)."""
        last = summary.last_message_at
        return copy_fields(
            cls,
            summary,
            open_total=sum(summary.open_by_colour.values()),
            is_silent=last is None or now - last > silent_after_s,
        )


class OverviewOut(_Out):
    """Every plant the token sees."""

    hub_name: str
    timezone: str | None = Field(
        ..., description="hub.timezone: the IANA zone the view shows times in; null: each browser's own."
    )
    at: UtcTime
    plants: list[PlantOut]


class HubEventOut(_Out):
    """A plant's incident in a list."""

    plant_id: str
    event_id: str
    camera_id: str
    behaviour: str
    severity: str
    state: str
    started_at: UtcTime
    acknowledged_at: UtcTime | None
    resolved_at: UtcTime | None
    message: str
    has_snapshot: bool


class HubAuditOut(_Out):
    """One audit line: the plant's, or a supervisor's remark (``is_from_hub``)."""

    at: UtcTime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    severity: str | None
    assignee: str | None
    note: str
    is_from_hub: bool
    sent_at: UtcTime | None = Field(
        ...,
        description="Remarks: when the bus last took it; null while pending (sent again until confirmed).",
    )
    delivered_at: UtcTime | None = Field(
        None,
        description="Remarks: when the plant confirmed it; null until then (plants older than the hub never do).",
    )
    delivery: Literal["recorded", "no_such_event"] | None = Field(
        None,
        description="Remarks: recorded (in the incident's audit trail at the plant) or no_such_event (the plant "
        "has no such incident); null until the plant confirms it.",
    )


class EventDetailOut(_Out):
    """An incident with the plant's full record of it and its audit trail."""

    summary: HubEventOut
    event: dict[str, Any] = Field(..., description="The plant's own record of it (its EventOut).")
    snapshot_url: str | None
    clip_url: str = Field(
        ...,
        description="Where the clip is served: asked for from the plant when first requested (404 when the "
        "plant has none; a clip is often recorded after the announcements the hub has).",
    )
    audit: list[HubAuditOut]


class CameraOut(_Out):
    """A plant's camera as last reported."""

    plant_id: str
    camera_id: str
    name: str | None = Field(
        ..., description="The plant's name of the camera; null from a plant older than it."
    )
    state: str
    since: UtcTime
    fps: float
    reconnects: int
    last_error: str | None
    reported_at: UtcTime


class SensorOut(_Out):
    """A plant's sensor as last reported."""

    plant_id: str
    sensor_id: str
    workshop_id: str
    quantity: str
    unit: str
    source: str = Field(..., description="mqtt:<broker>, modbus:<device>, or http (pushed by a gateway).")
    state: str = Field(
        ..., description="offline (source down), fault (stale, flatline, out of range), waiting, ok."
    )
    is_source_connected: bool | None = Field(..., description="null for pushed readings.")
    last_reading_at: UtcTime | None
    last_value: float | None
    open_kinds: list[str] = Field(
        ..., description="What is open: threshold, rate, stale, flatline, out_of_range."
    )
    is_alarm: bool = Field(..., description="A limit or rate-of-rise alarm is open.")
    reported_at: UtcTime

    @classmethod
    def from_status(cls, status: SensorStatus) -> SensorOut:
        """The response model of a sensor's status."""
        return copy_fields(
            cls,
            status,
            open_kinds=list(status.open_kinds),
            is_alarm=any(kind in ALARM_KINDS for kind in status.open_kinds),
        )


class RemarkIn(BaseModel):
    """A supervisor's remark on an incident."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    note: StorableText = Field(
        ..., min_length=1, max_length=4000, description="What the supervisor says to the plant."
    )
    press_for_action: bool = Field(False, description="Press the plant to act on it now.")


class RemarkOut(_Out):
    """A stored remark, on its way to the plant."""

    id: str
    plant_id: str
    event_id: str
    at: UtcTime


class MeOut(_Out):
    """Who the token is and which plants it sees."""

    name: str
    role: str
    scope: str
    plant_ids: list[str]
