"""The plant's name of each camera, reported with its health.

Revision ID: h0004
Revises: h0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "h0004"
down_revision = "h0003"


def upgrade() -> None:
    with op.batch_alter_table("hub_cameras") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_cameras") as batch:
        batch.drop_column("name")
