"""Apply a plant's incident announcements (``EventChange``) idempotently and in any order, across epochs.

An incident row is inserted once per (plant, incident) and replaced only by a higher
(epoch, ``version``) (the plant bumps the version at every change; the epoch below). An
audit line is keyed per (plant, incident): ``a<plant audit id>`` for a lifecycle change,
``raise`` for the raise (``r<remark id>`` is a supervisor's remark, see ``remarks``), and a
line the hub holds already is not written again.

Each row also keeps ``raised_by_at``: over its messages, the earliest ``created_at +
(stored_at - sent_at)``, its raise converted by the offset its own message measured (transit
included), which bounds when it counts as overdue (see ``summary``).

Epochs. A plant database restored from a backup hands out its versions and audit ids
again, so its new changes looked like the old ones' duplicates and the hub showed the old
state for ever. The hub counts a plant's epochs: a lifecycle change whose plant audit id the
hub holds, in the current epoch, for another change (another incident, or other content)
starts a new one (logged), from that message's stream time. A record of a newer epoch
replaces one of an older epoch whatever their versions (within an epoch the version
decides); a message that reached the stream before the epoch began (a redelivery) belongs to
the one before; a change the hub holds already as it is (a delivery pending in the backup,
sent again) brings no newer epoch. The new change's line is kept beside the old one (key
``a<id>.<digest>``). Limits: changes before the first reused audit id are compared by version
only (a detection revision may be dropped until the incident's next change), and the old
history's lines stay in the trail.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from anjian.service.bus.messages import EventChange
from anjian.service.hub.tables import HubAuditRow, HubEventRow, HubPlantRow
from anjian.service.schemas import AuditOut

__all__ = ["HeldLine", "apply_change", "audit_keys", "event_rows", "held_lines"]

logger = logging.getLogger(__name__)

_SETTLED_STATES: Final = frozenset({"resolved", "false_alarm"})
_DIGEST_HEX: Final = 12  # hex digits of a line's content digest in the key of a change that got an id taken


@dataclass(frozen=True, slots=True)
class HeldLine:
    """An audit line the hub holds under a plant audit id: its incident, epoch and content (``_content``)."""

    event_id: str
    epoch: int
    content: tuple[object, ...]


def event_rows(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], HubEventRow]:
    """The incident rows of these (plant, incident), locked for the transaction, by that key."""
    if not keys:
        return {}
    query = select(HubEventRow).where(tuple_(HubEventRow.plant_id, HubEventRow.event_id).in_(sorted(keys)))
    return {(row.plant_id, row.event_id): row for row in session.scalars(query.with_for_update())}


def audit_keys(session: Session, keys: set[tuple[str, str]]) -> set[tuple[str, str, str]]:
    """The (plant, incident, line key) of the audit lines the hub holds for these (plant, incident)."""
    if not keys:
        return set()
    query = select(HubAuditRow.plant_id, HubAuditRow.event_id, HubAuditRow.key).where(
        tuple_(HubAuditRow.plant_id, HubAuditRow.event_id).in_(sorted(keys))
    )
    return {(p, e, k) for p, e, k in session.execute(query)}


def held_lines(session: Session, keys: set[tuple[str, int]]) -> dict[tuple[str, int], list[HeldLine]]:
    """The lines the hub holds under these (plant, plant audit id), on any incident."""
    held: dict[tuple[str, int], list[HeldLine]] = defaultdict(list)
    if keys:
        query = select(HubAuditRow).where(
            tuple_(HubAuditRow.plant_id, HubAuditRow.plant_audit_id).in_(sorted(keys))
        )
        for row in session.scalars(query):
            if row.plant_audit_id is not None:
                held[(row.plant_id, row.plant_audit_id)].append(
                    HeldLine(row.event_id, row.epoch, _content(row))
                )
    return held


def apply_change(
    session: Session,
    change: EventChange,
    plant: HubPlantRow,
    rows: dict[tuple[str, str], HubEventRow],
    seen: set[tuple[str, str, str]],
    held: dict[tuple[str, int], list[HeldLine]],
    *,
    stored_at: float,
    now: float,
) -> tuple[bool, int]:
    """Apply one announcement; returns (incident row written, audit lines added).

    Args:
        session: The write session.
        change: The announcement.
        plant: Its plant's row (locked; its epoch may start anew here).
        rows: The incident rows of the batch (``event_rows``); a new one is added to it.
        seen: The audit line keys held (``audit_keys``); the lines added are added to it.
        held: The lines held by plant audit id (``held_lines``); the line added is added to it.
        stored_at: The hub time the message reached the hub's stream.
        now: The hub's time.
    """
    event = change.payload.event
    key = (change.plant_id, event.id)
    row = rows.get(key)
    epoch = _epoch_of(plant, stored_at)
    line = None if change.payload.change is None else _change_line(change.payload.change)
    is_held = False
    if line is not None and line.plant_audit_id is not None:
        held_lines = held[(change.plant_id, line.plant_audit_id)]
        content = _content(line)
        is_held = any(h.event_id == event.id and h.content == content for h in held_lines)
        if not is_held and epoch == plant.epoch and any(h.epoch == epoch for h in held_lines):
            epoch = _start_epoch(plant, stored_at, line.plant_audit_id)
    # a change the hub holds as it is brings no news of a newer epoch (a pending delivery sent again)
    record_epoch = min(epoch, row.epoch) if is_held and row is not None else epoch
    is_written = row is None or (record_epoch, event.version) > (row.epoch, row.version)
    if row is None:
        row = rows[key] = HubEventRow(
            plant_id=change.plant_id, event_id=event.id, resolved_at=None, snapshot_bytes=0
        )
        session.add(row)
    elif is_written and record_epoch > row.epoch:
        row.resolved_at = None  # settled in the history the plant went back from
    if is_written:
        row.epoch = record_epoch
        row.version = event.version
        row.revision = event.revision
        row.workshop_id = event.workshop_id
        row.camera_id = event.camera_id
        row.behaviour = event.behaviour.value
        row.severity = event.severity.value
        row.state = event.state.value
        row.started_at = event.started_at.timestamp()
        row.ended_at = _epoch(event.ended_at)
        row.created_at = event.created_at.timestamp()
        row.acknowledged_at = _epoch(event.acknowledged_at)
        row.escalated_at = _epoch(event.escalated_at)
        row.message = event.message
        row.event = event.model_dump(mode="json")
        row.sent_at = change.sent_at
        row.received_at = now
    raised_by_at = event.created_at.timestamp() + (stored_at - change.sent_at)
    row.raised_by_at = raised_by_at if row.raised_by_at is None else min(row.raised_by_at, raised_by_at)
    if change.snapshot_jpeg is not None and (is_written or not row.snapshot_bytes):
        row.snapshot_jpeg = change.snapshot_jpeg
        row.snapshot_bytes = len(change.snapshot_jpeg)
    lines = [
        HubAuditRow(
            key="raise",
            at=event.created_at.timestamp(),
            actor="pipeline",
            action="raise",
            to_state="raised",
            severity=event.detected_severity.value,
            note=event.message,
        )
    ]
    if line is not None:
        if line.to_state in _SETTLED_STATES and epoch >= row.epoch:
            row.resolved_at = line.at if row.resolved_at is None else min(row.resolved_at, line.at)
        if not is_held:
            if (change.plant_id, event.id, line.key) in seen:
                line.key = f"{line.key}.{_content_digest(_content(line))}"  # another change has the id
            if line.plant_audit_id is not None:
                held[(change.plant_id, line.plant_audit_id)].append(HeldLine(event.id, epoch, _content(line)))
            lines.append(line)
    added = 0
    for new in lines:
        if (change.plant_id, event.id, new.key) not in seen:  # a line the hub has: not again
            seen.add((change.plant_id, event.id, new.key))
            new.plant_id, new.event_id, new.is_from_hub = change.plant_id, event.id, False
            new.epoch = epoch
            session.add(new)
            added += 1
    return is_written, added


def _epoch_of(plant: HubPlantRow, stored_at: float) -> int:
    """The plant's epoch a message that reached the hub's stream at ``stored_at`` belongs to."""
    if plant.epoch_at is None or stored_at >= plant.epoch_at:
        return plant.epoch
    return max(plant.epoch - 1, 0)  # it came before the epoch began: a redelivery of the one before


def _start_epoch(plant: HubPlantRow, stored_at: float, audit_id: int) -> int:
    """Start the plant's next epoch at ``stored_at`` (it handed out ``audit_id`` again); returns it."""
    plant.epoch += 1
    plant.epoch_at = stored_at
    logger.warning(
        "hub: plant %s handed out its audit id %d again for another change: its database went back (restored "
        "from a backup?); its records from now on replace those it sent before, whatever their versions "
        "(epoch %d)",
        plant.id,
        audit_id,
        plant.epoch,
    )
    return plant.epoch


def _content(line: HubAuditRow) -> tuple[object, ...]:
    """What a plant's audit line says: two lines saying the same are one change."""
    return (
        line.at,
        line.actor,
        line.action,
        line.from_state,
        line.to_state,
        line.severity,
        line.assignee,
        line.note,
    )


def _content_digest(content: tuple[object, ...]) -> str:
    """A short digest of a line's content: the key of a change that got an audit id another change has."""
    return hashlib.sha256(repr(content).encode()).hexdigest()[:_DIGEST_HEX]


def _change_line(audit: AuditOut) -> HubAuditRow:
    """The audit line of a plant's lifecycle change, keyed ``a<plant audit id>``."""
    return HubAuditRow(
        key=f"a{audit.id}",
        plant_audit_id=audit.id,
        at=audit.at.timestamp(),
        actor=audit.actor,
        action=audit.action,
        from_state=None if audit.from_state is None else audit.from_state.value,
        to_state=audit.to_state.value,
        severity=audit.severity.value,
        assignee=audit.assignee,
        note=audit.note,
    )


def _epoch(value: datetime | None) -> float | None:
    """Epoch seconds of a time, or ``None``."""
    return None if value is None else value.timestamp()
