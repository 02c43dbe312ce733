"""The event store: events and their webhook outbox in one SQL database (SQLite by default).

Two tables. ``events`` holds one row per incident at its highest revision;
``webhook_deliveries`` is a durable outbox with one row per (event revision,
webhook URL), written in the same transaction as the event, so a crash between
storing an event and announcing it loses nothing: the dispatcher delivers what is
pending after a restart.

The store is safe to share between threads (the pipeline thread writes, the API's
worker threads read, the webhook dispatcher claims and updates deliveries): each
call opens its own short session. On SQLite the database runs in WAL mode (readers
never block the writer), write transactions start with ``BEGIN IMMEDIATE`` (so
they queue on the busy timeout instead of failing on a lock upgrade), and a busy
database waits ``busy_timeout_s`` before raising.

The schema is created with ``create_all`` for now; Alembic migrations replace that
when the schema first changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from pipeline.event import Behaviour, Event, EventBox, RiskLevel
from service.config import StorageConfig
from service.schemas import WebhookPayload

__all__ = [
    "STATE_RAISED",
    "Base",
    "DeliveryStatus",
    "EventStore",
    "StoredEvent",
    "UpsertResult",
    "WebhookDelivery",
    "sqlite_url",
]

logger = logging.getLogger(__name__)

STATE_RAISED = "raised"
"""The only alert state of this slice; the lifecycle (ack, dispatch, resolve) adds the others."""

_WRITE_OPTION = "anjian_write"
_MAX_ERROR_CHARS = 1000


class DeliveryStatus(StrEnum):
    """Where one webhook delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# ---------------------------------------------------------------------------- ORM


class Base(DeclarativeBase):
    """Declarative base of every anjian table (the metadata Alembic will target)."""


class _EventRow(Base):
    """One incident at its highest stored revision."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[str] = mapped_column(String(64))
    workshop_id: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    behaviour: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=STATE_RAISED)
    started_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    confidence: Mapped[float] = mapped_column(Float)
    zone_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str] = mapped_column(String(128), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    boxes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    snapshot_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_events_started_at", "started_at"),
        Index("ix_events_camera_started", "camera_id", "started_at"),
        Index("ix_events_behaviour_started", "behaviour", "started_at"),
    )


class _DeliveryRow(Base):
    """One (event revision, webhook URL) to POST, or already POSTed."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), ForeignKey("events.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("event_id", "revision", "url", name="uq_delivery_event_revision_url"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    )


# ------------------------------------------------------------------ typed records


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: the pipeline's fields plus the service's own.

    Times are epoch seconds, as in ``pipeline.event.Event``.

    Attributes:
        state: Alert lifecycle state, ``"raised"`` in this slice.
        snapshot_path: Snapshot file relative to the data folder, or ``None``.
        created_at: When the service first stored the incident.
        updated_at: When the service last stored a revision of it.
    """

    id: str
    revision: int
    site_id: str
    workshop_id: str
    camera_id: str
    behaviour: Behaviour
    severity: RiskLevel
    state: str
    started_at: float
    last_seen_at: float
    ended_at: float | None
    confidence: float
    zone_id: str | None
    model_version: str
    message: str
    boxes: tuple[EventBox, ...]
    snapshot_path: str | None
    created_at: float
    updated_at: float


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
class WebhookDelivery:
    """One row of the webhook outbox.

    Attributes:
        id: Row id.
        event_id: Event announced.
        revision: Revision of the event announced.
        url: Webhook URL.
        status: pending, delivered or failed (given up).
        attempts: POSTs made so far.
        last_error: Why the last attempt failed, or ``None``.
        last_status_code: HTTP status of the last response, or ``None`` (no response).
        next_attempt_at: Epoch seconds when it is due (a pending row), else ``None``.
        delivered_at: Epoch seconds of the successful POST, else ``None``.
        payload: The JSON body, fixed when the row was enqueued (``WebhookPayload``).
    """

    id: int
    event_id: str
    revision: int
    url: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    last_status_code: int | None
    next_attempt_at: float | None
    delivered_at: float | None
    payload: dict[str, Any]


def _to_stored(row: _EventRow) -> StoredEvent:
    """Copy an ORM row into an immutable record usable outside the session."""
    return StoredEvent(
        id=row.id,
        revision=row.revision,
        site_id=row.site_id,
        workshop_id=row.workshop_id,
        camera_id=row.camera_id,
        behaviour=Behaviour(row.behaviour),
        severity=RiskLevel(row.severity),
        state=row.state,
        started_at=row.started_at,
        last_seen_at=row.last_seen_at,
        ended_at=row.ended_at,
        confidence=row.confidence,
        zone_id=row.zone_id,
        model_version=row.model_version,
        message=row.message,
        boxes=tuple(
            EventBox(
                class_name=str(b["class_name"]),
                confidence=float(b["confidence"]),
                xyxy_norm=(
                    float(b["xyxy_norm"][0]),
                    float(b["xyxy_norm"][1]),
                    float(b["xyxy_norm"][2]),
                    float(b["xyxy_norm"][3]),
                ),
            )
            for b in row.boxes
        ),
        snapshot_path=row.snapshot_path,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _to_delivery(row: _DeliveryRow) -> WebhookDelivery:
    """Copy an ORM delivery row into an immutable record."""
    return WebhookDelivery(
        id=row.id,
        event_id=row.event_id,
        revision=row.revision,
        url=row.url,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
        last_status_code=row.last_status_code,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        payload=dict(row.payload),
    )


def _apply_event(row: _EventRow, ev: Event) -> None:
    """Copy the pipeline's fields of ``ev`` onto ``row``."""
    row.revision = ev.revision
    row.site_id = ev.site_id
    row.workshop_id = ev.workshop_id
    row.camera_id = ev.camera_id
    row.behaviour = Behaviour(ev.behaviour).value
    row.severity = RiskLevel(ev.severity).value
    row.started_at = ev.started_at
    row.last_seen_at = ev.last_seen_at
    row.ended_at = ev.ended_at
    row.confidence = ev.confidence
    row.zone_id = ev.zone_id
    row.model_version = ev.model_version
    row.message = ev.message
    row.boxes = [
        {"class_name": b.class_name, "confidence": b.confidence, "xyxy_norm": list(b.xyxy_norm)}
        for b in ev.boxes
    ]


