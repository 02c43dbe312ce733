"""A supervisor's remark from the hub, written into the plant's audit trail (once, however often it arrives).

The remark becomes an audit line of the incident, ``remark`` or ``press_for_action``, by
``hub:<supervisor>``, at the time the supervisor wrote it; the alert's state and colour do
not change, but its version does, so the control room's live view shows it at once. The
bus delivers at least once: a remark seen before (same incident, action, actor, time and
note) is not written again.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy import select

from anjian.service.bus.messages import SupervisorRemark
from anjian.service.store import EventStore
from anjian.service.tables import AuditRow, EventRow

__all__ = ["ACTION_PRESS", "ACTION_REMARK", "HUB_ACTOR_PREFIX", "record_remark"]

logger = logging.getLogger(__name__)

ACTION_REMARK: Final = "remark"
ACTION_PRESS: Final = "press_for_action"
HUB_ACTOR_PREFIX: Final = "hub:"


def record_remark(store: EventStore, remark: SupervisorRemark, *, now: float) -> bool:
    """Add the remark to its incident's audit trail, unless it is there already.

    Args:
        store: The plant's event store.
        remark: The remark from the hub.
        now: Epoch seconds (the alert's ``updated_at``).

    Returns:
        ``True`` when written; ``False`` when it was there already.

    Raises:
        KeyError: The plant has no incident with this id.
    """
    action = ACTION_PRESS if remark.is_press_for_action else ACTION_REMARK
    actor = f"{HUB_ACTOR_PREFIX}{remark.actor}"[:200]
    with store.database.write() as session:
        row = session.scalars(
            select(EventRow).where(EventRow.id == remark.event_id).with_for_update()
        ).first()
        if row is None:
            raise KeyError(f"no event with id {remark.event_id!r}")
        seen = session.scalars(
            select(AuditRow.id).where(
                AuditRow.event_id == remark.event_id,
                AuditRow.action == action,
                AuditRow.actor == actor,
                AuditRow.at == remark.at,
                AuditRow.note == remark.note,
            )
        ).first()
        if seen is not None:
            return False
        session.add(
            AuditRow(
                event_id=row.id,
                at=remark.at,
                actor=actor,
                action=action,
                from_state=row.state,
                to_state=row.state,
                severity=row.severity,
                assignee=None,
                note=remark.note,
            )
        )
        row.version += 1
        row.updated_at = now
    logger.info("%s: %s from the hub on event %s by %s", row.camera_id, action, remark.event_id, remark.actor)
    return True
