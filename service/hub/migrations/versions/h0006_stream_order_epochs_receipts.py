"""Health ordered by when it reached the hub's stream; each incident's raise in hub time by its own
messages; plant epochs (audit ids handed out again after a restore); remarks confirmed by the plant.

Revision ID: h0006
Revises: h0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "h0006"
down_revision = "h0005"


def upgrade() -> None:
    with op.batch_alter_table("hub_plants") as batch:
        batch.add_column(sa.Column("health_stored_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("epoch_at", sa.Float(), nullable=True))
    with op.batch_alter_table("hub_events") as batch:
        batch.add_column(sa.Column("raised_by_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("hub_audit") as batch:
        batch.add_column(sa.Column("delivered_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("delivery", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("plant_audit_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_hub_audit_plant_line", "hub_audit", ["plant_id", "plant_audit_id"])
    # The latest message of each incident converts its raise by the offset that message measured.
    op.execute(sa.text("UPDATE hub_events SET raised_by_at = created_at + (received_at - sent_at)"))
    # Every plant line so far is keyed a<plant audit id>.
    op.execute(
        sa.text(
            "UPDATE hub_audit SET plant_audit_id = CAST(SUBSTR(key, 2) AS INTEGER) "
            "WHERE key LIKE 'a%' AND is_from_hub = :is_from_hub"
        ).bindparams(sa.bindparam("is_from_hub", False, type_=sa.Boolean()))
    )


def downgrade() -> None:
    op.drop_index("ix_hub_audit_plant_line", table_name="hub_audit")
    with op.batch_alter_table("hub_audit") as batch:
        for name in ("epoch", "plant_audit_id", "delivery", "delivered_at"):
            batch.drop_column(name)
    with op.batch_alter_table("hub_events") as batch:
        for name in ("epoch", "raised_by_at"):
            batch.drop_column(name)
    with op.batch_alter_table("hub_plants") as batch:
        for name in ("epoch_at", "epoch", "health_stored_at"):
            batch.drop_column(name)
