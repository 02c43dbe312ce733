"""Retention: delete incidents settled long ago, with their snapshots and audit trails, in short batches.

Reads stay as cheap after years as after a day: ``prune_closed`` deletes incidents settled
long ago (the hub runs it every hour, ``hub.keep_closed_days``); open ones are kept however old.
"""

from __future__ import annotations

from sqlalchemy import delete, select, tuple_

from anjian.service.database import Database
from anjian.service.hub.listing import OPEN_STATES
from anjian.service.hub.tables import HubAuditRow, HubEventRow

__all__ = ["prune_closed"]


def prune_closed(database: Database, *, closed_before: float, batch: int) -> int:
    """Delete incidents no longer open that the hub last heard of before ``closed_before`` (epoch s).

    Their snapshots (stored in the row) and audit trails, remarks included, go with them.
    Open incidents (raised, acknowledged, dispatched) are never deleted, however old. A plant
    that later announces a deleted incident again (a late close) brings it back as a new row.
    Deletes ``batch`` incidents a transaction, so the consumer's writes wait at most one
    short transaction for it.

    Args:
        database: The hub's database.
        closed_before: Epoch seconds.
        batch: Incidents deleted per transaction.

    Returns:
        How many incidents were deleted.

    Raises:
        ValueError: ``batch`` is below 1.
        sqlalchemy.exc.SQLAlchemyError: The database failed (what was deleted before stays deleted).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    deleted = 0
    while True:
        with database.write() as session:
            keys = session.execute(
                select(HubEventRow.plant_id, HubEventRow.event_id)
                .where(HubEventRow.received_at < closed_before, HubEventRow.state.not_in(OPEN_STATES))
                .limit(batch)
            ).all()
            if keys:
                pairs = [tuple(key) for key in keys]
                session.execute(
                    delete(HubAuditRow).where(tuple_(HubAuditRow.plant_id, HubAuditRow.event_id).in_(pairs))
                )
                session.execute(
                    delete(HubEventRow).where(tuple_(HubEventRow.plant_id, HubEventRow.event_id).in_(pairs))
                )
        deleted += len(keys)
        if len(keys) < batch:
            return deleted
