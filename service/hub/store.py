"""The hub's store: every plant's incidents, audit trails and camera and sensor health, written idempotently.

The bus delivers at least once (a message not acked before a crash comes again), and the
plants' outbox workers may publish one incident's announcements out of order. Each write
is therefore idempotent and order-free:

- an incident row is inserted once per (plant, incident) and replaced only by a higher
  (epoch, ``version``) (the plant bumps the version at every change; the epoch below);
- an audit line is keyed per (plant, incident): ``a<plant audit id>`` for a lifecycle
  change, ``raise`` for the raise, ``r<remark id>`` for a supervisor's remark, and a line
  the hub holds already is not written again;
- a plant's cameras and its sensors are each replaced as a set by a health report no
  older than the one they came from (a camera or sensor it no longer reports was removed
  from its site); an older report is ignored whole.

Each message comes with the hub time it reached the hub's stream (``stored_at``: JetStream's
timestamp, on the hub's clock, the same on every redelivery; by default the time it is
applied). Health reports are ordered by it, then by the plant's ``sent_at`` clamped to the
hub's clock plus ``_CLOCK_SKEW_S`` (that is ``reported_at``): a plant's stream carries its
reports in the order it sent them, so the newest report wins even after the plant's clock
was set back (no NTP, an RTC reset at a reboot: its reports were ignored as "older" and its
health froze), while a redelivered report, or one of a backlog applied late, never overwrites
a newer one. Not the stream sequence, which starts again at 1 when the hub's stream is
recreated (a server that lost its store). The clamp keeps a plant clock running ahead from
holding ``reported_at`` "next year". Each plant's clock offset is measured on its latest
report the same way (stream time minus ``sent_at``).

Overdue is judged in hub time. An incident's raise is put at the earlier of its
``created_at`` set right by the plant's current offset, and ``raised_by_at``: over its
messages, the earliest ``created_at + (stored_at - sent_at)``, its raise converted by the
offset its own message measured (transit included, so never too early unless the plant's
clock jumped forward between the raise and the send). So a clock set back after the raise
does not hide an overdue incident, and a backlog drained after an outage (long transit)
is judged by the plant's offset measured afresh.

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

``apply`` takes a batch of messages and writes them in one transaction, so the consumer
acks a batch only once it is durable.

Remarks. A supervisor's remark is stored first (``add_remark``), published by the consumer
(``mark_sent``), and delivered once its plant's ``RemarkReceipt`` comes (``delivered_at``;
plants older than this version send none). One the plant has not confirmed is published
again after ``resend_after_s`` (``unsent_remarks``), so it reaches a plant offline longer
than the commands stream keeps it; the plant writes it once.

Reads stay as cheap after years as after a day: the median response times cover the
incidents raised in the last ``response_window_s`` (each plant's latest
``_MEDIAN_SAMPLE`` at most), and ``prune_closed`` deletes incidents settled long ago, with
their snapshots and audit trails (the hub runs it every hour, ``hub.keep_closed_days``).
"""

from __future__ import annotations

import hashlib
import logging
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, case, delete, func, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from anjian.pipeline.event import RiskLevel
from anjian.service.bus.messages import (
    BusMessage,
    CameraReport,
    EventChange,
    HealthReport,
    RemarkReceipt,
    SensorReport,
    SupervisorRemark,
)
from anjian.service.config import SlaConfig, StorageConfig
from anjian.service.copying import copy_fields
from anjian.service.database import Database, sqlite_url
from anjian.service.hub.records import CameraStatus, HubAuditEntry, HubEvent, PlantSummary, SensorStatus
from anjian.service.hub.schema import upgrade_hub_database
from anjian.service.hub.tables import HubAuditRow, HubCameraRow, HubEventRow, HubPlantRow, HubSensorRow
from anjian.service.hub.tokens import HubTokens
from anjian.service.schemas import AuditOut

__all__ = ["OPEN_STATES", "ApplyResult", "HubStore"]

