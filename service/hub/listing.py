"""Read the hub's incidents: listings in the order a supervisor works them, one incident, its snapshot and trail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from anjian.pipeline.event import RiskLevel
from anjian.service.copying import copy_fields
from anjian.service.hub.records import HubAuditEntry, HubEvent
from anjian.service.hub.tables import HubAuditRow, HubEventRow

__all__ = [
    "OPEN_STATES",
    "audit_trail",
    "count_audit",
    "count_events",
    "count_listed",
    "get_event",
    "list_events",
    "snapshot",
]

OPEN_STATES: Final = ("raised", "acknowledged", "dispatched")
_COLOUR_RANKS: Final = {level.value: RiskLevel.RED.rank - level.rank for level in RiskLevel}
"""Order of the colours in a listing of open incidents: red 0 ... blue 3 (an unknown colour after them)."""


def list_events(
    session: Session, plant_ids: Iterable[str], *, is_open: bool | None, limit: int
) -> list[HubEvent]:
    """The incidents of these plants; only open (or only closed) ones when asked.

    Open ones come most urgent first, as a supervisor works them: raised (nobody has taken it
    on) before acknowledged and dispatched, then by colour (red first), then the oldest first,
    so that a list cut at ``limit`` drops the least urgent rather than the longest overdue.
    Otherwise newest first.

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    query = select(HubEventRow).where(*_listing(plant_ids, is_open))
    if is_open is True:
        query = query.order_by(
            case((HubEventRow.state == "raised", 0), else_=1),
            case(_COLOUR_RANKS, value=HubEventRow.severity, else_=len(_COLOUR_RANKS)),
            HubEventRow.started_at,
            HubEventRow.plant_id,
            HubEventRow.event_id,
        )
    else:
        query = query.order_by(HubEventRow.started_at.desc(), HubEventRow.event_id)
    return [_event(row) for row in session.scalars(query.limit(limit))]


def count_listed(session: Session, plant_ids: Iterable[str], *, is_open: bool | None) -> int:
    """How many incidents ``list_events`` has to list without its limit (the "200 of N" of a cut list)."""
    query = select(func.count()).select_from(HubEventRow).where(*_listing(plant_ids, is_open))
    return int(session.execute(query).scalar_one())


def get_event(session: Session, plant_id: str, event_id: str) -> HubEvent | None:
    """One incident, or ``None``."""
    row = session.get(HubEventRow, (plant_id, event_id))
    return None if row is None else _event(row)


def snapshot(session: Session, plant_id: str, event_id: str) -> bytes | None:
    """The incident's snapshot JPEG, or ``None``."""
    return session.scalars(
        select(HubEventRow.snapshot_jpeg).where(
            HubEventRow.plant_id == plant_id, HubEventRow.event_id == event_id
        )
    ).first()


def audit_trail(session: Session, plant_id: str, event_id: str) -> list[HubAuditEntry]:
    """The incident's audit lines and remarks, oldest first."""
    query = (
        select(HubAuditRow)
        .where(HubAuditRow.plant_id == plant_id, HubAuditRow.event_id == event_id)
        .order_by(HubAuditRow.at, HubAuditRow.id)
    )
    return [copy_fields(HubAuditEntry, row) for row in session.scalars(query)]


def count_events(session: Session, plant_id: str | None) -> int:
    """How many incidents the hub holds (of one plant)."""
    query = select(func.count()).select_from(HubEventRow)
    if plant_id is not None:
        query = query.where(HubEventRow.plant_id == plant_id)
    return int(session.execute(query).scalar_one())


def count_audit(session: Session, plant_id: str | None, *, action: str | None) -> int:
    """How many audit lines the hub holds (of one plant, of one action)."""
    query = select(func.count()).select_from(HubAuditRow)
    if plant_id is not None:
        query = query.where(HubAuditRow.plant_id == plant_id)
    if action is not None:
        query = query.where(HubAuditRow.action == action)
    return int(session.execute(query).scalar_one())


def _listing(plant_ids: Iterable[str], is_open: bool | None) -> list[ColumnElement[bool]]:
    """The conditions of an incident listing: these plants, only open (or only closed) ones when asked."""
    conditions: list[ColumnElement[bool]] = [HubEventRow.plant_id.in_(list(plant_ids))]
    if is_open is True:
        conditions.append(HubEventRow.state.in_(OPEN_STATES))
    elif is_open is False:
        conditions.append(HubEventRow.state.not_in(OPEN_STATES))
    return conditions


def _event(row: HubEventRow) -> HubEvent:
    """The incident a row holds (``has_snapshot`` when it keeps one)."""
    return copy_fields(HubEvent, row, has_snapshot=row.snapshot_bytes > 0)
