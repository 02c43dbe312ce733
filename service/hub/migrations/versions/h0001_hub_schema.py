"""The hub's tables: every plant's incidents, audit trails and camera health, the plants heard from, hub tokens.

Revision ID: h0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "h0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "hub_plants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("last_message_at", sa.Float(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
    )
    op.create_table(
        "hub_events",
        sa.Column("plant_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("workshop_id", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("behaviour", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("acknowledged_at", sa.Float(), nullable=True),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("escalated_at", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("snapshot_jpeg", sa.LargeBinary(), nullable=True),
        sa.Column("snapshot_bytes", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_hub_events_plant_state", "hub_events", ["plant_id", "state"])
    op.create_index("ix_hub_events_started", "hub_events", ["started_at"])
    op.create_table(
        "hub_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("plant_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=True),
        sa.Column("severity", sa.String(16), nullable=True),
        sa.Column("assignee", sa.String(200), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("is_from_hub", sa.Boolean(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("plant_id", "event_id", "key", name="uq_hub_audit_key"),
    )
    op.create_index("ix_hub_audit_event", "hub_audit", ["plant_id", "event_id", "at"])
    op.create_table(
        "hub_cameras",
        sa.Column("plant_id", sa.String(64), primary_key=True),
        sa.Column("camera_id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("reported_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "hub_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    for table in ("hub_tokens", "hub_cameras", "hub_audit", "hub_events", "hub_plants"):
        op.drop_table(table)
