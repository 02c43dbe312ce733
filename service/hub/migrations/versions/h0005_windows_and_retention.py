"""Indexes for the response-time window and for deleting old closed incidents; when each plant's
health was last reported; reported times no date can hold set right.

Revision ID: h0005
Revises: h0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "h0005"
down_revision = "h0004"

_MAX_EPOCH_S = 1e11  # anjian.service.bus.messages.MAX_EPOCH_S when this was written


def upgrade() -> None:
    op.create_index(
        "ix_hub_events_response", "hub_events", ["plant_id", "created_at", "acknowledged_at", "resolved_at"]
    )
    op.create_index("ix_hub_events_received", "hub_events", ["received_at"])
    with op.batch_alter_table("hub_plants") as batch:
        batch.add_column(sa.Column("health_reported_at", sa.Float(), nullable=True))
    # Reports before the bus bounded its times could store one that fails every response showing it.
    op.execute(
        sa.text("UPDATE hub_cameras SET since = reported_at WHERE since < 0 OR since > :most").bindparams(
            most=_MAX_EPOCH_S
        )
    )
    op.execute(
        sa.text(
            "UPDATE hub_sensors SET last_reading_at = NULL WHERE last_reading_at < 0 OR last_reading_at > :most"
        ).bindparams(most=_MAX_EPOCH_S)
    )


def downgrade() -> None:
    with op.batch_alter_table("hub_plants") as batch:
        batch.drop_column("health_reported_at")
    op.drop_index("ix_hub_events_received", table_name="hub_events")
    op.drop_index("ix_hub_events_response", table_name="hub_events")
