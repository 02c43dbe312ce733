"""The plants' sensors' last reported health.

Revision ID: h0002
Revises: h0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "h0002"
down_revision = "h0001"


def upgrade() -> None:
    op.create_table(
        "hub_sensors",
        sa.Column("plant_id", sa.String(64), primary_key=True),
        sa.Column("sensor_id", sa.String(64), primary_key=True),
        sa.Column("workshop_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("is_source_connected", sa.Boolean(), nullable=True),
        sa.Column("last_reading_at", sa.Float(), nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("open_kinds", sa.JSON(), nullable=False),
        sa.Column("reported_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hub_sensors")
