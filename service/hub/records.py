"""What the hub's store hands out: immutable copies of its rows and the per-plant summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CameraStatus", "HubAuditEntry", "HubEvent", "PlantSummary", "SensorStatus"]


@dataclass(frozen=True, slots=True)
class HubEvent:
    """A plant's incident as the hub last heard of it.

    Attributes:
        event: The plant's own JSON of it (``EventOut``: every field, times in UTC ISO).
        has_snapshot: Whether the hub holds its snapshot.
        sent_at: When the plant published the latest message about it, epoch seconds.
        received_at: When the hub stored that message.
    """

    plant_id: str
    event_id: str
    version: int
    camera_id: str
    behaviour: str
    severity: str
    state: str
    started_at: float
    created_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    message: str
    event: dict[str, Any]
    has_snapshot: bool
    sent_at: float
    received_at: float


@dataclass(frozen=True, slots=True)
class HubAuditEntry:
    """One audit line: the plant's (``is_from_hub`` false) or a supervisor's remark.

    A remark's ``sent_at`` is when the bus last took it, ``delivered_at`` when its plant confirmed
    it, ``delivery`` the plant's word (``recorded`` or ``no_such_event``).
    """

    id: int
    plant_id: str
    event_id: str
    at: float
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    severity: str | None
    assignee: str | None
    note: str
    is_from_hub: bool
    sent_at: float | None
    delivered_at: float | None
    delivery: str | None


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """A plant's camera as last reported."""

    plant_id: str
    camera_id: str
    name: str | None
    state: str
    since: float
    fps: float
    reconnects: int
    last_error: str | None
    reported_at: float


@dataclass(frozen=True, slots=True)
class SensorStatus:
    """A plant's sensor as last reported (its fields: ``anjian.pipeline.sensors.health.SensorHealth``)."""

    plant_id: str
    sensor_id: str
    workshop_id: str
    quantity: str
    unit: str
    source: str
    state: str
    is_source_connected: bool | None
    last_reading_at: float | None
    last_value: float | None
    open_kinds: tuple[str, ...]
    reported_at: float


@dataclass(frozen=True, slots=True)
class PlantSummary:
    """One plant on the hub's view.

    Attributes:
        open_by_colour: Open incidents (raised, acknowledged, dispatched) per current colour.
        overdue: Raised incidents not acknowledged within their colour's deadline.
        acknowledge_median_s: Median time from raise to acknowledgement, ``None`` without any.
        resolve_median_s: Median time from raise to resolution (or false alarm), ``None`` without any.
        cameras_by_state: The cameras per reported state.
        sensors_by_state: The sensors per reported state (ok, waiting, fault, offline).
        last_message_at: When the plant was last heard from, ``None`` if never.
        clock_offset_s: The hub's clock minus the plant's, measured on its newest health report
            (transit included, well under a second live); ``None`` before its first report.
    """

    plant_id: str
    name: str
    group: str
    open_by_colour: dict[str, int] = field(default_factory=dict)
    overdue: int = 0
    acknowledge_median_s: float | None = None
    resolve_median_s: float | None = None
    cameras_by_state: dict[str, int] = field(default_factory=dict)
    sensors_by_state: dict[str, int] = field(default_factory=dict)
    last_message_at: float | None = None
    clock_offset_s: float | None = None
