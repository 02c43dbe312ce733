"""Sensors: an event keeps the reading behind it (``sensor``, JSON, nullable) and readings have a history table.

``events.sensor`` holds what a sensor event is about (sensor id, quantity, unit,
kind, value, peak, threshold crossed, linked cameras) as one JSON document: these
facts are shown and sent together, and never filtered on alone (the sensor id is in
``camera_id`` already, indexed). Camera events keep it null.

``sensor_readings`` is the readings' history: raw rows (``bucket_s`` 0) for a day,
then the mean, min and max per bucket (``anjian.service.readings``).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sensor", sa.JSON(), nullable=True))
    op.create_table(
        "sensor_readings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sensor_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("bucket_s", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sensor_readings_sensor_at", "sensor_readings", ["sensor_id", "at"])
    op.create_index("ix_sensor_readings_bucket_at", "sensor_readings", ["bucket_s", "at"])


def downgrade() -> None:
    op.drop_index("ix_sensor_readings_bucket_at", table_name="sensor_readings")
    op.drop_index("ix_sensor_readings_sensor_at", table_name="sensor_readings")
    op.drop_table("sensor_readings")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("sensor")
