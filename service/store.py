"""The event store: incidents, their alert lifecycle and audit trail, announced through the outbox.

``EventStore`` is the one object the rest of the service holds: it owns the
``Database`` and exposes the outbox (``store.outbox``), the webhook subscriptions
(``store.subscriptions``) and the API tokens (``store.tokens``) that share it.

Every change to an event happens in one transaction together with its audit line
and its webhook deliveries (``anjian.service.outbox.enqueue``): a detection revision
(``upsert_event``), an operator's action (``transition``), an escalation
(``escalate_overdue``). A crash therefore never leaves a change unannounced.

The store is safe to share between threads: each call opens its own short session.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from anjian.pipeline.event import Behaviour, Event, RiskLevel
from anjian.service.config import SlaConfig, StorageConfig
from anjian.service.database import Database, sqlite_url
from anjian.service.errors import DatabaseError, InvalidTransitionError, RevisionConflictError
from anjian.service.lifecycle import (
    Action,
    AlertState,
    allowed_actions,
    escalated_severity,
    kind_of_action,
    next_state,
)
from anjian.service.outbox import Outbox, active_subscriptions, enqueue
from anjian.service.records import AuditEntry, StoredEvent, apply_event, audit_from_row, event_from_row
from anjian.service.schemas import WebhookKind, WebhookPayload
from anjian.service.storable_text import unstorable_reason
from anjian.service.subscriptions import SubscriptionStore
from anjian.service.tables import AuditRow, EventRow
from anjian.service.tokens import TokenStore

__all__ = ["ACTOR_PIPELINE", "ACTOR_SYSTEM", "EventPage", "EventStore", "TransitionResult", "UpsertResult"]

logger = logging.getLogger(__name__)

ACTOR_PIPELINE = "pipeline"
ACTOR_SYSTEM = "system"
_MAX_NOTE_CHARS = 4000
_ESCALATION_CHUNK = 200
_AUDIT_IDS_PER_QUERY = 500
"""Event ids in one ``IN (...)`` of ``audit_trails`` (older SQLite allows 999 parameters a statement)."""
_CLOCK_STEP_S = 1.0
"""A raised alert's colour reached this far after the escalator's now means the clock went back."""


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What ``EventStore.upsert_event`` did.

    Attributes:
        event: The stored event after the call (unchanged when not applied).
        is_applied: ``False`` when the revision was stale or a duplicate and was ignored.
        deliveries_enqueued: Webhook deliveries added to the outbox by this call.
    """

    event: StoredEvent
    is_applied: bool
    deliveries_enqueued: int


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """What ``EventStore.transition`` did: the alert after the action and its audit line."""

    event: StoredEvent
    audit: AuditEntry
    deliveries_enqueued: int


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of ``EventStore.list_events``.

    Attributes:
        items: Events, newest ``started_at`` first.
        next_cursor: Opaque cursor of the next (older) page, or ``None`` on the last one.
    """

    items: list[StoredEvent]
    next_cursor: str | None


def _encode_cursor(event: StoredEvent) -> str:
    """An opaque cursor positioned after ``event`` in list order."""
    raw = json.dumps([event.started_at, event.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    """The (started_at, id) a cursor points after; ``ValueError`` for a malformed one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started_at, event_id = json.loads(raw)
        if (
            isinstance(started_at, bool)
            or not isinstance(started_at, int | float)
            or not isinstance(event_id, str)
        ):
            raise TypeError
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed cursor {cursor[:40]!r}; pass next_cursor from a previous page") from exc
    reason = unstorable_reason(event_id)
    if reason is not None:
        raise ValueError(
            f"malformed cursor {cursor[:40]!r}: its event id {reason}; pass next_cursor from a previous page"
        )
    return float(started_at), event_id


def _audit_row(
    row: EventRow,
    *,
    actor: str,
    action: str,
    from_state: AlertState | None,
    note: str,
    assignee: str | None = None,
) -> AuditRow:
    """A new audit line for ``row`` as it is now (not yet added to a session)."""
    return AuditRow(
        event_id=row.id,
        at=row.updated_at,
        actor=actor[:200],
        action=action,
        from_state=None if from_state is None else from_state.value,
        to_state=row.state,
        severity=row.severity,
        assignee=assignee,
        note=note[:_MAX_NOTE_CHARS],
    )


