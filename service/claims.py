"""What the webhook workers hold between claiming outbox rows and settling them: leases and successes.

A worker claims a batch of due deliveries with a short lease (``Outbox.claim_due``)
and POSTs them one after another. Two things keep a crash from re-sending more
than it must:

- ``LeaseKeeper`` renews the lease of every batch still being worked on, every
  third of the lease, so the lease can be short (a few seconds) whatever the
  receivers' timeouts: rows a crashed process had claimed are due again a few
  seconds after it died, not after the longest timeout.
- ``SuccessLog`` records each 2xx as soon as it arrives (group commit: one write
  takes every success that arrived while the previous write ran), so a row
  POSTed successfully is marked delivered within two writes, not at the end of
  its batch. What a kill -9 can still re-send is the POSTs in flight and the
  successes not yet written.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from anjian.service.metrics import ServiceMetrics
from anjian.service.outbox import Outbox
from anjian.service.periodic import PeriodicThread
from anjian.service.records import WebhookDelivery

__all__ = ["Claim", "LeaseKeeper", "SuccessLog"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Claim:
    """One claimed batch: its row ids and the moment its lease ends (epoch seconds)."""

    token: int
    delivery_ids: list[int]
    leased_until: float


class LeaseKeeper:
    """Tracks claimed batches and renews their leases from one heartbeat thread.

    Renewing is a compare-and-set on each row's ``next_attempt_at`` (see
    ``Outbox.renew``), so it never touches a row that was settled, failed (and
    rescheduled) or released since it was claimed.

    Args:
        outbox: Where the rows live.
        clock: Epoch seconds.
        lease_s: How long a claim hides its rows; renewed every ``lease_s / 3``.
    """

    def __init__(self, outbox: Outbox, *, clock: Callable[[], float], lease_s: float) -> None:
        if lease_s <= 0:
            raise ValueError(f"lease_s must be > 0, got {lease_s}")
        self.lease_s = lease_s
        self._outbox = outbox
        self._clock = clock
        self._claims: dict[int, Claim] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._heartbeat = PeriodicThread(
            self.renew_all, interval_s=lease_s / 3, name="anjian-webhook-leases", transient=(DBAPIError,)
        )

    def claim(self, *, limit: int) -> tuple[Claim, list[WebhookDelivery]]:
        """Claim up to ``limit`` due rows for ``lease_s`` and track the claim until ``done``."""
        now = self._clock()
        leased_until = now + self.lease_s
        batch = self._outbox.claim_due(now=now, lease_s=self.lease_s, limit=limit)
        claim = Claim(next(self._tokens), [d.id for d in batch], leased_until)
        if batch:
            with self._lock:
                self._claims[claim.token] = claim
        return claim, batch

    def is_expired(self, claim: Claim) -> bool:
        """Whether the claim's lease has run out (renewal failed or nobody renews): its rows may be claimed again."""
        with self._lock:
            return self._clock() >= claim.leased_until

    def holds(self, claim: Claim, delivery_id: int) -> bool:
        """Whether the claim still holds that row: its lease runs, and no renewal found the row taken."""
        with self._lock:
            return self._clock() < claim.leased_until and delivery_id in claim.delivery_ids

    def done(self, claim: Claim) -> None:
        """Stop renewing a claim (its rows are settled, rescheduled or released)."""
        with self._lock:
            self._claims.pop(claim.token, None)

    def renew_all(self) -> int:
        """Extend the lease of every tracked claim to ``now + lease_s``; returns the rows renewed."""
        with self._lock:
            claims = list(self._claims.values())
        renewed = 0
        for claim in claims:
            until = self._clock() + self.lease_s
            held = self._outbox.renew(claim.delivery_ids, leased_until=claim.leased_until, until=until)
            renewed += len(held)
            if held:  # rows settled or taken since are not the claim's any more; none renewed: it runs out
                with self._lock:
                    claim.delivery_ids = held
                    claim.leased_until = until
        return renewed

    def start(self) -> None:
        """Start the heartbeat: every third of the lease, ``renew_all`` (a failed renewal is retried on the next beat)."""
        self._heartbeat.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the heartbeat thread; safe to call twice."""
        self._heartbeat.stop(timeout_s)


class SuccessLog:
    """Records successful POSTs in the outbox at once, many per write when they arrive together.

    The first worker to record a success while no write is running writes it (and
    whatever arrives during that write, in further rounds) before it goes on; a
    worker recording while a write runs leaves its success to that writer and goes
    on at once. A success thus waits at most for the write in progress and its own.

    Args:
        outbox: Where the rows live.
        clock: Epoch seconds (``delivered_at``).
        metrics: Counts deliveries and their latency, when given.
    """

    def __init__(
        self, outbox: Outbox, *, clock: Callable[[], float], metrics: ServiceMetrics | None = None
    ) -> None:
        self._outbox = outbox
        self._clock = clock
        self._metrics = metrics
        self._pending: dict[int, tuple[WebhookDelivery, int]] = {}
        self._lock = threading.Lock()
        self._is_writing = False

    def record(self, delivery: WebhookDelivery, status_code: int) -> None:
        """Mark one delivery delivered with ``status_code``: now, or by the write already running."""
        with self._lock:
            self._pending[delivery.id] = (delivery, status_code)
            if self._is_writing:
                return
            self._is_writing = True
        self._write_rounds()

    def _write_rounds(self) -> None:
        """Write what is pending until nothing is, as the writer; then let the next success write."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, {}
                if not batch:
                    self._is_writing = False  # under the lock: a success added now finds no writer
                    return
            try:
                self._write(batch)
            except Exception:
                # The rows stay pending in the outbox: sent again when their lease ends (at least once).
                logger.exception("cannot record %d delivered webhook(s); they will be sent again", len(batch))

    def _write(self, batch: dict[int, tuple[WebhookDelivery, int]]) -> None:
        """One transaction for the batch, then the counters."""
        now = self._clock()
        self._outbox.mark_delivered({i: code for i, (_, code) in batch.items()}, now=now)
        for delivery, _ in batch.values():
            if self._metrics is not None:
                self._metrics.deliveries.labels(result="delivered").inc()
                self._metrics.delivery_latency.observe(max(0.0, now - delivery.created_at))
            logger.debug("delivered %s of event %s to %s", delivery.kind, delivery.event_id, delivery.url)