def sqlite_url(directory: Path | str) -> str:
    """The default database URL: ``anjian.db`` in the data folder."""
    return f"sqlite:///{Path(directory) / 'anjian.db'}"


# -------------------------------------------------------------------------- store


class EventStore:
    """Stores event revisions and their webhook outbox; thread-safe.

    Args:
        database_url: SQLAlchemy URL, e.g. ``sqlite:///data/anjian.db`` or a
            ``postgresql+psycopg://`` one.
        clock: Returns epoch seconds; stamps ``created_at``/``updated_at`` and
            outbox times. Inject a fake one in tests.
        busy_timeout_s: How long a SQLite write waits for another writer.
        is_create_schema: Create missing tables at construction.

    Example:
        >>> store = EventStore.from_config(config.storage)
        >>> result = store.upsert_event(event, webhook_urls=["http://cr.local/hook"])
        >>> store.list_events(camera_id="cam-1", limit=10)
    """

    def __init__(
        self,
        database_url: str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 5.0,
        is_create_schema: bool = True,
    ) -> None:
        if busy_timeout_s <= 0:
            raise ValueError(f"busy_timeout_s must be > 0, got {busy_timeout_s}")
        self._clock = clock
        self._engine = self._make_engine(database_url, busy_timeout_s)
        self._read_sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            self._engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )
        if is_create_schema:
            Base.metadata.create_all(self._engine)

    @classmethod
    def from_config(cls, storage: StorageConfig, *, clock: Callable[[], float] = time.time) -> EventStore:
        """Open the store the ``storage:`` section describes, creating the data folder if needed.

        Args:
            storage: ``database_url`` if set, else ``sqlite:///{dir}/anjian.db``.
            clock: See the class.
        """
        storage.dir.mkdir(parents=True, exist_ok=True)
        return cls(storage.database_url or sqlite_url(storage.dir), clock=clock)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations, health checks and tests)."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        self._engine.dispose()

    # ------------------------------------------------------------------ events

    def upsert_event(
        self,
        ev: Event,
        *,
        snapshot_path: str | None = None,
        webhook_urls: Sequence[str] = (),
    ) -> UpsertResult:
        """Store an event revision and, in the same transaction, enqueue its webhook deliveries.

        A new id is inserted. A known id is updated only when ``ev.revision`` is
        higher than the stored one; a stale or duplicate revision is ignored (and
        enqueues nothing), so re-publishing is harmless.

        Args:
            ev: The revision from the pipeline; ``ev.snapshot_jpeg`` is not stored
                here (see ``EvidenceStore``).
            snapshot_path: Relative path of a snapshot written for this revision;
                ``None`` keeps the stored one.
            webhook_urls: URLs to announce this revision to (duplicates ignored).

        Returns:
            The stored event and whether this revision was applied.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database failed.
        """
        urls = list(dict.fromkeys(webhook_urls))
        try:
            return self._upsert_once(ev, snapshot_path, urls)
        except IntegrityError:
            # Another writer inserted the same id between our read and our insert
            # (possible on PostgreSQL; SQLite serialises writers): redo it as an update.
            logger.info("%s: event %s was inserted concurrently; retrying", ev.camera_id, ev.id)
        return self._upsert_once(ev, snapshot_path, urls)

    def _upsert_once(self, ev: Event, snapshot_path: str | None, urls: list[str]) -> UpsertResult:
        """One transaction of ``upsert_event``."""
        now = self._clock()
        with self._write() as session:
            row = session.scalars(select(_EventRow).where(_EventRow.id == ev.id).with_for_update()).first()
            if row is not None and row.revision >= ev.revision:
                logger.debug(
                    "%s: ignoring revision %d of event %s (stored: %d)",
                    ev.camera_id,
                    ev.revision,
                    ev.id,
                    row.revision,
                )
                return UpsertResult(event=_to_stored(row), is_applied=False, deliveries_enqueued=0)
            if row is None:
                row = _EventRow(id=ev.id, state=STATE_RAISED, created_at=now, snapshot_path=None)
                session.add(row)
            _apply_event(row, ev)
            if snapshot_path is not None:
                row.snapshot_path = snapshot_path
            row.updated_at = now
            session.flush()
            stored = _to_stored(row)
            if urls:
                payload = WebhookPayload.for_event(stored).model_dump(mode="json")
                for url in urls:
                    session.add(
                        _DeliveryRow(
                            event_id=stored.id,
                            revision=stored.revision,
                            url=url,
                            status=DeliveryStatus.PENDING.value,
                            attempts=0,
                            next_attempt_at=now,
                            payload=payload,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            return UpsertResult(event=stored, is_applied=True, deliveries_enqueued=len(urls))

    def get_event(self, event_id: str) -> StoredEvent | None:
        """The stored event with this id, or ``None``."""
        with self._read() as session:
            row = session.get(_EventRow, event_id)
            return None if row is None else _to_stored(row)

    def list_events(
        self,
        *,
        camera_id: str | None = None,
        behaviour: Behaviour | None = None,
        severity: RiskLevel | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Events matching every given filter, newest ``started_at`` first.

        Args:
            camera_id: Only this camera.
            behaviour: Only this behaviour.
            severity: Only this risk level.
            since: Only events started at or after this time, epoch seconds.
            until: Only events started before this time, epoch seconds.
            limit: At most this many, 1 or more.

        Raises:
            ValueError: ``limit`` is below 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        query = select(_EventRow)
        if camera_id is not None:
            query = query.where(_EventRow.camera_id == camera_id)
        if behaviour is not None:
            query = query.where(_EventRow.behaviour == Behaviour(behaviour).value)
        if severity is not None:
            query = query.where(_EventRow.severity == RiskLevel(severity).value)
        if since is not None:
            query = query.where(_EventRow.started_at >= since)
        if until is not None:
            query = query.where(_EventRow.started_at < until)
        query = query.order_by(_EventRow.started_at.desc(), _EventRow.id.desc()).limit(limit)
        with self._read() as session:
            return [_to_stored(row) for row in session.scalars(query)]

    def ping(self) -> None:
        """Run a trivial query; raises ``sqlalchemy.exc.SQLAlchemyError`` when the database is unusable."""
        with self._read() as session:
            session.execute(text("SELECT 1"))

    # -------------------------------------------------------------- deliveries

    def claim_due_delivery(self, *, now: float, lease_s: float) -> WebhookDelivery | None:
        """Take the pending delivery due first, leasing it for ``lease_s`` seconds.

        The lease moves ``next_attempt_at`` to ``now + lease_s`` in the same
        transaction, so a second dispatcher on the same database skips the row and
        a dispatcher that dies mid-POST has the row retried once the lease ends.

        Args:
            now: Current epoch seconds.
            lease_s: How long the caller may take to attempt it.

        Returns:
            The claimed delivery (as it was before the lease), or ``None`` if none is due.
        """
        query = (
            select(_DeliveryRow)
            .where(_DeliveryRow.status == DeliveryStatus.PENDING.value, _DeliveryRow.next_attempt_at <= now)
            .order_by(_DeliveryRow.next_attempt_at, _DeliveryRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        with self._write() as session:
            row = session.scalars(query).first()
            if row is None:
                return None
            claimed = _to_delivery(row)
            row.next_attempt_at = now + lease_s
            row.updated_at = now
            return claimed

    def mark_delivered(self, delivery_id: int, *, status_code: int, now: float) -> WebhookDelivery:
        """Record a successful POST: one more attempt, status delivered.

        Raises:
            KeyError: No delivery has this id.
        """
        with self._write() as session:
            row = self._delivery_row(session, delivery_id)
            row.attempts += 1
            row.status = DeliveryStatus.DELIVERED.value
            row.last_status_code = status_code
            row.last_error = None
            row.delivered_at = now
            row.next_attempt_at = None
            row.updated_at = now
            return _to_delivery(row)

    def mark_attempt_failed(
        self,
        delivery_id: int,
        *,
        error: str,
        status_code: int | None,
        retry_at: float | None,
        now: float,
        is_counted: bool = True,
    ) -> WebhookDelivery:
        """Record a failed POST: pending again until ``retry_at``, or failed for good when it is ``None``.

        Args:
            delivery_id: The delivery.
            error: Why it failed (truncated to 1000 characters).
            status_code: HTTP status received, or ``None`` when no response came.
            retry_at: Epoch seconds of the next attempt; ``None`` gives up.
            now: Current epoch seconds.
            is_counted: Whether a POST was actually made (``False`` when giving up
                without sending, e.g. the URL is no longer configured).

        Raises:
            KeyError: No delivery has this id.
        """
        with self._write() as session:
            row = self._delivery_row(session, delivery_id)
            if is_counted:
                row.attempts += 1
            row.last_error = error[:_MAX_ERROR_CHARS]
            row.last_status_code = status_code
            row.status = (DeliveryStatus.PENDING if retry_at is not None else DeliveryStatus.FAILED).value
            row.next_attempt_at = retry_at
            row.updated_at = now
            return _to_delivery(row)

    def next_delivery_due_at(self) -> float | None:
        """Epoch seconds when the earliest pending delivery is due, or ``None`` when none is pending."""
        query = select(func.min(_DeliveryRow.next_attempt_at)).where(
            _DeliveryRow.status == DeliveryStatus.PENDING.value
        )
        with self._read() as session:
            value = session.execute(query).scalar()
            return None if value is None else float(value)

    def get_delivery(self, delivery_id: int) -> WebhookDelivery | None:
        """The delivery with this id, or ``None``."""
        with self._read() as session:
            row = session.get(_DeliveryRow, delivery_id)
            return None if row is None else _to_delivery(row)

    def list_deliveries(
        self,
        *,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 1000,
    ) -> list[WebhookDelivery]:
        """Deliveries matching the filters, oldest first (by id)."""
        query = select(_DeliveryRow)
        if event_id is not None:
            query = query.where(_DeliveryRow.event_id == event_id)
        if status is not None:
            query = query.where(_DeliveryRow.status == DeliveryStatus(status).value)
        query = query.order_by(_DeliveryRow.id).limit(limit)
        with self._read() as session:
            return [_to_delivery(row) for row in session.scalars(query)]

    def count_deliveries(self, status: DeliveryStatus) -> int:
        """How many deliveries have this status."""
        query = select(func.count()).select_from(_DeliveryRow).where(_DeliveryRow.status == status.value)
        with self._read() as session:
            return int(session.execute(query).scalar_one())

    # ---------------------------------------------------------------- plumbing

    @staticmethod
    def _delivery_row(session: Session, delivery_id: int) -> _DeliveryRow:
        """The delivery row with this id, or ``KeyError``."""
        row = session.get(_DeliveryRow, delivery_id)
        if row is None:
            raise KeyError(f"no webhook delivery with id {delivery_id}")
        return row

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A session in a read transaction (``BEGIN`` on SQLite: a consistent WAL snapshot)."""
        with self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A session in a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on exit."""
        with self._write_sessions() as session, session.begin():
            yield session

    @staticmethod
    def _make_engine(database_url: str, busy_timeout_s: float) -> Engine:
        """Create the engine; on SQLite: WAL, busy timeout, foreign keys, explicit BEGINs."""
        if not database_url.startswith("sqlite"):
            return create_engine(database_url, pool_pre_ping=True)
        is_memory = database_url in {"sqlite://", "sqlite:///:memory:"} or "mode=memory" in database_url
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
            # One shared connection for an in-memory database, else each connection sees its own.
            **({"poolclass": StaticPool} if is_memory else {}),
        )
        busy_timeout_ms = int(busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                if not is_memory:
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
                cursor.execute("PRAGMA foreign_keys=ON")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            is_write = bool(conn.get_execution_options().get(_WRITE_OPTION))
            conn.exec_driver_sql("BEGIN IMMEDIATE" if is_write else "BEGIN")

        return engine
