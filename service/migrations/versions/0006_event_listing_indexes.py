"""Indexes for listing events by state or by site in the listing's order, and for counting them for /metrics.

``state=closed`` sorted every closed alert for each page (``ix_events_state_created``
has the wrong order), a ``site_id`` filter scanned every event, and each ``/metrics``
scrape read the whole table to count events per behaviour, colour and state.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_index("ix_events_state_started", "events", ["state", "started_at", "id"])
    op.create_index("ix_events_site_started", "events", ["site_id", "started_at", "id"])
    op.create_index("ix_events_behaviour_severity_state", "events", ["behaviour", "severity", "state"])


def downgrade() -> None:
    op.drop_index("ix_events_behaviour_severity_state", table_name="events")
    op.drop_index("ix_events_site_started", table_name="events")
    op.drop_index("ix_events_state_started", table_name="events")
