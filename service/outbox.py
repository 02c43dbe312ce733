"""The durable webhook outbox: deliveries enqueued in the event's transaction, claimed and settled by workers.

Every announcement of an event (a detection revision, a lifecycle action, an
escalation) enqueues one ``webhook_deliveries`` row per matching active
subscription, inside the transaction that changed the event (``enqueue``), so a
crash between the change and its announcement loses nothing. Workers claim due
rows a batch at a time with a lease (``claim_due``), POST them, and settle them
(``mark_delivered`` for a batch in one transaction, ``mark_attempt_failed``): under
a burst, a few SQLite writes per batch rather than two per delivery. A claim's
lease is short and renewed while its batch is worked on (``renew``). A row whose retries
run out is ``failed``: a dead letter, listed by ``list(status=FAILED)`` and sent
again by ``redeliver``.

A commit that made a delivery due (``enqueue``, ``redeliver``) calls the outbox's due
listeners once, after the data is durable: the webhook dispatcher listens, so none of the
writers (ingest, lifecycle actions, escalation, redelivery) has to remember to wake it.

Each row has an idempotency key, unique in the table and the same on every attempt:
``<event id>:<change>:<subscription id>`` where the change is ``r<revision>`` for a
detection or ``a<audit id>`` for a lifecycle change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from anjian.pipeline.event import RiskLevel
from anjian.service.channels.address import admits
from anjian.service.database import Database
from anjian.service.records import (
    AuditEntry,
    DeliveryStatus,
    StoredEvent,
    Subscription,
    WebhookDelivery,
    delivery_from_row,
    subscription_from_row,
)
from anjian.service.schemas import WebhookKind, WebhookPayload
from anjian.service.tables import DeliveryRow, SubscriptionRow

__all__ = ["Outbox", "active_subscriptions", "enqueue", "idempotency_key"]

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 1000
_MADE_DUE = "anjian.outbox.made_due"  # session.info flag: this transaction made a delivery due


def idempotency_key(event_id: str, change: str, subscription_id: int) -> str:
    """``<event_id>:<change>:<subscription_id>``: the same for every attempt of one delivery."""
    return f"{event_id}:{change}:{subscription_id}"


def active_subscriptions(session: Session) -> list[Subscription]:
    """The active webhook subscriptions, read in ``session`` (load them once for a batch of ``enqueue``)."""
    return [
        subscription_from_row(row)
        for row in session.scalars(select(SubscriptionRow).where(SubscriptionRow.is_active.is_(True)))
    ]


def enqueue(
    session: Session,
    event: StoredEvent,
    *,
    kind: WebhookKind,
    change: AuditEntry | None,
    now: float,
    subscriptions: Sequence[Subscription] | None = None,
    previous_severity: str | None = None,
) -> int:
    """Add one pending delivery per active subscription that wants ``kind`` for ``event``.

    A robot or e-mail channel (``channel:<name>?colours=...``) also filters on the event's colour.
    A detection revision that brings an incident into a channel's colours for the first time
    (yellow to red for a red-only channel) is that channel's ``event.created``: it never heard
    of the incident, and by default it takes new alerts, not updates.

    Call it inside the transaction that stored the change, so both commit or neither does.

    Args:
        session: The open write session.
        event: The event after the change.
        kind: What is announced.
        change: The audit entry of a lifecycle change; ``None`` for a detection revision.
        now: Epoch seconds.
        subscriptions: The active subscriptions, when the caller read them already
            (``active_subscriptions``) for many events in one transaction.
        previous_severity: The incident's colour before this detection revision (``None``: new).

    Returns:
        How many deliveries were enqueued.
    """
    if subscriptions is None:
        subscriptions = active_subscriptions(session)
    wanted = [
        (subscription, announced)
        for subscription in subscriptions
        if (announced := _kind_for(subscription, kind, event, previous_severity)) is not None
    ]
    if not wanted:
        return 0
    payloads = {
        announced: WebhookPayload.for_event(event, kind=announced, change=change).model_dump(mode="json")
        for announced in {announced for _, announced in wanted}
    }
    change_key = f"r{event.revision}" if change is None else f"a{change.id}"
    for subscription, announced in wanted:
        session.add(
            DeliveryRow(
                idempotency_key=idempotency_key(event.id, change_key, subscription.id),
                subscription_id=subscription.id,
                event_id=event.id,
                revision=event.revision,
                kind=announced,
                url=subscription.url,
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                retry_until=now + subscription.retry_for_s,
                payload=payloads[announced],
                created_at=now,
                updated_at=now,
            )
        )
    session.info[_MADE_DUE] = True
    return len(wanted)


def _kind_for(
    subscription: Subscription, kind: WebhookKind, event: StoredEvent, previous_severity: str | None
) -> WebhookKind | None:
    """What ``subscription`` is told of ``event`` (``kind``, or its first news of it), ``None``: nothing.

    An update that raised the alert's colour also goes to a subscription that takes
    ``event.escalated`` but not ``event.updated``: the alert got worse, which it asked to hear.
    """
    if not admits(subscription.url, event.severity.value):
        return None
    is_first_news = (
        kind == "event.updated"
        and previous_severity is not None
        and not admits(subscription.url, previous_severity)
    )
    if is_first_news and subscription.matches("event.created", event):
        return "event.created"
    if subscription.matches(kind, event):
        return kind
    # A colour the pipeline raised (yellow to red) is news to a channel that hears escalations
    # even when it does not take updates (a robot's default): it knew the alert as yellow.
    is_colour_raise = (
        kind == "event.updated"
        and previous_severity is not None
        and RiskLevel(previous_severity).rank < event.severity.rank
    )
    return kind if is_colour_raise and subscription.matches("event.escalated", event) else None


class Outbox:
    """Claims, settles, lists and redelivers webhook deliveries; thread-safe.

    Args:
        database: The shared database.
        clock: Returns epoch seconds (for ``redeliver``).
    """

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = database
        self._due_listeners: list[Callable[[], None]] = []
        database.on_write_commit(self._after_commit)
        self._clock = clock

    def claim_due(self, *, now: float, lease_s: float, limit: int = 1) -> list[WebhookDelivery]:
        """Take up to ``limit`` of the oldest due pending deliveries, hidden from other claimers for ``lease_s``.

        The rows stay pending: if the worker dies before settling them, they are due
        again when the lease ends (at-least-once delivery).

        Returns:
            The claimed deliveries, oldest first; empty when none is due.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        query = (
            select(DeliveryRow)
            .where(DeliveryRow.status == DeliveryStatus.PENDING.value, DeliveryRow.next_attempt_at <= now)
            .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._db.write() as session:
            rows = list(session.scalars(query))
            claimed = [delivery_from_row(row) for row in rows]
            for row in rows:
                row.next_attempt_at = now + lease_s
                row.updated_at = now
            return claimed

    def renew(self, delivery_ids: Iterable[int], *, leased_until: float, until: float) -> list[int]:
        """Extend the lease of claimed rows still held by that claim to ``until``.

        Only rows still pending with ``next_attempt_at == leased_until`` (the lease
        this claim set or last renewed) are touched: a row settled, rescheduled
        after a failure, released, or claimed by another worker since is left alone.

        Returns:
            The ids of the rows renewed: the claim holds those alone now.
        """
        ids = list(delivery_ids)
        if not ids:
            return []
        with self._db.write() as session:
            rows = session.scalars(
                select(DeliveryRow).where(
                    DeliveryRow.id.in_(ids),
                    DeliveryRow.status == DeliveryStatus.PENDING.value,
                    DeliveryRow.next_attempt_at == leased_until,
                )
            ).all()
            for row in rows:
                row.next_attempt_at = until
            return [row.id for row in rows]

    def mark_delivered(self, status_codes: Mapping[int, int], *, now: float) -> int:
        """Record successful POSTs, in one transaction: one more attempt each, status delivered.

        One ``UPDATE`` per status code, without reading the rows (their payloads): a
        worker records each success as it arrives, so this runs once per POST in a trickle.

        Args:
            status_codes: Delivery id to the 2xx status its receiver answered.
            now: Epoch seconds.

        Returns:
            How many deliveries were recorded.

        Raises:
            KeyError: A delivery id is unknown (nothing is recorded then).
        """
        by_code: dict[int, list[int]] = {}
        for delivery_id, status_code in status_codes.items():
            by_code.setdefault(status_code, []).append(delivery_id)
        with self._db.write() as session:
            settled = 0
            for status_code, ids in by_code.items():
                result = session.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.id.in_(ids))
                    .values(
                        attempts=DeliveryRow.attempts + 1,
                        status=DeliveryStatus.DELIVERED.value,
                        last_status_code=status_code,
                        last_error=None,
                        delivered_at=now,
                        next_attempt_at=None,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                settled += int(result.rowcount)  # type: ignore[attr-defined]
            if settled != len(status_codes):
                known = set(
                    session.scalars(select(DeliveryRow.id).where(DeliveryRow.id.in_(list(status_codes))))
                )
                missing = min(set(status_codes) - known)
                raise KeyError(f"no webhook delivery with id {missing}")  # rolls the transaction back
            return settled

    def release(self, delivery_ids: Iterable[int], *, leased_until: float, now: float) -> None:
        """End the lease of claimed deliveries that were not attempted: due again at ``now``.

        Only rows the claim still holds (pending, ``next_attempt_at == leased_until``): a row
        another worker claimed after this lease ran out is left to it.
        """
        ids = list(delivery_ids)
        if not ids:
            return
        with self._db.write() as session:
            for row in session.scalars(
                select(DeliveryRow).where(
                    DeliveryRow.id.in_(ids),
                    DeliveryRow.status == DeliveryStatus.PENDING.value,
                    DeliveryRow.next_attempt_at == leased_until,
                )
            ):
                row.next_attempt_at = now
                row.updated_at = now

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
        """Record a failed POST: pending again until ``retry_at``, or a dead letter when it is ``None``.

        A row delivered meanwhile (by another worker, after this one's lease ran out) stays
        delivered: the failure is not recorded on it.

        Args:
            delivery_id: The delivery.
            error: Why it failed (truncated to 1000 characters).
            status_code: HTTP status received, or ``None`` when no response came.
            retry_at: Epoch seconds of the next attempt; ``None`` gives up.
            now: Current epoch seconds.
            is_counted: Whether the attempt counts toward ``max_attempts`` (``False`` when
                giving up without sending, e.g. the subscription was deactivated, or for a
                robot's rate-limit refusal: a POST the vendor refused only for its rate).

        Raises:
            KeyError: No delivery has this id.
        """
        with self._db.write() as session:
            row = self._row(session, delivery_id)
            if row.status == DeliveryStatus.DELIVERED.value:
                logger.info(
                    "delivery %d was delivered by another worker meanwhile; its failure here is dropped",
                    row.id,
                )
                return delivery_from_row(row)
            if is_counted:
                row.attempts += 1
            row.last_error = error[:_MAX_ERROR_CHARS]
            row.last_status_code = status_code
            row.status = (DeliveryStatus.PENDING if retry_at is not None else DeliveryStatus.FAILED).value
            row.next_attempt_at = retry_at
            row.updated_at = now
            return delivery_from_row(row)

    def prune(self, *, settled_before: float, batch: int = 2000) -> int:
        """Delete deliveries delivered or given up before ``settled_before`` (epoch s); returns how many.

        Pending deliveries are never deleted. Deletes ``batch`` rows a transaction, so the
        writers (ingest, the dispatcher) wait at most one short transaction for it.
        """
        settled = (DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value)
        deleted = 0
        while True:
            with self._db.write() as session:
                ids = session.scalars(
                    select(DeliveryRow.id)
                    .where(DeliveryRow.status.in_(settled), DeliveryRow.updated_at < settled_before)
                    .limit(batch)
                ).all()
                if ids:
                    session.execute(delete(DeliveryRow).where(DeliveryRow.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < batch:
                return deleted

    def redeliver(self, delivery_id: int, *, retry_for_s: float) -> WebhookDelivery:
        """Queue a dead letter (or any delivery) again, due now, with a fresh retry window and attempt count.

        The idempotency key stays the same, so a receiver that already has it can ignore it.
        ``attempts`` counts again from 0: a subscription's ``max_attempts`` applies afresh
        (it gave a redelivered row exactly one more try).

        Raises:
            KeyError: No delivery has this id.
        """
        now = self._clock()
        with self._db.write() as session:
            row = self._row(session, delivery_id)
            row.status = DeliveryStatus.PENDING.value
            row.attempts = 0
            row.next_attempt_at = now
            row.retry_until = now + retry_for_s
            row.delivered_at = None
            row.updated_at = now
            session.info[_MADE_DUE] = True
            return delivery_from_row(row)

    def add_due_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every commit that made a delivery due (enqueued or redelivered).

        It runs in the committing thread, so it must be quick and must not raise (the
        dispatcher's ``wake``: a notify).
        """
        self._due_listeners.append(listener)

    def remove_due_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener`` (a stopped dispatcher); unknown listeners are ignored."""
        if listener in self._due_listeners:
            self._due_listeners.remove(listener)

    def _after_commit(self, session: Session) -> None:
        """Tell the due listeners when the transaction just committed made a delivery due."""
        if session.info.pop(_MADE_DUE, False):
            for listener in tuple(self._due_listeners):
                listener()

    def next_due_at(self) -> float | None:
        """Epoch seconds when the earliest pending delivery is due, or ``None`` when none is pending."""
        query = select(func.min(DeliveryRow.next_attempt_at)).where(
            DeliveryRow.status == DeliveryStatus.PENDING.value
        )
        with self._db.read() as session:
            value = session.execute(query).scalar()
            return None if value is None else float(value)

    def get(self, delivery_id: int) -> WebhookDelivery | None:
        """The delivery with this id, or ``None``."""
        with self._db.read() as session:
            row = session.get(DeliveryRow, delivery_id)
            return None if row is None else delivery_from_row(row)

    def list(
        self,
        *,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[WebhookDelivery]:
        """Deliveries matching the filters with ids above ``after_id``, oldest first (by id)."""
        query = select(DeliveryRow).where(DeliveryRow.id > after_id)
        if event_id is not None:
            query = query.where(DeliveryRow.event_id == event_id)
        if status is not None:
            query = query.where(DeliveryRow.status == DeliveryStatus(status).value)
        query = query.order_by(DeliveryRow.id).limit(limit)
        with self._db.read() as session:
            return [delivery_from_row(row) for row in session.scalars(query)]

    def count(self, status: DeliveryStatus) -> int:
        """How many deliveries have this status."""
        query = select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == status.value)
        with self._db.read() as session:
            return int(session.execute(query).scalar_one())

    @staticmethod
    def _row(session: Session, delivery_id: int) -> DeliveryRow:
        """The delivery row with this id, or ``KeyError``."""
        row = session.get(DeliveryRow, delivery_id)
        if row is None:
            raise KeyError(f"no webhook delivery with id {delivery_id}")
        return row
