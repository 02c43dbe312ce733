"""Deliver the webhook outbox: POST each pending announcement to its subscription, retrying with backoff.

Every change of an event enqueues one ``webhook_deliveries`` row per matching
subscription in the change's own transaction (``anjian.service.outbox``);
``WebhookDispatcher`` runs the worker threads that drain those rows. They sleep
until the earliest row is due or until ``wake()`` is called, which the outbox does
after every commit that made a delivery due (``Outbox.add_due_listener``), so an
announcement goes out within milliseconds, and a restart delivers whatever was pending.

The dispatcher claims, schedules and routes; its parts do the rest:

- ``anjian.service.webhook_poster``: the POST itself, its headers and signatures
  (``webhook-id``, ``webhook-signature``, ``Idempotency-Key``, ``X-Anjian-Signature``: ``verify_signature``),
  and what a failed one keeps (``HTTP <status>`` and the start of the receiver's reason, ``Retry-After``).
- ``anjian.service.delivery_attempts``: how an attempt is settled on its row: delivered, retried with
  backoff within the subscription's ``retry_for_s`` and ``max_attempts``, held back uncounted, or a
  dead letter (status failed), which ``Outbox.redeliver`` queues again.
- ``anjian.service.receiver_health``: a receiver that gives no answer is not tried again, by any worker,
  before that row's retry (``SilentReceivers``); one that stays down is logged once a minute (``FailureLog``),
  not once per attempt; ``/metrics`` counts every failed attempt.

A worker sends a batch's subscriptions in parallel (``parallel_subscriptions``), each
subscription's rows in claim order, so a receiver that hangs delays only its own rows: a burst
claimed by one worker is not sent one row after another behind it.

A subscription whose target is a channel address (``channel:<name>``: a DingTalk, WeCom
or Feishu robot, or an e-mail list; ``anjian.service.channels``) goes through the same
rows, claims, retries and dead letters; the dispatcher hands it to ``AlertChannels.send``
instead of POSTing the JSON. A robot's refusal in an HTTP 200 (``errcode``/``code`` not 0)
is a failed attempt. A robot's rate-limit answer holds the whole robot as long as the vendor
asks (DingTalk: ten minutes) and is not counted toward ``max_attempts``; neither is a message
held back to keep a robot under its rate or out of its mute. The delivery to ``bus:hub``
is published to the plant's bus (``anjian.service.bus``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.exc import SQLAlchemyError

from anjian.service.bus.address import is_bus_address
from anjian.service.channels.address import is_channel_address
from anjian.service.channels.outcome import SendOutcome
from anjian.service.claims import Claim, LeaseKeeper, SuccessLog
from anjian.service.delivery_attempts import AttemptRecorder
from anjian.service.metrics import ServiceMetrics
from anjian.service.outbox import idempotency_key
from anjian.service.periodic import PeriodicThread
from anjian.service.receiver_health import FailureLog, SilentReceivers
from anjian.service.records import Subscription, WebhookDelivery
from anjian.service.signing import SIGNATURE_HEADER, sign_payload, signature_headers, verify_signature
from anjian.service.store import EventStore
from anjian.service.webhook_poster import WebhookPoster

if TYPE_CHECKING:
    from anjian.service.bus.plant import PlantBus
    from anjian.service.channels.registry import AlertChannels

__all__ = [
    "SIGNATURE_HEADER",
    "FailureLog",
    "WebhookDispatcher",
    "idempotency_key",
    "sign_payload",
    "signature_headers",
    "verify_signature",
]

logger = logging.getLogger(__name__)

_LEASE_S = 6.0
_PRUNE_INTERVAL_S = 3600.0  # how often settled deliveries past their keeping time are deleted
_FIRST_PRUNE_AFTER_S = (
    60.0  # the first time after start: a service restarted more often than hourly prunes too
)
_LOOP_FAULT_BACKOFF_S = 1.0


class WebhookDispatcher:
    """The worker threads that POST pending webhook deliveries from the store's outbox.

    A worker claims a batch of due rows with a short lease (``lease_s``), which a
    heartbeat thread renews while the batch is worked on (``anjian.service.claims``), and
    records each success at once. It sends the batch's subscriptions in parallel, each
    one's rows in claim order; after a row got no answer (``SendOutcome.is_unreachable``),
    that subscription's other rows wait, uncounted, until the row's retry.
    With several workers, announcements of one event may arrive out of order: receivers
    order by ``event.version``.

    Args:
        store: Where the outbox and the subscriptions live.
        transport: httpx transport; inject ``httpx.MockTransport`` in unit tests. Default:
            ``checked_transport``, which refuses to connect where ``address_fault`` says no.
        clock: Returns epoch seconds; stamps attempts, leases and signatures.
        backoff_base_s: Delay after the first failed attempt, doubled after each.
        backoff_max_s: Longest delay between attempts.
        idle_poll_s: Longest sleep between looks at the outbox when nothing is
            due and no commit of this process made a delivery due: the delivery
            delay for changes that another process writes into the same database.
        workers: Worker threads (concurrent POSTs).
        claim_batch: Deliveries a worker claims at once (fewer serialised database
            writes under a burst).
        parallel_subscriptions: Subscriptions a worker sends one batch to at once (threads),
            so one that hangs holds up no other.
        lease_s: How long a claim hides its rows from other workers and processes;
            renewed every third of it while the batch is worked on. It is also about
            how long rows claimed by a crashed process wait before they are sent again.
        metrics: Counts attempts and delivery latency, when given.
        channels: The site's robots and e-mail lists, which deliveries to ``channel:<name>``
            subscriptions go to; closed by ``stop``. ``None``: such deliveries fail (and are retried).
        bus: The plant's bus, which the delivery to ``bus:hub`` (the supervising hub) is published
            to; ``None``: such deliveries fail (and are retried). Its owner starts and stops it.
        keep_settled_s: Deliveries delivered or given up are deleted this long after (every
            hour, ``Outbox.prune``); ``None``: kept for ever.

    Example:
        >>> dispatcher = WebhookDispatcher(store)
        >>> dispatcher.start()
        >>> store.upsert_event(event)  # its commit wakes the workers
        >>> dispatcher.stop()
    """

    def __init__(
        self,
        store: EventStore,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 900.0,
        idle_poll_s: float = 5.0,
        workers: int = 4,
        claim_batch: int = 64,
        parallel_subscriptions: int = 8,
        lease_s: float = _LEASE_S,
        metrics: ServiceMetrics | None = None,
        channels: AlertChannels | None = None,
        bus: PlantBus | None = None,
        keep_settled_s: float | None = None,
    ) -> None:
        if backoff_base_s < 0 or backoff_max_s < backoff_base_s:
            raise ValueError(
                f"expected 0 <= backoff_base_s <= backoff_max_s, got {backoff_base_s} and {backoff_max_s}"
            )
        if idle_poll_s <= 0:
            raise ValueError(f"idle_poll_s must be > 0, got {idle_poll_s}")
        if not 1 <= workers <= 64:
            raise ValueError(f"workers must be in 1..64, got {workers}")
        if not 1 <= claim_batch <= 256:
            raise ValueError(f"claim_batch must be in 1..256, got {claim_batch}")
        if not 1 <= parallel_subscriptions <= 64:
            raise ValueError(f"parallel_subscriptions must be in 1..64, got {parallel_subscriptions}")
        if lease_s <= 0:
            raise ValueError(f"lease_s must be > 0, got {lease_s}")
        self._claim_batch = claim_batch
        self._parallel_subscriptions = parallel_subscriptions
        self._idle_poll_s = idle_poll_s
        self._store = store
        self._clock = clock
        self._workers = workers
        self._channels = channels
        self._bus = bus
        self._leases = LeaseKeeper(store.outbox, clock=clock, lease_s=lease_s)
        self._keep_settled_s = keep_settled_s
        self._pruner = (
            None
            if keep_settled_s is None
            else PeriodicThread(
                self.prune_settled,
                interval_s=_PRUNE_INTERVAL_S,
                first_after_s=_FIRST_PRUNE_AFTER_S,
                name="anjian-outbox-prune",
                transient=(SQLAlchemyError,),
            )
        )
        self._silent = SilentReceivers(clock=clock)
        self._attempts = AttemptRecorder(
            store.outbox,
            clock=clock,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            successes=SuccessLog(store.outbox, clock=clock, metrics=metrics),
            failures=FailureLog(metrics=metrics),
            silent=self._silent,
            metrics=metrics,
        )
        connections = workers * parallel_subscriptions  # POSTs in flight at most
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=workers * 2)
        self._poster = WebhookPoster(transport=transport, clock=clock, limits=limits)
        self._wake = threading.Condition()
        self._wake_count = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        store.outbox.add_due_listener(self.wake)

    @property
    def is_running(self) -> bool:
        """Whether a worker thread is alive."""
        return any(thread.is_alive() for thread in self._threads)

    def prune_settled(self) -> int:
        """Delete the deliveries settled more than ``keep_settled_s`` ago (none without it); returns how many."""
        if self._keep_settled_s is None:
            return 0
        deleted = self._store.outbox.prune(settled_before=self._clock() - self._keep_settled_s)
        if deleted:
            logger.info(
                "outbox: deleted %d delivery record(s) settled over %.0f days ago",
                deleted,
                self._keep_settled_s / 86_400,
            )
        return deleted

    def start(self) -> None:
        """Start the worker threads and the lease heartbeat; they first deliver whatever is already pending.

        Raises:
            RuntimeError: The dispatcher was stopped (it cannot be restarted) or is running.
        """
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("a stopped WebhookDispatcher cannot be restarted; create a new one")
            if self._threads:
                raise RuntimeError("WebhookDispatcher is already running")
            self._leases.start()
            if self._pruner is not None:
                self._pruner.start()
            for index in range(self._workers):
                thread = threading.Thread(target=self._run, name=f"anjian-webhooks-{index}", daemon=True)
                self._threads.append(thread)
                thread.start()
        logger.info("webhook dispatcher started with %d worker(s)", self._workers)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the workers (after the POSTs in flight, if any) and close the HTTP client.

        Rows a worker had claimed but not sent are handed back (due at once at the
        next start). Pending rows stay in the outbox. Safe to call twice.

        Args:
            timeout_s: How long to wait for the threads to finish.
        """
        self._stop.set()
        self._store.outbox.remove_due_listener(self.wake)
        self.wake()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._leases.stop(max(0.0, deadline - time.monotonic()))
        if self._pruner is not None:
            self._pruner.stop()
        if self.is_running:
            logger.warning("webhook dispatcher did not stop within %.1fs", timeout_s)
            return
        self._poster.close()
        if self._channels is not None:
            self._channels.close()

    def wake(self) -> None:
        """Tell the workers a new delivery is pending, so they do not wait for their timer (the outbox calls it)."""
        with self._wake:
            self._wake_count += 1
            self._wake.notify_all()

    def deliver_due(self) -> int:
        """Attempt every delivery due now, from the calling thread; the worker loop calls this.

        A batch with rows of several subscriptions is sent from up to ``parallel_subscriptions``
        threads, one per subscription; the call returns when the batches are settled. Useful
        in tests with a fake clock. A failed delivery is attempted again in the same call only
        if its backoff has already elapsed by the clock.

        Returns:
            How many deliveries were attempted.
        """
        attempted = 0
        while not self._stop.is_set():
            claim, batch = self._leases.claim(limit=self._claim_batch)
            if not batch:
                break
            # Read after the claim: a subscription created just before it has its rows in the batch.
            subscriptions = {s.id: s for s in self._store.subscriptions.list()}
            try:
                attempted += self._deliver_batch(claim, batch, subscriptions)
            finally:
                self._leases.done(claim)
        return attempted

    def _deliver_batch(
        self, claim: Claim, batch: list[WebhookDelivery], subscriptions: dict[int, Subscription]
    ) -> int:
        """Send a claimed batch: each subscription's rows in order, several subscriptions at once."""
        rows_of: dict[int, list[WebhookDelivery]] = {}
        for delivery in batch:
            rows_of.setdefault(delivery.subscription_id, []).append(delivery)
        if len(rows_of) == 1:
            return self._deliver_rows(claim, batch, subscriptions.get(batch[0].subscription_id))
        threads = min(len(rows_of), self._parallel_subscriptions)
        with ThreadPoolExecutor(
            threads, thread_name_prefix=f"{threading.current_thread().name}-send"
        ) as pool:
            sent = [
                pool.submit(self._deliver_rows, claim, rows, subscriptions.get(subscription_id))
                for subscription_id, rows in rows_of.items()
            ]
            return sum(future.result() for future in sent)

    def _deliver_rows(
        self, claim: Claim, rows: list[WebhookDelivery], subscription: Subscription | None
    ) -> int:
        """Send one subscription's rows of a batch in order; hand the rest back if stopping or the lease was lost.

        While the subscription is silent (a row got no answer, and its retry is not yet due)
        a row is held back without a try: it would wait its timeout for the same silence.
        """
        is_active = subscription is not None and subscription.is_active
        for index, delivery in enumerate(rows):
            if self._stop.is_set() or self._leases.is_expired(claim):
                # Stopping, or the lease ran out (renewal failed): hand the rest back rather than
                # risk another worker sending them too (rows another worker took since stay its own).
                self._store.outbox.release(
                    [d.id for d in rows[index:]], leased_until=claim.leased_until, now=self._clock()
                )
                return index
            if not self._leases.holds(claim, delivery.id):  # a renewal found it taken by another worker
                continue
            silent = self._silent.silence(delivery.subscription_id) if is_active else None
            if silent is not None:
                self._attempts.hold_back(delivery, *silent)
                continue
            self._attempt(delivery, subscription)
        return len(rows)

    def _run(self) -> None:
        """Worker loop: deliver what is due, then sleep until the next row is due or ``wake()``."""
        while not self._stop.is_set():
            with self._wake:
                seen = self._wake_count  # before looking, so a wake() during delivery is not lost
            try:
                self.deliver_due()
                due_at = self._store.outbox.next_due_at()
            except Exception:
                logger.exception("webhook dispatcher loop failed; retrying in %.1fs", _LOOP_FAULT_BACKOFF_S)
                self._stop.wait(_LOOP_FAULT_BACKOFF_S)
                continue
            idle_s = self._idle_poll_s
            wait_s = idle_s if due_at is None else min(idle_s, max(0.0, due_at - self._clock()))
            if wait_s > 0:
                self._sleep(seen, wait_s)
        logger.debug("webhook worker %s stopped", threading.current_thread().name)

    def _sleep(self, seen: int, wait_s: float) -> None:
        """Wait ``wait_s`` unless ``wake()`` was called since the worker read ``seen`` or it is stopping."""
        with self._wake:
            self._wake.wait_for(lambda: self._wake_count != seen or self._stop.is_set(), wait_s)

    def _attempt(self, delivery: WebhookDelivery, subscription: Subscription | None) -> None:
        """Send one claimed delivery and record how it went (on its row, in the log and the metrics)."""
        now = self._clock()
        if subscription is None or not subscription.is_active:
            self._attempts.dropped(delivery, now)
            return
        outcome = self._send(subscription, delivery)
        self._attempts.record(delivery, subscription, outcome, now=self._clock())

    def _send(self, subscription: Subscription, delivery: WebhookDelivery) -> SendOutcome:
        """Send the delivery once: to the hub's bus, its robot or e-mail channel, else POST it to the webhook."""
        if is_bus_address(subscription.url):
            if self._bus is None:
                return SendOutcome(None, "no bus is configured in this process")
            return self._bus.send(subscription, delivery)
        if not is_channel_address(subscription.url):
            return self._poster.post(subscription, delivery)
        if self._channels is None:
            return SendOutcome(None, "no alert channels are configured in this process")
        return self._channels.send(subscription, delivery)