logger = logging.getLogger(__name__)

_ReportedRow = TypeVar("_ReportedRow", HubCameraRow, HubSensorRow)

OPEN_STATES: Final = ("raised", "acknowledged", "dispatched")
_SETTLED_STATES: Final = frozenset({"resolved", "false_alarm"})
_COLOUR_RANKS: Final = {level.value: RiskLevel.RED.rank - level.rank for level in RiskLevel}
"""Order of the colours in a listing of open incidents: red 0 ... blue 3 (an unknown colour after them)."""
_ACTION_REMARK: Final = "remark"
_ACTION_PRESS: Final = "press_for_action"
_CLOCK_SKEW_S: Final = 60.0  # how far ahead of the hub's clock a plant's report time is believed
_DAY_S: Final = 86_400.0
_MEDIAN_SAMPLE: Final = 1_000  # a plant's latest incidents in the window its medians are taken over, at most
_DIGEST_HEX: Final = 12  # hex digits of a line's content digest in the key of a change that got an id taken


def _is_later_clock_reading(plant: HubPlantRow, reading: tuple[float, float]) -> bool:
    """Whether a health report (stream time, sent_at) came after the one that last measured the plant's clock.

    The latest one to reach the hub's stream does: a backlog drained after an outage ends
    with the freshest one, whose transit is short; a clock set back is measured at once; a
    redelivered report, with the stream time it had, never measures it again.
    """
    if plant.clock_measured_at is None or plant.clock_sent_at is None:
        return True
    return reading > (plant.clock_measured_at, plant.clock_sent_at)


def _epoch_of(plant: HubPlantRow, stored_at: float) -> int:
    """The plant's epoch a message that reached the hub's stream at ``stored_at`` belongs to."""
    if plant.epoch_at is None or stored_at >= plant.epoch_at:
        return plant.epoch
    return max(plant.epoch - 1, 0)  # it came before the epoch began: a redelivery of the one before


