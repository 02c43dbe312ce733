"""Supervisors' remarks on plants' incidents: stored at the hub, sent to the plant, confirmed by its receipt.

A supervisor's remark is stored first (``add_remark``), as an audit line keyed ``r<remark
id>``, published by the consumer (``mark_sent``), and delivered once its plant's
``RemarkReceipt`` comes (``delivered_at``, ``apply_receipts``; plants older than this version
send none). One the plant has not confirmed is published again after ``resend_after_s``
(``unsent_remarks``), so it reaches a plant offline longer than the commands stream keeps it;
the plant writes it once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Final

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from anjian.service.bus.messages import RemarkReceipt, SupervisorRemark
from anjian.service.hub.tables import HubAuditRow, HubEventRow

__all__ = ["add_remark", "apply_receipts", "mark_sent", "new_remark", "unsent_remarks"]

_ACTION_REMARK: Final = "remark"
_ACTION_PRESS: Final = "press_for_action"


def new_remark(
    plant_id: str,
    event_id: str,
    *,
    actor: str,
    note: str,
    is_press_for_action: bool,
    clock: Callable[[], float],
) -> SupervisorRemark:
    """A supervisor's remark, with a new id, its note stripped, made at ``clock()``.

    Raises:
        ValueError: The note is blank or longer than 4000 characters.
    """
    note = note.strip()
    if not 1 <= len(note) <= 4000:
        raise ValueError(f"a remark needs a note of 1-4000 characters, got {len(note)}")
    return SupervisorRemark(
        id=uuid.uuid4().hex,
        plant_id=plant_id,
        event_id=event_id,
        actor=actor,
        note=note,
        is_press_for_action=is_press_for_action,
        at=clock(),
    )


def add_remark(session: Session, remark: SupervisorRemark) -> None:
    """Record a supervisor's remark in the incident's audit trail, to be sent to the plant.

    Raises:
        KeyError: The hub has no such incident.
    """
    row = session.get(HubEventRow, (remark.plant_id, remark.event_id))
    if row is None:
        raise KeyError(f"no event {remark.event_id!r} of plant {remark.plant_id!r}")
    session.add(
        HubAuditRow(
            plant_id=remark.plant_id,
            event_id=remark.event_id,
            key=f"r{remark.id}",
            at=remark.at,
            actor=remark.actor,
            action=_ACTION_PRESS if remark.is_press_for_action else _ACTION_REMARK,
            note=remark.note,
            is_from_hub=True,
        )  # no state change, colour or assignee; sent_at: once the bus takes it
    )


def unsent_remarks(session: Session, limit: int, *, resent_before: float | None) -> list[SupervisorRemark]:
    """Remarks the bus has not taken yet, oldest first; also those last sent before ``resent_before`` unconfirmed.

    Args:
        session: A read session.
        limit: The most returned.
        resent_before: A remark its plant has not confirmed (no ``RemarkReceipt``) and the bus
            last took before this hub time (epoch s) is due again; ``None``: never.
    """
    is_due: ColumnElement[bool] = HubAuditRow.sent_at.is_(None)
    if resent_before is not None:
        is_due = is_due | (HubAuditRow.delivered_at.is_(None) & (HubAuditRow.sent_at < resent_before))
    query = (
        select(HubAuditRow)
        .where(HubAuditRow.is_from_hub.is_(True), is_due)
        .order_by(HubAuditRow.id)
        .limit(limit)
    )
    return [
        SupervisorRemark(
            id=row.key[1:],
            plant_id=row.plant_id,
            event_id=row.event_id,
            actor=row.actor,
            note=row.note,
            is_press_for_action=row.action == _ACTION_PRESS,
            at=row.at,
        )
        for row in session.scalars(query)
    ]


def mark_sent(session: Session, remark: SupervisorRemark, *, clock: Callable[[], float]) -> None:
    """Record that the bus took the remark at ``clock()`` (again: its last time is kept until confirmed)."""
    row = session.scalars(
        select(HubAuditRow).where(
            HubAuditRow.plant_id == remark.plant_id,
            HubAuditRow.event_id == remark.event_id,
            HubAuditRow.key == f"r{remark.id}",
        )
    ).first()
    if row is not None and row.delivered_at is None:
        row.sent_at = clock()


def apply_receipts(session: Session, receipts: Sequence[tuple[RemarkReceipt, float]]) -> int:
    """Mark each remark its plant confirmed delivered (at the hub time the receipt reached the stream).

    Returns:
        How many remarks were confirmed for the first time (a receipt of a remark the hub
        deleted, or one that came again, changes nothing).
    """
    confirmed = 0
    for receipt, stored_at in receipts:
        row = session.scalars(
            select(HubAuditRow).where(
                HubAuditRow.plant_id == receipt.plant_id,
                HubAuditRow.event_id == receipt.event_id,
                HubAuditRow.key == f"r{receipt.remark_id}",
                HubAuditRow.is_from_hub.is_(True),
            )
        ).first()
        if row is not None and row.delivered_at is None:
            row.delivered_at = stored_at
            row.delivery = receipt.outcome
            confirmed += 1
    return confirmed
