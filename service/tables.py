"""The SQL schema of the service as SQLAlchemy ORM classes: the metadata the Alembic migrations build.

Six tables:

- ``events``: one row per incident at its highest revision, with its alert state;
- ``event_audit``: who did what to an alert, when, with which note (append-only);
- ``webhook_subscriptions``: where events are announced (from the site YAML or the API);
- ``webhook_deliveries``: the durable outbox, one row per (announcement, subscription);
- ``api_tokens``: hashed API tokens and their roles;
- ``sensor_readings``: the history of the sensors' readings (raw, then downsampled).

A change here needs a migration in ``service/migrations/versions`` (the schema test
compares the two on SQLite and PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiTokenRow",
    "AuditRow",
    "Base",
    "DeliveryRow",
    "EventRow",
    "ReadingRow",
    "SubscriptionRow",
    "TokenColumns",
]


class Base(DeclarativeBase):
    """Declarative base of every anjian table (the metadata Alembic targets)."""


class EventRow(Base):
    """One incident at its highest stored revision, with its alert lifecycle."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[str] = mapped_column(String(64))
    workshop_id: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    behaviour: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    detected_severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    confidence: Mapped[float] = mapped_column(Float)
    zone_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    boxes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    track_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sensor: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    snapshot_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    clip_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    escalations: Mapped[int] = mapped_column(Integer)
    escalated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    severity_since: Mapped[float | None] = mapped_column(
        Float, nullable=True, doc="when the current colour was reached (SLA deadlines run from it)"
    )
    acknowledged_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    state_changed_at: Mapped[float] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_events_started_at", "started_at"),
        Index("ix_events_camera_started", "camera_id", "started_at"),
        Index("ix_events_behaviour_started", "behaviour", "started_at"),
        Index("ix_events_state_created", "state", "created_at"),
        Index("ix_events_updated_at", "updated_at"),
        # the listing's order (newest started_at first, then id) within one state or one site
        Index("ix_events_state_started", "state", "started_at", "id"),
        Index("ix_events_site_started", "site_id", "started_at", "id"),
        # /metrics counts events per (behaviour, severity, state) from this index alone
        Index("ix_events_behaviour_severity_state", "behaviour", "severity", "state"),
    )


class AuditRow(Base):
    """One thing done to an alert: raised, acknowledged, dispatched, escalated …"""

    __tablename__ = "event_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), ForeignKey("events.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_event_audit_event", "event_id", "id"),)


class SubscriptionRow(Base):
    """A webhook endpoint and what it wants to hear about."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str | None] = mapped_column(String(512), nullable=True)
    description: Mapped[str] = mapped_column(String(200))
    timeout_s: Mapped[float] = mapped_column(Float)
    retry_for_s: Mapped[float] = mapped_column(Float)
    max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kinds: Mapped[list[str]] = mapped_column(JSON)
    site_ids: Mapped[list[str]] = mapped_column(JSON)
    camera_ids: Mapped[list[str]] = mapped_column(JSON)
    behaviours: Mapped[list[str]] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_subscriptions_active", "is_active"),)


class DeliveryRow(Base):
    """One announcement to POST to one subscription, or already POSTed."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    subscription_id: Mapped[int] = mapped_column(Integer, ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[str] = mapped_column(String(64), ForeignKey("events.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    retry_until: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_deliveries_status_updated", "status", "updated_at"),
        Index("ix_deliveries_event", "event_id"),
    )


class TokenColumns:
    """The columns every token table has (the service's and the hub's): only the secret's SHA-256 is kept."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ApiTokenRow(TokenColumns, Base):
    """An API token: only the SHA-256 of the secret is kept."""

    __tablename__ = "api_tokens"

    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ReadingRow(Base):
    """One sensor reading (``bucket_s`` 0), or the mean, min and max of ``count`` readings over ``bucket_s`` seconds."""

    __tablename__ = "sensor_readings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sensor_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    bucket_s: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_sensor_readings_sensor_at", "sensor_id", "at"),
        Index("ix_sensor_readings_bucket_at", "bucket_s", "at"),
    )