@dataclass(frozen=True, slots=True)
class _HeldLine:
    """An audit line the hub holds under a plant audit id: its incident, epoch and content (``_content``)."""

    event_id: str
    epoch: int
    content: tuple[object, ...]


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


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one ``apply`` wrote.

    Attributes:
        events_written: Incident rows inserted or moved to a higher version.
        audit_written: Audit lines added.
        duplicates: Event messages that changed nothing (seen before, or older than what is stored).
        health_reports: Camera and sensor health reports applied.
        receipts: Remarks their plant confirmed for the first time.
    """

    events_written: int = 0
    audit_written: int = 0
    duplicates: int = 0
    health_reports: int = 0
    receipts: int = 0


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class HubStore:
    """The hub's incidents, audit trails, camera health and tokens; thread-safe.

    Args:
        database: A ``Database`` or a SQLAlchemy URL (PostgreSQL in production).
        clock: Epoch seconds.
        response_window_s: The medians of a plant's summary cover the incidents raised this
            long before (its latest ``_MEDIAN_SAMPLE`` at most).

    Raises:
        ValueError: ``response_window_s`` is not above 0.
    """

    def __init__(
        self,
        database: Database | str,
        *,
        clock: Callable[[], float] = time.time,
        response_window_s: float = 30 * _DAY_S,
    ) -> None:
        if not response_window_s > 0:
            raise ValueError(f"response_window_s must be > 0, got {response_window_s}")
        self._db = database if isinstance(database, Database) else Database(database)
        upgrade_hub_database(self._db.engine)
        self._clock = clock
        self._response_window_s = response_window_s
        self.tokens = HubTokens(self._db, clock=clock)

    @classmethod
    def from_config(
        cls,
        storage: StorageConfig,
        *,
        clock: Callable[[], float] = time.time,
        response_window_s: float = 30 * _DAY_S,
    ) -> HubStore:
        """The store the hub's ``storage:`` section names (SQLite in ``dir`` when no ``database_url``)."""
        storage.dir.mkdir(parents=True, exist_ok=True)
        return cls(
            storage.database_url or sqlite_url(storage.dir), clock=clock, response_window_s=response_window_s
        )

    @property
    def database(self) -> Database:
        """The shared database."""
        return self._db

    def close(self) -> None:
        """Close the pooled connections."""
        self._db.close()

    def ping(self) -> None:
        """Run a trivial query; raises ``sqlalchemy.exc.SQLAlchemyError`` when the database is unusable."""
        self._db.ping()

    # ------------------------------------------------------------- ingest

    def apply(
        self, messages: Sequence[BusMessage], *, stored_at: Sequence[float] | None = None
    ) -> ApplyResult:
        """Write a batch of plant messages in one transaction, idempotently (see the module docstring).

        Args:
            messages: The plant messages, in the order they reached the hub's stream.
            stored_at: Per message, the hub time it reached the hub's stream (JetStream's timestamp
                of the message, the same on every redelivery); default: now for each.

        Raises:
            ValueError: ``stored_at`` does not have one time per message.
            sqlalchemy.exc.SQLAlchemyError: The database failed; nothing was written.
        """
        now = self._clock()
        if stored_at is not None and len(stored_at) != len(messages):
            raise ValueError(f"expected a stored_at per message ({len(messages)}), got {len(stored_at)}")
        times = [now] * len(messages) if stored_at is None else list(stored_at)
        timed = list(zip(messages, times, strict=True))
        changes = [(m, at) for m, at in timed if isinstance(m, EventChange)]
        reports = [(m, at) for m, at in timed if isinstance(m, HealthReport)]
        receipts = [(m, at) for m, at in timed if isinstance(m, RemarkReceipt)]
        written = audits = duplicates = 0
        with self._db.write() as session:
            plants = self._touch_plants(session, timed, now)
            keys = {(c.plant_id, c.payload.event.id) for c, _ in changes}
            rows = self._event_rows(session, keys)
            seen = self._audit_keys(session, keys)
            held = self._held_lines(
                session,
                {(c.plant_id, c.payload.change.id) for c, _ in changes if c.payload.change is not None},
            )
            for change, at in changes:
                is_written, added = self._apply_change(
                    session, change, plants[change.plant_id], rows, seen, held, stored_at=at, now=now
                )
                written += is_written
                audits += added
                duplicates += not (is_written or added)
            for report, at in reports:
                reported_at = min(report.sent_at, now + _CLOCK_SKEW_S)
                self._apply_health(
                    session, plants[report.plant_id], report, reported_at=reported_at, stored_at=at
                )
            confirmed = self._apply_receipts(session, receipts)
        return ApplyResult(
            events_written=written,
            audit_written=audits,
            duplicates=duplicates,
            health_reports=len(reports),
            receipts=confirmed,
        )

    @staticmethod
    def _event_rows(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], HubEventRow]:
        if not keys:
            return {}
        query = select(HubEventRow).where(
            tuple_(HubEventRow.plant_id, HubEventRow.event_id).in_(sorted(keys))
        )
        return {(row.plant_id, row.event_id): row for row in session.scalars(query.with_for_update())}

    @staticmethod
    def _audit_keys(session: Session, keys: set[tuple[str, str]]) -> set[tuple[str, str, str]]:
        if not keys:
            return set()
        query = select(HubAuditRow.plant_id, HubAuditRow.event_id, HubAuditRow.key).where(
            tuple_(HubAuditRow.plant_id, HubAuditRow.event_id).in_(sorted(keys))
        )
        return {(p, e, k) for p, e, k in session.execute(query)}

    @staticmethod
    def _held_lines(session: Session, keys: set[tuple[str, int]]) -> dict[tuple[str, int], list[_HeldLine]]:
        """The lines the hub holds under these (plant, plant audit id), on any incident."""
        held: dict[tuple[str, int], list[_HeldLine]] = defaultdict(list)
        if keys:
            query = select(HubAuditRow).where(
                tuple_(HubAuditRow.plant_id, HubAuditRow.plant_audit_id).in_(sorted(keys))
            )
            for row in session.scalars(query):
                if row.plant_audit_id is not None:
                    held[(row.plant_id, row.plant_audit_id)].append(
                        _HeldLine(row.event_id, row.epoch, _content(row))
                    )
        return held

    def _apply_change(
        self,
        session: Session,
        change: EventChange,
        plant: HubPlantRow,
        rows: dict[tuple[str, str], HubEventRow],
        seen: set[tuple[str, str, str]],
        held: dict[tuple[str, int], list[_HeldLine]],
        *,
        stored_at: float,
        now: float,
    ) -> tuple[bool, int]:
        """Apply one announcement; returns (incident row written, audit lines added)."""
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
                    held[(change.plant_id, line.plant_audit_id)].append(
                        _HeldLine(event.id, epoch, _content(line))
                    )
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

    @staticmethod
    def _apply_health(
        session: Session, plant: HubPlantRow, report: HealthReport, *, reported_at: float, stored_at: float
    ) -> None:
        """Replace the plant's cameras and sensors by the report's, unless they came from a later report.

        Reports are ordered by ``stored_at`` (when each reached the hub's stream), then by
        ``reported_at`` (the plant's clamped time, for reports given the same hub time). One as
        late as the stored one is written: reports clamped to the same time end in the last
        one's state. The plant row remembers the report applied, so an older one is ignored
        even after a report that listed nothing.
        """
        if plant.health_stored_at is not None and (
            plant.health_stored_at,
            plant.health_reported_at or 0.0,
        ) > (
            stored_at,
            reported_at,
        ):
            return
        cameras = _reported_rows(session, HubCameraRow, HubCameraRow.camera_id, report.plant_id)
        sensors = _reported_rows(session, HubSensorRow, HubSensorRow.sensor_id, report.plant_id)
        _replace_reported(
            session,
            HubCameraRow,
            HubCameraRow.camera_id,
            report.plant_id,
            cameras,
            report.cameras,
            reported_at,
        )
        _replace_reported(
            session,
            HubSensorRow,
            HubSensorRow.sensor_id,
            report.plant_id,
            sensors,
            report.sensors,
            reported_at,
        )
        plant.health_reported_at = reported_at
        plant.health_stored_at = stored_at

    @staticmethod
    def _apply_receipts(session: Session, receipts: Sequence[tuple[RemarkReceipt, float]]) -> int:
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

    @staticmethod
    def _touch_plants(
        session: Session, messages: Sequence[tuple[BusMessage, float]], now: float
    ) -> dict[str, HubPlantRow]:
        """Count each plant's messages, note when it was heard, and measure its clock on its latest report.

        Args:
            session: The write session.
            messages: Each message with the hub time it reached the hub's stream.
            now: The hub's time.

        Returns:
            The row of each plant in ``messages``, by id.
        """
        counts: dict[str, int] = defaultdict(int)
        latest_report: dict[str, tuple[float, float]] = {}  # plant: (stream time, sent_at) of its latest
        for message, stored_at in messages:
            counts[message.plant_id] += 1
            if isinstance(message, HealthReport):
                reading = (stored_at, message.sent_at)
                if message.plant_id not in latest_report or reading > latest_report[message.plant_id]:
                    latest_report[message.plant_id] = reading
        rows: dict[str, HubPlantRow] = {}
        for plant_id, count in counts.items():
            row = session.get(HubPlantRow, plant_id, with_for_update=True)
            if row is None:
                row = HubPlantRow(id=plant_id, last_message_at=now, messages=0, epoch=0)
                session.add(row)
            rows[plant_id] = row
            row.last_message_at = now
            row.messages += count
            latest = latest_report.get(plant_id)
            if latest is not None and _is_later_clock_reading(row, latest):
                stored_at, sent_at = latest
                row.clock_offset_s = stored_at - sent_at
                row.clock_sent_at = sent_at
                row.clock_measured_at = stored_at
        return rows

    # ------------------------------------------------------------ remarks

    def add_remark(
        self, plant_id: str, event_id: str, *, actor: str, note: str, is_press_for_action: bool
    ) -> SupervisorRemark:
        """Record a supervisor's remark in the incident's audit trail here, to be sent to the plant.

        Raises:
            KeyError: The hub has no such incident.
            ValueError: The note is blank or longer than 4000 characters.
        """
        note = note.strip()
        if not 1 <= len(note) <= 4000:
            raise ValueError(f"a remark needs a note of 1-4000 characters, got {len(note)}")
        remark = SupervisorRemark(
            id=uuid.uuid4().hex,
            plant_id=plant_id,
            event_id=event_id,
            actor=actor,
            note=note,
            is_press_for_action=is_press_for_action,
            at=self._clock(),
        )
        with self._db.write() as session:
            row = session.get(HubEventRow, (plant_id, event_id))
            if row is None:
                raise KeyError(f"no event {event_id!r} of plant {plant_id!r}")
            session.add(
                HubAuditRow(
                    plant_id=plant_id,
                    event_id=event_id,
                    key=f"r{remark.id}",
                    at=remark.at,
                    actor=actor,
                    action=_ACTION_PRESS if is_press_for_action else _ACTION_REMARK,
                    note=note,
                    is_from_hub=True,
                )  # no state change, colour or assignee; sent_at: once the bus takes it
            )
        return remark

    def unsent_remarks(
        self, limit: int = 100, *, resend_after_s: float | None = None
    ) -> list[SupervisorRemark]:
        """Remarks the bus has not taken yet, oldest first; also those sent ``resend_after_s`` ago unconfirmed.

        Args:
            limit: The most returned.
            resend_after_s: A remark its plant has not confirmed (no ``RemarkReceipt``) is due
                again this long after it was last sent, so it never ages out of the commands
                stream before an offline plant comes back; ``None``: never.
        """
        is_due: ColumnElement[bool] = HubAuditRow.sent_at.is_(None)
        if resend_after_s is not None:
            is_due = is_due | (
                HubAuditRow.delivered_at.is_(None) & (HubAuditRow.sent_at < self._clock() - resend_after_s)
            )
        query = (
            select(HubAuditRow)
            .where(HubAuditRow.is_from_hub.is_(True), is_due)
            .order_by(HubAuditRow.id)
            .limit(limit)
        )
        with self._db.read() as session:
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

    def mark_sent(self, remark: SupervisorRemark) -> None:
        """Record that the bus took the remark (again: its last time is kept until the plant confirms it)."""
        with self._db.write() as session:
            row = session.scalars(
                select(HubAuditRow).where(
                    HubAuditRow.plant_id == remark.plant_id,
                    HubAuditRow.event_id == remark.event_id,
                    HubAuditRow.key == f"r{remark.id}",
                )
            ).first()
            if row is not None and row.delivered_at is None:
                row.sent_at = self._clock()

    # ---------------------------------------------------------- retention

    def prune_closed(self, *, closed_before: float, batch: int = 500) -> int:
        """Delete incidents no longer open that the hub last heard of before ``closed_before`` (epoch s).

        Their snapshots (stored in the row) and audit trails, remarks included, go with them.
        Open incidents (raised, acknowledged, dispatched) are never deleted, however old. A plant
        that later announces a deleted incident again (a late close) brings it back as a new row.
        Deletes ``batch`` incidents a transaction, so the consumer's writes wait at most one
        short transaction for it.

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
            with self._db.write() as session:
                keys = session.execute(
                    select(HubEventRow.plant_id, HubEventRow.event_id)
                    .where(HubEventRow.received_at < closed_before, HubEventRow.state.not_in(OPEN_STATES))
                    .limit(batch)
                ).all()
                if keys:
                    pairs = [tuple(key) for key in keys]
                    session.execute(
                        delete(HubAuditRow).where(
                            tuple_(HubAuditRow.plant_id, HubAuditRow.event_id).in_(pairs)
                        )
                    )
                    session.execute(
                        delete(HubEventRow).where(
                            tuple_(HubEventRow.plant_id, HubEventRow.event_id).in_(pairs)
                        )
                    )
            deleted += len(keys)
            if len(keys) < batch:
                return deleted

    # -------------------------------------------------------------- reads

    def summaries(
        self, plants: Sequence[tuple[str, str, str]], sla: SlaConfig, *, now: float | None = None
    ) -> list[PlantSummary]:
        """One summary per plant (id, name, group), in the order given.

        The median response times cover the incidents each plant raised in the last
        ``response_window_s`` (by its clock, set right by its measured offset), its latest
        ``_MEDIAN_SAMPLE`` at most.

        Args:
            plants: The plants to summarise (the caller's scope).
            sla: The acknowledge deadlines that make a raised incident overdue (its raise in hub time: the
                earlier of ``created_at`` set right by the plant's offset and ``raised_by_at``).
            now: Epoch seconds; default the store's clock.
        """
        now = self._clock() if now is None else now
        ids = [p[0] for p in plants]
        open_by: dict[str, dict[str, int]] = defaultdict(dict)
        overdue: dict[str, int] = defaultdict(int)
        acknowledge: dict[str, list[float]] = defaultdict(list)
        resolve: dict[str, list[float]] = defaultdict(list)
        cameras: dict[str, dict[str, int]] = defaultdict(dict)
        sensors: dict[str, dict[str, int]] = defaultdict(dict)
        with self._db.read() as session:
            for plant_id, severity, count in session.execute(
                select(HubEventRow.plant_id, HubEventRow.severity, func.count())
                .where(HubEventRow.plant_id.in_(ids), HubEventRow.state.in_(OPEN_STATES))
                .group_by(HubEventRow.plant_id, HubEventRow.severity)
            ):
                open_by[plant_id][severity] = int(count)
            plants_rows = {
                row.id: row for row in session.scalars(select(HubPlantRow).where(HubPlantRow.id.in_(ids)))
            }
            for plant_id, severity, created_at, raised_by_at in session.execute(
                select(
                    HubEventRow.plant_id,
                    HubEventRow.severity,
                    HubEventRow.created_at,
                    HubEventRow.raised_by_at,
                ).where(HubEventRow.plant_id.in_(ids), HubEventRow.state == "raised")
            ):
                plant = plants_rows.get(plant_id)
                offset = (
                    plant.clock_offset_s if plant is not None and plant.clock_offset_s is not None else 0.0
                )
                raised_at = created_at + offset  # the raise in the hub's time, by the plant's clock now
                if raised_by_at is not None:  # ... unless its own message puts it earlier (a clock set back)
                    raised_at = min(raised_at, raised_by_at)
                if now - raised_at > sla.deadline_s(severity):
                    overdue[plant_id] += 1
            for plant_id in ids:  # each its latest incidents in the window: bounded however much is stored
                plant = plants_rows.get(plant_id)
                offset = (
                    plant.clock_offset_s if plant is not None and plant.clock_offset_s is not None else 0.0
                )
                for created_at, acknowledged_at, resolved_at in session.execute(
                    select(HubEventRow.created_at, HubEventRow.acknowledged_at, HubEventRow.resolved_at)
                    .where(
                        HubEventRow.plant_id == plant_id,
                        HubEventRow.created_at >= now - offset - self._response_window_s,  # plant time
                        (HubEventRow.acknowledged_at.is_not(None)) | (HubEventRow.resolved_at.is_not(None)),
                    )
                    .order_by(HubEventRow.created_at.desc())
                    .limit(_MEDIAN_SAMPLE)
                ):
                    if acknowledged_at is not None:
                        acknowledge[plant_id].append(max(0.0, acknowledged_at - created_at))
                    if resolved_at is not None:
                        resolve[plant_id].append(max(0.0, resolved_at - created_at))
            for plant_id, state, count in session.execute(
                select(HubCameraRow.plant_id, HubCameraRow.state, func.count())
                .where(HubCameraRow.plant_id.in_(ids))
                .group_by(HubCameraRow.plant_id, HubCameraRow.state)
            ):
                cameras[plant_id][state] = int(count)
            for plant_id, state, count in session.execute(
                select(HubSensorRow.plant_id, HubSensorRow.state, func.count())
                .where(HubSensorRow.plant_id.in_(ids))
                .group_by(HubSensorRow.plant_id, HubSensorRow.state)
            ):
                sensors[plant_id][state] = int(count)
        return [
            PlantSummary(
                plant_id=plant_id,
                name=name,
                group=group,
                open_by_colour=dict(open_by[plant_id]),
                overdue=overdue[plant_id],
                acknowledge_median_s=statistics.median(acknowledge[plant_id])
                if acknowledge[plant_id]
                else None,
                resolve_median_s=statistics.median(resolve[plant_id]) if resolve[plant_id] else None,
                cameras_by_state=dict(cameras[plant_id]),
                sensors_by_state=dict(sensors[plant_id]),
                last_message_at=plants_rows[plant_id].last_message_at if plant_id in plants_rows else None,
                clock_offset_s=plants_rows[plant_id].clock_offset_s if plant_id in plants_rows else None,
            )
            for plant_id, name, group in plants
        ]

    def list_events(
        self, plant_ids: Iterable[str], *, is_open: bool | None = None, limit: int = 200
    ) -> list[HubEvent]:
        """The incidents of these plants; only open (or only closed) ones when asked.

        Open ones come most urgent first, as a supervisor works them: raised (nobody has taken it
        on) before acknowledged and dispatched, then by colour (red first), then the oldest first,
        so that a list cut at ``limit`` drops the least urgent rather than the longest overdue.
        Otherwise newest first.
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
        with self._db.read() as session:
            return [_event(row) for row in session.scalars(query.limit(limit))]

    def count_listed(self, plant_ids: Iterable[str], *, is_open: bool | None = None) -> int:
        """How many incidents ``list_events`` has to list without its limit (the "200 of N" of a cut list)."""
        query = select(func.count()).select_from(HubEventRow).where(*_listing(plant_ids, is_open))
        with self._db.read() as session:
            return int(session.execute(query).scalar_one())

    def get_event(self, plant_id: str, event_id: str) -> HubEvent | None:
        """One incident, or ``None``."""
        with self._db.read() as session:
            row = session.get(HubEventRow, (plant_id, event_id))
            return None if row is None else _event(row)

    def snapshot(self, plant_id: str, event_id: str) -> bytes | None:
        """The incident's snapshot JPEG, or ``None``."""
        with self._db.read() as session:
            return session.scalars(
                select(HubEventRow.snapshot_jpeg).where(
                    HubEventRow.plant_id == plant_id, HubEventRow.event_id == event_id
                )
            ).first()

    def audit_trail(self, plant_id: str, event_id: str) -> list[HubAuditEntry]:
        """The incident's audit lines and remarks, oldest first."""
        query = (
            select(HubAuditRow)
            .where(HubAuditRow.plant_id == plant_id, HubAuditRow.event_id == event_id)
            .order_by(HubAuditRow.at, HubAuditRow.id)
        )
        with self._db.read() as session:
            return [copy_fields(HubAuditEntry, row) for row in session.scalars(query)]

    def cameras(self, plant_ids: Iterable[str]) -> list[CameraStatus]:
        """The cameras of these plants as last reported, by plant and camera."""
        rows = self._reported(HubCameraRow, HubCameraRow.camera_id, plant_ids)
        return [copy_fields(CameraStatus, row) for row in rows]

    def sensors(self, plant_ids: Iterable[str]) -> list[SensorStatus]:
        """The sensors of these plants as last reported, by plant and sensor."""
        rows = self._reported(HubSensorRow, HubSensorRow.sensor_id, plant_ids)
        return [copy_fields(SensorStatus, row, open_kinds=tuple(row.open_kinds)) for row in rows]

    def _reported(
        self, table: type[_ReportedRow], key: InstrumentedAttribute[str], plant_ids: Iterable[str]
    ) -> list[_ReportedRow]:
        """The rows of a per-plant health table for these plants, by plant and ``key`` (detached, loaded)."""
        query = select(table).where(table.plant_id.in_(list(plant_ids))).order_by(table.plant_id, key)
        with self._db.read() as session:
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows

    def count_events(self, plant_id: str | None = None) -> int:
        """How many incidents the hub holds (of one plant)."""
        query = select(func.count()).select_from(HubEventRow)
        if plant_id is not None:
            query = query.where(HubEventRow.plant_id == plant_id)
        with self._db.read() as session:
            return int(session.execute(query).scalar_one())

    def count_audit(self, plant_id: str | None = None, *, action: str | None = None) -> int:
        """How many audit lines the hub holds (of one plant, of one action)."""
        query = select(func.count()).select_from(HubAuditRow)
        if plant_id is not None:
            query = query.where(HubAuditRow.plant_id == plant_id)
        if action is not None:
            query = query.where(HubAuditRow.action == action)
        with self._db.read() as session:
            return int(session.execute(query).scalar_one())


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


def _set_columns(row: HubCameraRow | HubSensorRow, report: BaseModel, **extra: object) -> None:
    """Set each of ``row``'s columns that ``report`` (a camera's or sensor's report) has, in its JSON form."""
    columns = row.__table__.columns.keys()
    for name, value in {**report.model_dump(mode="json"), **extra}.items():
        if name in columns:
            setattr(row, name, value)


def _reported_rows(
    session: Session, table: type[_ReportedRow], key: InstrumentedAttribute[str], plant_id: str
) -> dict[str, _ReportedRow]:
    """A plant's rows of a health table by camera or sensor id (``key``), locked for the transaction."""
    query = select(table).where(table.plant_id == plant_id).with_for_update()
    return {getattr(row, key.key): row for row in session.scalars(query)}


def _replace_reported(
    session: Session,
    table: type[_ReportedRow],
    key: InstrumentedAttribute[str],
    plant_id: str,
    rows: dict[str, _ReportedRow],
    reports: Sequence[CameraReport] | Sequence[SensorReport],
    reported_at: float,
) -> None:
    """Replace a plant's ``rows`` of a health table (by ``key``) by ``reports``; a row none names is deleted."""
    for report in reports:
        report_id = getattr(report, key.key)
        row = rows.pop(report_id, None)
        if row is None:
            row = table(plant_id=plant_id, **{key.key: report_id})
            session.add(row)
        _set_columns(row, report, reported_at=reported_at)
    for removed in rows.values():  # no longer on the plant's site
        session.delete(removed)


def _listing(plant_ids: Iterable[str], is_open: bool | None) -> list[ColumnElement[bool]]:
    """The conditions of an incident listing: these plants, only open (or only closed) ones when asked."""
    conditions: list[ColumnElement[bool]] = [HubEventRow.plant_id.in_(list(plant_ids))]
    if is_open is True:
        conditions.append(HubEventRow.state.in_(OPEN_STATES))
    elif is_open is False:
        conditions.append(HubEventRow.state.not_in(OPEN_STATES))
    return conditions


def _event(row: HubEventRow) -> HubEvent:
    return copy_fields(HubEvent, row, has_snapshot=row.snapshot_bytes > 0)
