"""Events remember when they reached their current colour (``severity_since``, nullable).

The SLA deadline of a colour runs from then: an alert the pipeline raised from blue to red
50 minutes after it was stored was escalated as "not acknowledged within 300 s" 15 s later.
Events stored before this migration have none (null): their deadline runs from their last
escalation or their creation, as before.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("severity_since", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("severity_since")
