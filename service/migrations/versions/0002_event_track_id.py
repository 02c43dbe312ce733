"""Events keep the tracker id of the person or object an incident is about (``track_id``, nullable).

Pipelines have sent it since wire version 1; it was dropped at ingest. Incidents
stored before this migration have none (null), as do incidents of rules that are
not about one object.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("track_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("track_id")
