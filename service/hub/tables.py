"""The hub's SQL schema: what it knows of every plant, in its own metadata beside the service's tables.

- ``hub_events``: each plant's incidents at their latest version, with the snapshot;
- ``hub_audit``: their audit trails as the plants wrote them, plus the supervisors' remarks;
- ``hub_cameras``: each plant's cameras' last reported health;
- ``hub_sensors``: each plant's sensors' last reported health;
- ``hub_plants``: when each plant was last heard from, its clock, and its epoch;
- ``hub_tokens``: the hub's tokens, each limited to all plants, a group, or one plant.

Its own Alembic migrations build them (``service/hub/migrations``, version table
``hub_alembic_version``) when the hub opens its database (``HubStore``): a change here needs a
migration there (the hub's schema test compares the two). The database also holds the
service's migrated schema (the ``Database`` the hub shares the store layer with).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from anjian.service.tables import TokenColumns

__all__ = [
    "HubAuditRow",
    "HubBase",
    "HubCameraRow",
    "HubEventRow",
    "HubPlantRow",
    "HubSensorRow",
    "HubTokenRow",
]


class HubBase(DeclarativeBase):
    """Declarative base of the hub's tables."""


class HubPlantRow(HubBase):
    """A plant the hub has heard from."""

    __tablename__ = "hub_plants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_message_at: Mapped[float] = mapped_column(Float)
    messages: Mapped[int] = mapped_column(Integer)
    clock_offset_s: Mapped[float | None] = mapped_column(
        Float, nullable=True, doc="hub time minus the plant's, from its newest health report; None: none yet"
    )
    clock_sent_at: Mapped[float | None] = mapped_column(
        Float, nullable=True, doc="the plant's sent_at of the health report that measured clock_offset_s"
    )
    clock_measured_at: Mapped[float | None] = mapped_column(
        Float, nullable=True, doc="hub time clock_offset_s was measured"
    )
    health_reported_at: Mapped[float | None] = mapped_column(
        Float,
        nullable=True,
        doc="the reported_at of the health report its cameras and sensors are from; None: none yet",
    )
    health_stored_at: Mapped[float | None] = mapped_column(
        Float,
        nullable=True,
        doc="hub time the health report its cameras and sensors are from reached the hub's stream; None: none "
        "since this column was added",
    )
    epoch: Mapped[int] = mapped_column(
        Integer,
        server_default="0",
        doc="how many times the plant was seen to hand out its audit ids again (a database restored from a backup)",
    )
    epoch_at: Mapped[float | None] = mapped_column(
        Float,
        nullable=True,
        doc="hub stream time from which the plant's messages belong to epoch; None: always",
    )


class HubEventRow(HubBase):
    """One plant's incident at the highest version received."""

    __tablename__ = "hub_events"

    plant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    workshop_id: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    behaviour: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    acknowledged_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    resolved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    escalated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text)
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    snapshot_jpeg: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    snapshot_bytes: Mapped[int] = mapped_column(Integer, default=0, doc="size of the snapshot, 0: none")
    sent_at: Mapped[float] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float)
    raised_by_at: Mapped[float | None] = mapped_column(
        Float,
        nullable=True,
        doc="hub time by which it was raised at the latest: over its messages, the earliest created_at + "
        "(reached the hub's stream - sent_at)",
    )
    epoch: Mapped[int] = mapped_column(
        Integer, server_default="0", doc="the plant's epoch (hub_plants.epoch) of the record stored"
    )

    __table_args__ = (
        Index("ix_hub_events_plant_state", "plant_id", "state"),
        Index("ix_hub_events_started", "started_at"),
        # the response-time window, read from the index alone
        Index("ix_hub_events_response", "plant_id", "created_at", "acknowledged_at", "resolved_at"),
        Index("ix_hub_events_received", "received_at"),  # deleting closed incidents by age
    )


class HubAuditRow(HubBase):
    """One line of a plant's incident's audit trail, or a supervisor's remark from the hub."""

    __tablename__ = "hub_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plant_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(
        String(64),
        doc="a<plant audit id> (a<id>.<digest> for another change that got an id taken), raise, or r<remark id>",
    )
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str] = mapped_column(Text)
    is_from_hub: Mapped[bool] = mapped_column(Boolean)
    sent_at: Mapped[float | None] = mapped_column(
        Float, nullable=True, doc="remarks: when the bus last took it"
    )
    delivered_at: Mapped[float | None] = mapped_column(
        Float, nullable=True, doc="remarks: when the plant's receipt came; None: none yet"
    )
    delivery: Mapped[str | None] = mapped_column(
        String(16), nullable=True, doc="remarks: the receipt's outcome, recorded or no_such_event"
    )
    plant_audit_id: Mapped[int | None] = mapped_column(
        Integer, nullable=True, doc="the plant's audit id of a lifecycle change; None: a raise or a remark"
    )
    epoch: Mapped[int] = mapped_column(
        Integer, server_default="0", doc="the plant's epoch (hub_plants.epoch) the line came in"
    )

    __table_args__ = (
        UniqueConstraint("plant_id", "event_id", "key", name="uq_hub_audit_key"),
        Index("ix_hub_audit_event", "plant_id", "event_id", "at"),
        Index("ix_hub_audit_plant_line", "plant_id", "plant_audit_id"),  # an audit id handed out again
    )


class HubCameraRow(HubBase):
    """A plant's camera at its last reported health."""

    __tablename__ = "hub_cameras"

    plant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[float] = mapped_column(Float)
    fps: Mapped[float] = mapped_column(Float)
    reconnects: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reported_at: Mapped[float] = mapped_column(Float)


class HubSensorRow(HubBase):
    """A plant's sensor at its last reported health."""

    __tablename__ = "hub_sensors"

    plant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sensor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workshop_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(16))
    is_source_connected: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    last_reading_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    open_kinds: Mapped[list[str]] = mapped_column(JSON)
    reported_at: Mapped[float] = mapped_column(Float)


class HubTokenRow(TokenColumns, HubBase):
    """A hub token: only the SHA-256 of the secret is kept; ``scope`` limits the plants it sees."""

    __tablename__ = "hub_tokens"

    scope: Mapped[str] = mapped_column(String(80), doc="all, group:<name> or plant:<id>")
