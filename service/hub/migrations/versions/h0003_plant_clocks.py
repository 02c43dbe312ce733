"""Each plant's clock offset from the hub's, measured on its health reports.

Revision ID: h0003
Revises: h0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "h0003"
down_revision = "h0002"

_COLUMNS = ("clock_offset_s", "clock_sent_at", "clock_measured_at")


def upgrade() -> None:
    with op.batch_alter_table("hub_plants") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_plants") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
