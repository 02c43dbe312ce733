"""An index for pruning settled webhook deliveries by age (``storage.keep_deliveries_days``).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_index("ix_deliveries_status_updated", "webhook_deliveries", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_status_updated", table_name="webhook_deliveries")