_IDENTITY_FIELDS = ("site_id", "workshop_id", "camera_id", "behaviour")
"""What identifies an incident: no later revision may change it (its evidence is filed under the camera)."""


def _check_identity(row: EventRow, ev: Event) -> None:
    """Raise ``RevisionConflictError`` when ``ev`` gives the stored incident another site, workshop, camera or behaviour."""
    for field in _IDENTITY_FIELDS:
        stored, received = str(getattr(row, field)), str(getattr(ev, field))
        if stored != received:
            raise RevisionConflictError(ev.id, ev.revision, field, stored, received)


def _append_audit(session: Session, audit: AuditRow) -> AuditEntry:
    """Add an audit line (from ``_audit_row``) and return it, with its id."""
    session.add(audit)
    session.flush()
    return audit_from_row(audit)


class EventStore:
    """Stores incidents and their lifecycle; holds the outbox, subscriptions and tokens; thread-safe.

    Args:
        database: A ``Database`` or a SQLAlchemy URL (``sqlite:///data/anjian.db``,
            ``postgresql+psycopg://…``) to open one with.
        clock: Returns epoch seconds; stamps every change. Inject a fake one in tests.
        busy_timeout_s: How long a SQLite write waits for another writer (URL only).
        is_auto_migrate: Apply pending migrations when opening a URL.

    Example:
        >>> store = EventStore.from_config(config.storage)
        >>> store.upsert_event(event)
        >>> store.transition(event.id, Action.ACKNOWLEDGE, actor="duty-officer")
    """

    def __init__(
        self,
        database: Database | str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 5.0,
        is_auto_migrate: bool = True,
    ) -> None:
        self._clock = clock
        if isinstance(database, str):
            database = Database(database, busy_timeout_s=busy_timeout_s, is_auto_migrate=is_auto_migrate)
        self._db = database
        self.outbox = Outbox(database, clock=clock)
        self.subscriptions = SubscriptionStore(database, clock=clock)
        self.tokens = TokenStore(database, clock=clock)

    @classmethod
    def from_config(cls, storage: StorageConfig, *, clock: Callable[[], float] = time.time) -> EventStore:
        """Open the store the ``storage:`` section describes, creating the data folder if needed.

        Raises:
            DatabaseError: The data folder cannot be made (a file has its name, no permission), or
                the database cannot be opened or migrated.
        """
        try:
            storage.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"storage.dir {storage.dir}: cannot make the data folder: {exc.strerror or exc}"
            ) from None
        return cls(
            storage.database_url or sqlite_url(storage.dir),
            clock=clock,
            is_auto_migrate=storage.is_auto_migrate,
        )

    @classmethod
    def open_existing(cls, storage: StorageConfig, *, purpose: str) -> EventStore:
        """Open a site's store to read what it has stored, migrated to the head; create nothing.

        For commands that read a site's alerts (harvest, reports): a mistyped
        ``storage.dir`` must say so, not report nothing from a new empty database.

        Args:
            storage: The site's ``storage:`` section.
            purpose: What the caller reads, for the error ("harvest reads the alerts a site has stored").

        Raises:
            DatabaseError: ``storage.dir`` holds no SQLite database (and no ``database_url`` is
                set), or the database cannot be opened or migrated.
        """
        if storage.database_url is None:
            database = Path(sqlite_url(storage.dir).removeprefix("sqlite:///"))
            if not database.is_file():
                raise DatabaseError(
                    f"no event database at {database}: is storage.dir the site's data folder? ({purpose}; it creates nothing)"
                )
        return cls.from_config(storage.model_copy(update={"is_auto_migrate": True}))

    @property
    def database(self) -> Database:
        """The shared database."""
        return self._db

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and health checks)."""
        return self._db.engine

    def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        self._db.close()

    def ping(self) -> None:
        """Run a trivial query; raises ``sqlalchemy.exc.SQLAlchemyError`` when the database is unusable."""
        self._db.ping()

    def now(self) -> float:
        """The time (epoch seconds) this store stamps changes with: what readers of ``updated_at`` compare to."""
        return self._clock()

    # ------------------------------------------------------------ detections

    def upsert_event(self, ev: Event, *, snapshot_path: str | None = None) -> UpsertResult:
        """Store a detection revision and, in the same transaction, enqueue its webhook deliveries.

        A new id is inserted (state raised, with a ``raise`` audit line). A known id
        is updated only when ``ev.revision`` is higher than the stored one; a stale
        or duplicate revision is ignored (and enqueues nothing), so re-sending is harmless.
        A revision that gives a known id another site, workshop, camera or behaviour is refused.

        Args:
            ev: The revision; ``ev.snapshot_jpeg`` is not stored here (see ``EvidenceStore``).
            snapshot_path: Relative path of a snapshot written for this revision;
                ``None`` keeps the stored one.

        Raises:
            RevisionConflictError: The revision changes the stored incident's site, workshop,
                camera or behaviour (nothing is stored).
            sqlalchemy.exc.SQLAlchemyError: The database failed.
        """
        return self.upsert_events([(ev, snapshot_path)])[0]

    def upsert_events(self, items: Sequence[tuple[Event, str | None]]) -> list[UpsertResult]:
        """Store many detection revisions in one transaction, each as ``upsert_event`` would.

        What the ingest writer (``anjian.service.sink``) calls with every revision that
        arrived while the previous transaction ran: one commit for all of them. They
        are applied in order, so a batch may hold several revisions of one event.

        Args:
            items: Each revision with the snapshot path written for it (or ``None``).

        Returns:
            One result per item, in order.

        Raises:
            RevisionConflictError: A revision changes its stored incident's site, workshop, camera
                or behaviour (nothing was stored; the writer stores the others again without it).
            sqlalchemy.exc.SQLAlchemyError: The database failed (nothing was stored).
        """
        if not items:
            return []
        try:
            return self._upsert_batch(items)
        except IntegrityError:
            # Another writer inserted one of the ids between our read and our insert
            # (possible on PostgreSQL; SQLite serialises writers): redo it, as updates.
            logger.info("%d event revision(s): an event was inserted concurrently; retrying", len(items))
        return self._upsert_batch(items)

    def stored_revisions(self, event_ids: Iterable[str]) -> dict[str, int]:
        """The stored revision of each of these events that exists (to skip stale snapshots)."""
        ids = sorted(set(event_ids))
        if not ids:
            return {}
        with self._db.read() as session:
            query = select(EventRow.id, EventRow.revision).where(EventRow.id.in_(ids))
            return {event_id: int(revision) for event_id, revision in session.execute(query)}

    def _upsert_batch(self, items: Sequence[tuple[Event, str | None]]) -> list[UpsertResult]:
        """One transaction of ``upsert_events``."""
        now = self._clock()
        ids = sorted({ev.id for ev, _ in items})
        results: list[UpsertResult] = []
        applied: list[
            tuple[int, StoredEvent, str | None]
        ] = []  # index in results, the event after, its colour before
        audits: list[AuditRow] = []
        with self._db.write() as session:
            rows = {
                row.id: row
                for row in session.scalars(select(EventRow).where(EventRow.id.in_(ids)).with_for_update())
            }
            subscriptions = active_subscriptions(session)
            for ev, snapshot_path in items:
                row = rows.get(ev.id)
                if row is not None:
                    _check_identity(row, ev)
                if row is not None and row.revision >= ev.revision:
                    logger.debug(
                        "%s: ignoring revision %d of event %s (stored: %d)",
                        ev.camera_id,
                        ev.revision,
                        ev.id,
                        row.revision,
                    )
                    results.append(UpsertResult(event_from_row(row), is_applied=False, deliveries_enqueued=0))
                    continue
                is_new = row is None
                if row is None:
                    row = rows[ev.id] = EventRow(
                        id=ev.id,
                        state=AlertState.RAISED.value,
                        severity="",
                        escalations=0,
                        version=0,
                        created_at=now,
                        state_changed_at=now,
                    )
                    session.add(row)
                previous_severity = None if is_new else row.severity
                apply_event(row, ev)
                if is_new or RiskLevel(row.severity).rank > RiskLevel(previous_severity or row.severity).rank:
                    row.severity_since = now  # the colour's SLA deadline runs from here
                if snapshot_path is not None:
                    row.snapshot_path = snapshot_path
                row.version += 1
                row.updated_at = now
                if is_new:
                    audits.append(
                        _audit_row(
                            row, actor=ACTOR_PIPELINE, action="raise", from_state=None, note=ev.message
                        )
                    )
                stored = event_from_row(row)
                applied.append((len(results), stored, previous_severity))
                results.append(UpsertResult(stored, is_applied=True, deliveries_enqueued=0))
            session.flush()  # the new events first: their audit lines and deliveries point at them
            session.add_all(audits)
            for index, event, previous_severity in applied:
                count = enqueue(
                    session,
                    event,
                    kind=WebhookPayload.kind_of(event),
                    change=None,
                    now=now,
                    subscriptions=subscriptions,
                    previous_severity=previous_severity,
                )
                results[index] = UpsertResult(event=event, is_applied=True, deliveries_enqueued=count)
        return results

    def attach_clip(self, event_id: str, clip_path: str) -> StoredEvent:
        """Record the clip of an event (relative to the data folder).

        Raises:
            KeyError: No event has this id.
        """
        with self._db.write() as session:
            row = self._event_row(session, event_id)
            row.clip_path = clip_path
            row.version += 1
            row.updated_at = self._clock()
            return event_from_row(row)

    # -------------------------------------------------------------- lifecycle

    def transition(
        self,
        event_id: str,
        action: Action | str,
        *,
        actor: str,
        note: str = "",
        assignee: str | None = None,
    ) -> TransitionResult:
        """Move an alert through its lifecycle, write the audit line and announce it, in one transaction.

        Args:
            event_id: The alert.
            action: What is done.
            actor: Who does it (an API token's name).
            note: Work-order note (dispatch), disposal note (resolve), reason
                (false_alarm) or a comment; at most 4000 characters.
            assignee: Who is dispatched; required for ``dispatch``, ignored otherwise.

        Raises:
            KeyError: No event has this id.
            InvalidTransitionError: The action is not allowed from the alert's state.
            ValueError: ``dispatch`` without an assignee, or a note that is too long.
        """
        action = Action(action)
        if len(note) > _MAX_NOTE_CHARS:
            raise ValueError(f"a note may have at most {_MAX_NOTE_CHARS} characters, got {len(note)}")
        if action is Action.DISPATCH and not (assignee and assignee.strip()):
            raise ValueError("dispatch needs an assignee")
        now = self._clock()
        with self._db.write() as session:
            row = session.scalars(select(EventRow).where(EventRow.id == event_id).with_for_update()).first()
            if row is None:
                raise KeyError(f"no event with id {event_id!r}")
            state = AlertState(row.state)
            target = next_state(state, action)
            if target is None:
                raise InvalidTransitionError(
                    state.value, action.value, [a.value for a in allowed_actions(state)]
                )
            row.state = target.value
            row.state_changed_at = now
            if state is AlertState.RAISED and row.acknowledged_at is None:
                row.acknowledged_at = now  # acknowledged, or marked a false alarm at once
            if action is Action.DISPATCH:
                row.assignee = (assignee or "").strip()
            row.version += 1
            row.updated_at = now
            session.flush()
            audit = _append_audit(
                session,
                _audit_row(
                    row,
                    actor=actor,
                    action=action.value,
                    from_state=state,
                    note=note,
                    assignee=row.assignee if action is Action.DISPATCH else None,
                ),
            )
            stored = event_from_row(row)
            kind: WebhookKind = kind_of_action(action)  # type: ignore[assignment]
            count = enqueue(session, stored, kind=kind, change=audit, now=now)
        logger.info(
            "%s: %s %s event %s (%s → %s)", stored.camera_id, actor, action.value, event_id, state, target
        )
        return TransitionResult(event=stored, audit=audit, deliveries_enqueued=count)

    def escalate_overdue(self, sla: SlaConfig, *, chunk: int = _ESCALATION_CHUNK) -> list[StoredEvent]:
        """Escalate every raised alert not acknowledged within its colour's deadline.

        The deadline runs from when the alert reached its current colour: when it was
        stored, escalated, or raised to a higher colour by the pipeline. Escalating raises the colour one step (red stays red), adds an
        ``escalate`` audit line by ``system``, and announces ``event.escalated``. An
        alert is escalated at most ``sla.max_escalations`` times.

        Only the overdue alerts are read (the deadlines are compared in SQL), ``chunk``
        per transaction: the thousands of raised alerts a busy site keeps are not loaded
        every round, so the memory a round needs does not grow with them.

        Returns:
            The escalated events, after escalation.
        """
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        now = self._clock()
        since = func.coalesce(EventRow.severity_since, EventRow.escalated_at, EventRow.created_at)
        is_overdue = or_(
            *(
                and_(EventRow.severity == level.value, since <= now - sla.deadline_s(level.value))
                for level in RiskLevel
            )
        )
        query = (
            select(EventRow)
            .where(
                EventRow.state == AlertState.RAISED.value,
                EventRow.escalations < sla.max_escalations,
                is_overdue,
            )
            .order_by(EventRow.created_at, EventRow.id)
            .limit(chunk)
            .with_for_update()
        )
        # The clock went back (NTP, a clock set to local time read as UTC): a deadline from a time still
        # ahead would wait the step's length too. It runs from now instead (in the first transaction).
        restart_ahead = (
            update(EventRow)
            .where(EventRow.state == AlertState.RAISED.value, since > now + _CLOCK_STEP_S)
            .values(severity_since=now)
        )
        escalated: list[StoredEvent] = []
        stepped: int | None = None
        while True:
            with self._db.write() as session:
                if stepped is None:
                    stepped = int(session.execute(restart_ahead).rowcount)  # type: ignore[attr-defined]
                rows = session.scalars(query).all()
                escalated += [self._escalate(session, row, sla, now) for row in rows]
            if len(rows) < chunk:
                break
        if stepped:
            logger.warning(
                "escalation: %d raised alert(s) reached their colour after now (%.0f): the clock went back; "
                "their SLA deadlines run from now",
                stepped,
                now,
            )
        for event in escalated:
            logger.warning("%s: escalated event %s to %s", event.camera_id, event.id, event.severity)
        return escalated

    @staticmethod
    def _escalate(session: Session, row: EventRow, sla: SlaConfig, now: float) -> StoredEvent:
        """Raise one overdue alert's colour, audit and announce it (in the caller's transaction)."""
        deadline_s = sla.deadline_s(row.severity)
        before = row.severity
        row.severity = escalated_severity(before).value
        row.escalations += 1
        row.escalated_at = now
        row.severity_since = now
        row.version += 1
        row.updated_at = now
        session.flush()
        note = f"not acknowledged within {deadline_s:g} s; {before} → {row.severity}"
        audit = _append_audit(
            session,
            _audit_row(row, actor=ACTOR_SYSTEM, action="escalate", from_state=AlertState.RAISED, note=note),
        )
        stored = event_from_row(row)
        enqueue(session, stored, kind="event.escalated", change=audit, now=now)
        return stored

    def audit_trail(self, event_id: str) -> list[AuditEntry]:
        """The alert's audit lines, oldest first (empty for an unknown id)."""
        query = select(AuditRow).where(AuditRow.event_id == event_id).order_by(AuditRow.id)
        with self._db.read() as session:
            return [audit_from_row(row) for row in session.scalars(query)]

    def audit_trails(self, event_ids: Iterable[str]) -> dict[str, list[AuditEntry]]:
        """The audit lines of many alerts, each oldest first, read a few hundred alerts per query.

        For reading a page of alerts' trails at once (the report), not one query per alert.
        An unknown id, or one without lines, has no key.
        """
        wanted = sorted(set(event_ids))
        trails: dict[str, list[AuditEntry]] = {}
        if not wanted:
            return trails
        with self._db.read() as session:
            for start in range(0, len(wanted), _AUDIT_IDS_PER_QUERY):
                chunk = wanted[start : start + _AUDIT_IDS_PER_QUERY]
                query = select(AuditRow).where(AuditRow.event_id.in_(chunk)).order_by(AuditRow.id)
                for row in session.scalars(query):
                    trails.setdefault(row.event_id, []).append(audit_from_row(row))
        return trails

    # ------------------------------------------------------------------ reads

    def get_event(self, event_id: str) -> StoredEvent | None:
        """The stored event with this id, or ``None``."""
        with self._db.read() as session:
            row = session.get(EventRow, event_id)
            return None if row is None else event_from_row(row)

    def list_events(
        self,
        *,
        site_id: str | None = None,
        workshop_id: str | None = None,
        camera_id: str | None = None,
        behaviours: Sequence[Behaviour] = (),
        severities: Sequence[RiskLevel] = (),
        states: Sequence[AlertState] = (),
        since: float | None = None,
        until: float | None = None,
        ended_after: float | None = None,
        updated_after: float | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> EventPage:
        """Events matching every given filter, newest ``started_at`` first, one page at a time.

        Args:
            site_id: Only this site.
            workshop_id: Only this workshop.
            camera_id: Only this camera.
            behaviours: Only these behaviours (any, when empty).
            severities: Only these current colours.
            states: Only these lifecycle states.
            since: Only events started at or after this time, epoch seconds.
            until: Only events started before this time, epoch seconds.
            ended_after: Only events not ended by this time (ongoing, or ended after it), epoch seconds.
            updated_after: Only events the service changed after this time (any change), epoch seconds.
            cursor: ``next_cursor`` of the previous page.
            limit: At most this many, 1 or more.

        Raises:
            ValueError: ``limit`` is below 1 or ``cursor`` is malformed.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        query = select(EventRow)
        for column, value in (
            (EventRow.site_id, site_id),
            (EventRow.workshop_id, workshop_id),
            (EventRow.camera_id, camera_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if behaviours:
            query = query.where(EventRow.behaviour.in_([Behaviour(b).value for b in behaviours]))
        if severities:
            query = query.where(EventRow.severity.in_([RiskLevel(s).value for s in severities]))
        if states:
            query = query.where(EventRow.state.in_([AlertState(s).value for s in states]))
        if since is not None:
            query = query.where(EventRow.started_at >= since)
        if until is not None:
            query = query.where(EventRow.started_at < until)
        if ended_after is not None:
            query = query.where(or_(EventRow.ended_at.is_(None), EventRow.ended_at > ended_after))
        if updated_after is not None:
            query = query.where(EventRow.updated_at > updated_after)
        if cursor is not None:
            after_started, after_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    EventRow.started_at < after_started,
                    and_(EventRow.started_at == after_started, EventRow.id < after_id),
                )
            )
        query = query.order_by(EventRow.started_at.desc(), EventRow.id.desc()).limit(limit + 1)
        with self._db.read() as session:
            items = [event_from_row(row) for row in session.scalars(query)]
        has_more = len(items) > limit
        items = items[:limit]
        return EventPage(items=items, next_cursor=_encode_cursor(items[-1]) if has_more else None)

    def changed_since(
        self, updated_at: float, *, after_id: str | None = None, limit: int = 500
    ) -> list[StoredEvent]:
        """Events changed at or after ``updated_at`` (epoch seconds), oldest change first: the live feed.

        A page of ``limit``; the next page starts after the last one's ``(updated_at, id)``
        (``after_id``: events changed at ``updated_at`` itself come only after that id), so a
        burst of more changes than a page within one instant is read whole, page by page.
        """
        since = EventRow.updated_at >= updated_at
        if after_id is not None:
            since = or_(
                EventRow.updated_at > updated_at,
                and_(EventRow.updated_at == updated_at, EventRow.id > after_id),
            )
        query = select(EventRow).where(since).order_by(EventRow.updated_at, EventRow.id).limit(limit)
        with self._db.read() as session:
            return [event_from_row(row) for row in session.scalars(query)]

    def count_events(self) -> dict[tuple[str, str, str], int]:
        """How many events there are per (behaviour, severity, state): for the metrics."""
        query = select(EventRow.behaviour, EventRow.severity, EventRow.state, func.count()).group_by(
            EventRow.behaviour, EventRow.severity, EventRow.state
        )
        with self._db.read() as session:
            return {(b, s, st): int(n) for b, s, st, n in session.execute(query)}

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _event_row(session: Session, event_id: str) -> EventRow:
        """The event row with this id, or ``KeyError``."""
        row = session.get(EventRow, event_id)
        if row is None:
            raise KeyError(f"no event with id {event_id!r}")
        return row
