"""The hub's store: every plant's incidents, audit trails and camera and sensor health, written idempotently.

The bus delivers at least once (a message not acked before a crash comes again), and the
plants' outbox workers may publish one incident's announcements out of order. Each write
is therefore idempotent and order-free:

- an incident row is inserted once per (plant, incident) and replaced only by a higher
  (epoch, ``version``); an audit line is keyed per (plant, incident), and a line the hub
  holds already is not written again (``changes``, with the epochs of a plant whose
  database went back);
- a plant's cameras and its sensors are each replaced as a set by a health report no
  older than the one they came from, and each plant's clock offset is measured on its
  latest report (``health``);
- a supervisor's remark is stored, sent and confirmed by its plant's receipt (``remarks``).

Each message comes with the hub time it reached the hub's stream (``stored_at``: JetStream's
timestamp, on the hub's clock, the same on every redelivery; by default the time it is
applied). ``apply`` takes a batch of messages and writes them in one transaction, so the
consumer acks a batch only once it is durable.

Reads: incident listings and trails (``listing``) and each plant's overview figures, overdue
judged in hub time (``summary``). ``prune_closed`` deletes incidents settled long ago
(``retention``), so reads stay as cheap after years as after a day.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from anjian.service.bus.messages import BusMessage, EventChange, HealthReport, RemarkReceipt, SupervisorRemark
from anjian.service.config import SlaConfig, StorageConfig
from anjian.service.copying import copy_fields
from anjian.service.database import Database, sqlite_url
from anjian.service.hub import changes, health, listing, remarks, retention, summary
from anjian.service.hub.listing import OPEN_STATES
from anjian.service.hub.records import CameraStatus, HubAuditEntry, HubEvent, PlantSummary, SensorStatus
from anjian.service.hub.schema import upgrade_hub_database
from anjian.service.hub.tables import HubCameraRow, HubSensorRow
from anjian.service.hub.tokens import HubTokens

__all__ = ["OPEN_STATES", "ApplyResult", "HubStore"]

_DAY_S: Final = 86_400.0


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


class HubStore:
    """The hub's incidents, audit trails, camera health and tokens; thread-safe.

    Args:
        database: A ``Database`` or a SQLAlchemy URL (PostgreSQL in production).
        clock: Epoch seconds.
        response_window_s: The medians of a plant's summary cover the incidents raised this
            long before (its latest ``summary._MEDIAN_SAMPLE`` at most).

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
        event_changes = [(m, at) for m, at in timed if isinstance(m, EventChange)]
        reports = [(m, at) for m, at in timed if isinstance(m, HealthReport)]
        receipts = [(m, at) for m, at in timed if isinstance(m, RemarkReceipt)]
        written = audits = duplicates = 0
        with self._db.write() as session:
            plants = health.touch_plants(session, timed, now)
            keys = {(c.plant_id, c.payload.event.id) for c, _ in event_changes}
            rows = changes.event_rows(session, keys)
            seen = changes.audit_keys(session, keys)
            held = changes.held_lines(
                session,
                {(c.plant_id, c.payload.change.id) for c, _ in event_changes if c.payload.change is not None},
            )
            for change, at in event_changes:
                is_written, added = changes.apply_change(
                    session, change, plants[change.plant_id], rows, seen, held, stored_at=at, now=now
                )
                written += is_written
                audits += added
                duplicates += not (is_written or added)
            for report, at in reports:
                reported_at = min(report.sent_at, now + health.CLOCK_SKEW_S)
                health.apply_health(
                    session, plants[report.plant_id], report, reported_at=reported_at, stored_at=at
                )
            confirmed = remarks.apply_receipts(session, receipts)
        return ApplyResult(
            events_written=written,
            audit_written=audits,
            duplicates=duplicates,
            health_reports=len(reports),
            receipts=confirmed,
        )

    # ------------------------------------------------------------ remarks

    def add_remark(
        self, plant_id: str, event_id: str, *, actor: str, note: str, is_press_for_action: bool
    ) -> SupervisorRemark:
        """Record a supervisor's remark in the incident's audit trail here, to be sent to the plant.

        Raises:
            KeyError: The hub has no such incident.
            ValueError: The note is blank or longer than 4000 characters.
        """
        remark = remarks.new_remark(
            plant_id,
            event_id,
            actor=actor,
            note=note,
            is_press_for_action=is_press_for_action,
            clock=self._clock,
        )
        with self._db.write() as session:
            remarks.add_remark(session, remark)
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
        resent_before = None if resend_after_s is None else self._clock() - resend_after_s
        with self._db.read() as session:
            return remarks.unsent_remarks(session, limit, resent_before=resent_before)

    def mark_sent(self, remark: SupervisorRemark) -> None:
        """Record that the bus took the remark (again: its last time is kept until the plant confirms it)."""
        with self._db.write() as session:
            remarks.mark_sent(session, remark, clock=self._clock)

    # ---------------------------------------------------------- retention

    def prune_closed(self, *, closed_before: float, batch: int = 500) -> int:
        """Delete incidents no longer open that the hub last heard of before ``closed_before`` (epoch s).

        Their snapshots and audit trails, remarks included, go with them; open incidents are never
        deleted, however old (see ``retention.prune_closed``).

        Returns:
            How many incidents were deleted.

        Raises:
            ValueError: ``batch`` is below 1.
            sqlalchemy.exc.SQLAlchemyError: The database failed (what was deleted before stays deleted).
        """
        return retention.prune_closed(self._db, closed_before=closed_before, batch=batch)

    # -------------------------------------------------------------- reads

    def summaries(
        self, plants: Sequence[tuple[str, str, str]], sla: SlaConfig, *, now: float | None = None
    ) -> list[PlantSummary]:
        """One summary per plant (id, name, group), in the order given (see ``summary.summaries``).

        Args:
            plants: The plants to summarise (the caller's scope).
            sla: The acknowledge deadlines that make a raised incident overdue.
            now: Epoch seconds; default the store's clock.
        """
        now = self._clock() if now is None else now
        with self._db.read() as session:
            return summary.summaries(session, plants, sla, now=now, response_window_s=self._response_window_s)

    def list_events(
        self, plant_ids: Iterable[str], *, is_open: bool | None = None, limit: int = 200
    ) -> list[HubEvent]:
        """The incidents of these plants; only open (or only closed) ones when asked.

        Open ones come most urgent first (raised, then red first, then the oldest first);
        otherwise newest first (see ``listing.list_events``).

        Raises:
            ValueError: ``limit`` is below 1.
        """
        with self._db.read() as session:
            return listing.list_events(session, plant_ids, is_open=is_open, limit=limit)

    def count_listed(self, plant_ids: Iterable[str], *, is_open: bool | None = None) -> int:
        """How many incidents ``list_events`` has to list without its limit (the "200 of N" of a cut list)."""
        with self._db.read() as session:
            return listing.count_listed(session, plant_ids, is_open=is_open)

    def get_event(self, plant_id: str, event_id: str) -> HubEvent | None:
        """One incident, or ``None``."""
        with self._db.read() as session:
            return listing.get_event(session, plant_id, event_id)

    def snapshot(self, plant_id: str, event_id: str) -> bytes | None:
        """The incident's snapshot JPEG, or ``None``."""
        with self._db.read() as session:
            return listing.snapshot(session, plant_id, event_id)

    def audit_trail(self, plant_id: str, event_id: str) -> list[HubAuditEntry]:
        """The incident's audit lines and remarks, oldest first."""
        with self._db.read() as session:
            return listing.audit_trail(session, plant_id, event_id)

    def cameras(self, plant_ids: Iterable[str]) -> list[CameraStatus]:
        """The cameras of these plants as last reported, by plant and camera."""
        with self._db.read() as session:
            rows = health.reported(session, HubCameraRow, HubCameraRow.camera_id, plant_ids)
        return [copy_fields(CameraStatus, row) for row in rows]

    def sensors(self, plant_ids: Iterable[str]) -> list[SensorStatus]:
        """The sensors of these plants as last reported, by plant and sensor."""
        with self._db.read() as session:
            rows = health.reported(session, HubSensorRow, HubSensorRow.sensor_id, plant_ids)
        return [copy_fields(SensorStatus, row, open_kinds=tuple(row.open_kinds)) for row in rows]

    def count_events(self, plant_id: str | None = None) -> int:
        """How many incidents the hub holds (of one plant)."""
        with self._db.read() as session:
            return listing.count_events(session, plant_id)

    def count_audit(self, plant_id: str | None = None, *, action: str | None = None) -> int:
        """How many audit lines the hub holds (of one plant, of one action)."""
        with self._db.read() as session:
            return listing.count_audit(session, plant_id, action=action)
