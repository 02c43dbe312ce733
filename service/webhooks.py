"""Deliver the webhook outbox: POST each pending announcement to its subscription, retrying with backoff.

Every change of an event enqueues one ``webhook_deliveries`` row per matching
subscription in the change's own transaction (``anjian.service.outbox``);
``WebhookDispatcher`` runs the worker threads that drain those rows. They sleep
until the earliest row is due or until ``wake()`` is called, which the outbox does
after every commit that made a delivery due (``Outbox.add_due_listener``), so an
announcement goes out within milliseconds, and a restart delivers whatever was pending.

Each POST carries the stored JSON body (``anjian.service.schemas.WebhookPayload``) and:

- ``Content-Type: application/json``
- ``webhook-id: <idempotency key>``, ``webhook-timestamp: <unix seconds>`` and, with
  a secret, ``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``
  (Standard Webhooks: receivers verify and deduplicate with the standard libraries;
  see ``anjian.service.signing`` for secrets and rotation)
- ``Idempotency-Key: <event id>:<change>:<subscription id>`` (the same on every retry)
- ``X-Anjian-Event-Id: <event id>``, ``X-Anjian-Event-Kind: event.created | …``
- ``X-Anjian-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with
  a secret (anjian's own scheme, kept for existing receivers: ``verify_signature``).

A 2xx response delivers the row; it is recorded at once (``anjian.service.claims.SuccessLog``),
so a crash re-sends at most the POSTs in flight. A transport error
(``httpx.HTTPError``, or any other exception raised while sending) or any other status is retried after
``min(backoff_max_s, backoff_base_s * 2**(attempts-1))`` seconds (``anjian.cameras.backoff``) for as long as the
subscription's ``retry_for_s`` (24 h by default) allows, and at most
``max_attempts`` times when it sets one; then the row becomes a dead letter (status
failed), which ``Outbox.redeliver`` queues again. Every attempt records its status
code and error on the row (of a non-2xx answer, ``HTTP <status>`` and the start of its
body, one printable line of 80 characters at most: the receiver's reason, not its page).
A receiver that gives no answer (it cannot be reached, or times out) is not tried again, by
any worker, before that row's retry: its other rows are held back until then, uncounted (no
attempt was made), rather than each waiting its timeout; the row tried first probes it again.
A worker sends a batch's subscriptions in parallel (``parallel_subscriptions``), each
subscription's rows in claim order, so a receiver that hangs delays only its own rows: a burst
claimed by one worker is not sent one row after another behind it.
POSTs connect only to addresses a webhook may go to (``anjian.service.webhook_url``):
a target that resolves to a link-local, cloud metadata or unspecified address fails
with ``ConnectError`` saying so. A receiver that stays down is logged once a minute
(``FailureLog``), not once per attempt; ``/metrics`` counts every failed attempt.

A subscription whose target is a channel address (``channel:<name>``: a DingTalk, WeCom
or Feishu robot, or an e-mail list; ``anjian.service.channels``) goes through the same
rows, claims, retries and dead letters; the dispatcher hands it to ``AlertChannels.send``
instead of POSTing the JSON. A robot's refusal in an HTTP 200 (``errcode``/``code`` not 0)
is a failed attempt. A robot's rate-limit answer holds the whole robot as long as the vendor
asks (DingTalk: ten minutes) and is not counted toward ``max_attempts``; neither is a message
held back to keep a robot under its rate or out of its mute.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.exc import SQLAlchemyError

from anjian.cameras.backoff import backoff_delay_s
from anjian.service.bus.address import is_bus_address
from anjian.service.channels.address import is_channel_address
from anjian.service.channels.outcome import SendOutcome, retry_after_header_s
from anjian.service.claims import Claim, LeaseKeeper, SuccessLog
from anjian.service.metrics import ServiceMetrics
from anjian.service.outbox import idempotency_key
from anjian.service.periodic import PeriodicThread
from anjian.service.records import Subscription, WebhookDelivery
from anjian.service.signing import SIGNATURE_HEADER, sign_payload, signature_headers, verify_signature
from anjian.service.store import EventStore
from anjian.service.tokens import printable
from anjian.service.webhook_url import checked_transport

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
_LOOP_FAULT_BACKOFF_S = 1.0
_ERROR_BODY_CHARS = 80  # of a non-2xx answer, kept in last_error: the receiver's reason, not its page
_FAILURE_LOG_INTERVAL_S = 60.0
_HELD_ERROR_CHARS = 200  # of the error that held a row back, quoted on it


def _anjian_version() -> str:
    """The installed anjian version, or ``"0"`` when running from a bare checkout."""
    try:
        return version("anjian")
    except PackageNotFoundError:
        return "0"


class FailureLog:
    """Logs failed webhook attempts at most once per ``interval_s`` per subscription; counts every one.

    A receiver that is down fails every attempt of every delivery: one WARNING per
    attempt would bury the rest of the log. The first failure after a quiet spell is
    logged at once; later ones within ``interval_s`` only count, and the next line
    says how many were left out. A success after failures is logged (INFO). Dead
    letters (ERROR) are rate-limited the same way, separately.

    Args:
        interval_s: Shortest time between two lines of one subscription and kind.
        clock: Monotonic seconds.
        metrics: Counts every failed attempt by subscription, and the lines left out.
    """

    def __init__(
        self,
        *,
        interval_s: float = _FAILURE_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.Lock()
        self._last_logged: dict[tuple[int, int], float] = {}
        self._suppressed: dict[tuple[int, int], int] = {}
        self._failing: dict[int, int] = {}  # subscription id -> failed attempts since its last success

    def failed(self, subscription_id: int, level: int, message: str, *args: object) -> bool:
        """Count a failed attempt and log it (``logger.log(level, message, *args)``) unless rate-limited.

        Returns:
            Whether the line was logged.
        """
        key = (subscription_id, level)
        now = self._clock()
        with self._lock:
            self._failing[subscription_id] = self._failing.get(subscription_id, 0) + 1
            last = self._last_logged.get(key)
            if last is not None and now - last < self._interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                suppressed = -1
            else:
                self._last_logged[key] = now
                suppressed = self._suppressed.pop(key, 0)
        if self._metrics is not None:
            self._metrics.webhook_failures.labels(subscription_id=str(subscription_id)).inc()
            if suppressed < 0:
                self._metrics.webhook_log_suppressed.inc()
        if suppressed < 0:
            return False
        if suppressed:
            message += " (%d similar line(s) of this webhook left out in the last %.0fs)"
            args = (*args, suppressed, self._interval_s)
        elif last is None:
            message += " (further failures of this webhook: at most one line a minute)"
        logger.log(level, message, *args)
        return True

    def succeeded(self, subscription_id: int, url: str) -> None:
        """A 2xx from this subscription: say so once if it had been failing."""
        with self._lock:
            failures = self._failing.pop(subscription_id, 0)
            if failures:
                for key in [k for k in self._last_logged if k[0] == subscription_id]:
                    self._last_logged.pop(key, None)
                    self._suppressed.pop(key, None)
        if failures:
            logger.info("webhook %s answers again after %d failed attempt(s)", url, failures)


def _body_start(response: httpx.Response, limit: int = 4 * _ERROR_BODY_CHARS) -> bytes:
    """The first ``limit`` bytes (about) of a streamed response's body; the rest is never read."""
    start = b""
    for chunk in response.iter_bytes():
        start += chunk
        if len(start) >= limit:
            break
    return start[:limit]


def _excerpt(text: str) -> str:
    """The start of a receiver's error text as one short printable line (``_ERROR_BODY_CHARS`` at most)."""
    return printable(" ".join(text[: 2 * _ERROR_BODY_CHARS].split()))[:_ERROR_BODY_CHARS]


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
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._workers = workers
        self._metrics = metrics
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
                name="anjian-outbox-prune",
                transient=(SQLAlchemyError,),
            )
        )
        self._successes = SuccessLog(store.outbox, clock=clock, metrics=metrics)
        self._failures = FailureLog(metrics=metrics)
        connections = workers * parallel_subscriptions  # POSTs in flight at most
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=workers * 2)
        self._client = httpx.Client(
            # Connect-time address check: no link-local, metadata or unspecified target, whatever its name resolves to.
            transport=transport if transport is not None else checked_transport(limits=limits),
            follow_redirects=False,
            headers={"User-Agent": f"anjian/{_anjian_version()}"},
            limits=limits,
        )
        self._wake = threading.Condition()
        self._wake_count = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._silent: dict[int, tuple[float, str]] = {}  # subscription id -> (tried again at, why): no answer
        self._silent_lock = threading.Lock()
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
        self._client.close()
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
            silent = self._silence(delivery.subscription_id) if is_active else None
            if silent is not None:
                self._hold_back(delivery, *silent)
                continue
            self._attempt(delivery, subscription)
        return len(rows)

    def _silence(self, subscription_id: int) -> tuple[float, str] | None:
        """Until when, and why, a subscription that gave no answer is not tried; ``None`` when it may be."""
        with self._silent_lock:
            silent = self._silent.get(subscription_id)
            if silent is not None and silent[0] <= self._clock():
                del self._silent[subscription_id]  # its retry is due: the next row probes it
                return None
            return silent

    def _fell_silent(self, subscription_id: int, until: float, why: str) -> None:
        """Hold back the subscription's rows until ``until``: it gave no answer (``why``)."""
        with self._silent_lock:
            self._silent[subscription_id] = (until, why[:_HELD_ERROR_CHARS])

    def _answered(self, subscription_id: int) -> None:
        """The subscription answered: its rows go again."""
        with self._silent_lock:
            self._silent.pop(subscription_id, None)

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
            logger.warning(
                "webhook subscription %d (%s) is no longer active; dropping delivery %d",
                delivery.subscription_id,
                delivery.url,
                delivery.id,
            )
            self._store.outbox.mark_attempt_failed(
                delivery.id,
                error="the webhook subscription is no longer active",
                status_code=None,
                retry_at=None,
                now=now,
                is_counted=False,
            )
            self._count("dead_letter")
            return
        outcome = self._send(subscription, delivery)
        now = self._clock()
        if outcome.is_success and outcome.status_code is not None:
            self._successes.record(delivery, outcome.status_code)
            self._failures.succeeded(subscription.id, subscription.url)
            self._answered(subscription.id)
            return
        if not outcome.is_attempted:
            self._defer(delivery, outcome, now)
            return
        if outcome.is_rate_limited:
            self._answered(subscription.id)
            self._rate_limited(delivery, subscription, outcome, now)
            return
        attempts = delivery.attempts + 1
        delay_s = backoff_delay_s(attempts, base_s=self._backoff_base_s, max_s=self._backoff_max_s)
        wait_s = max(delay_s, outcome.retry_after_s or 0.0)
        retry_at: float | None = now + wait_s
        is_capped = subscription.max_attempts is not None and attempts >= subscription.max_attempts
        if is_capped or (retry_at is not None and retry_at > delivery.retry_until):
            retry_at = None
        error = outcome.error or "unknown error"
        if outcome.is_unreachable:
            self._fell_silent(subscription.id, now + wait_s, f"no answer to delivery {delivery.id} ({error})")
        else:
            self._answered(subscription.id)
        self._store.outbox.mark_attempt_failed(
            delivery.id, error=error, status_code=outcome.status_code, retry_at=retry_at, now=now
        )
        if retry_at is None:
            self._count("dead_letter")
            self._failures.failed(
                subscription.id,
                logging.ERROR,
                "giving up on %s of event %s to %s after %d attempt(s): %s",
                delivery.kind,
                delivery.event_id,
                delivery.url,
                attempts,
                error,
            )
        else:
            self._count("retry")
            self._failures.failed(
                subscription.id,
                logging.WARNING,
                "%s of event %s to %s failed (attempt %d): %s; retry in %.1fs",
                delivery.kind,
                delivery.event_id,
                delivery.url,
                attempts,
                error,
                retry_at - now,
            )

    def _count(self, result: str) -> None:
        """Count one settled attempt."""
        if self._metrics is not None:
            self._metrics.deliveries.labels(result=result).inc()

    def _defer(self, delivery: WebhookDelivery, outcome: SendOutcome, now: float) -> None:
        """Hold back a delivery that was not sent (a robot at its rate): due again later, no attempt counted."""
        retry_at = now + (outcome.retry_after_s or self._backoff_base_s)
        self._postpone(
            delivery, error=outcome.error or "held back", status_code=None, retry_at=retry_at, now=now
        )

    def _hold_back(self, delivery: WebhookDelivery, until: float, reason: str) -> None:
        """Hold back a row, untried and uncounted, until the retry of another that its receiver left unanswered."""
        self._postpone(
            delivery, error=f"held back: {reason}", status_code=None, retry_at=until, now=self._clock()
        )

    def _rate_limited(
        self, delivery: WebhookDelivery, subscription: Subscription, outcome: SendOutcome, now: float
    ) -> None:
        """A receiver refused a delivery for its rate: due again when it asked, the refusal not counted."""
        retry_at = now + (outcome.retry_after_s or self._backoff_base_s)
        error = outcome.error or "rate limited"
        if not self._postpone(
            delivery, error=error, status_code=outcome.status_code, retry_at=retry_at, now=now
        ):
            self._failures.failed(
                subscription.id,
                logging.ERROR,
                "giving up on %s of event %s to %s: its retry window ends before the rate limit does: %s",
                delivery.kind,
                delivery.event_id,
                delivery.url,
                error,
            )
            return
        self._failures.failed(
            subscription.id,
            logging.WARNING,
            "%s of event %s to %s was refused for the receiver's rate (not counted as an attempt): %s; "
            "retry in %.0fs",
            delivery.kind,
            delivery.event_id,
            delivery.url,
            error,
            retry_at - now,
        )

    def _postpone(
        self, delivery: WebhookDelivery, *, error: str, status_code: int | None, retry_at: float, now: float
    ) -> bool:
        """Make a row due again at ``retry_at`` without counting an attempt (a dead letter past its window).

        Returns:
            Whether the row is still pending.
        """
        is_kept = retry_at <= delivery.retry_until
        self._store.outbox.mark_attempt_failed(
            delivery.id,
            error=error,
            status_code=status_code,
            retry_at=retry_at if is_kept else None,
            now=now,
            is_counted=False,
        )
        self._count("deferred" if is_kept else "dead_letter")
        logger.debug(
            "%s of event %s to %s held back %.1fs: %s",
            delivery.kind,
            delivery.event_id,
            delivery.url,
            retry_at - now,
            error,
        )
        return is_kept

    def _send(self, subscription: Subscription, delivery: WebhookDelivery) -> SendOutcome:
        """Send the delivery once: to the hub's bus, its robot or e-mail channel, else POST it to the webhook."""
        if is_bus_address(subscription.url):
            if self._bus is None:
                return SendOutcome(None, "no bus is configured in this process")
            return self._bus.send(subscription, delivery)
        if not is_channel_address(subscription.url):
            return self._post(subscription, delivery)
        if self._channels is None:
            return SendOutcome(None, "no alert channels are configured in this process")
        return self._channels.send(subscription, delivery)

    def _post(self, subscription: Subscription, delivery: WebhookDelivery) -> SendOutcome:
        """Send the delivery's body once; never raises: any failure to send is a failed attempt of this delivery.

        Not only ``httpx.HTTPError``: a URL that slipped past validation (stored before
        ``check_webhook_url`` existed) makes the resolver raise ``UnicodeError``, and
        that must fail this delivery, not stop the dispatcher from sending the others.
        """
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            signatures = signature_headers(
                subscription.secret, delivery.idempotency_key, body, int(self._clock())
            )
        except ValueError as exc:  # a secret stored before it was checked; the message never shows it
            return SendOutcome(status_code=None, error=f"cannot sign: {exc}")
        headers = {
            "Content-Type": "application/json",
            "X-Anjian-Event-Id": delivery.event_id,
            "X-Anjian-Event-Kind": delivery.kind,
            "Idempotency-Key": delivery.idempotency_key,
            **signatures,
        }
        try:
            with self._client.stream(
                "POST", subscription.url, content=body, headers=headers, timeout=subscription.timeout_s
            ) as response:
                if response.is_success:
                    return SendOutcome(status_code=response.status_code, error=None)
                start = _body_start(response)  # only what the record keeps: a receiver may answer megabytes
        except httpx.TransportError as exc:  # no answer (connect, timeout): its other rows wait with it
            return SendOutcome(status_code=None, error=f"{type(exc).__name__}: {exc}", is_unreachable=True)
        except Exception as exc:  # noqa: BLE001 - UnicodeError (IDNA), ...: a failed attempt
            return SendOutcome(status_code=None, error=f"{type(exc).__name__}: {exc}")
        excerpt = _excerpt(start.decode(response.encoding or "utf-8", errors="replace"))
        is_asked_to_wait = response.status_code in (429, 503)
        return SendOutcome(
            status_code=response.status_code,
            error=f"HTTP {response.status_code}" + (f": {excerpt}" if excerpt else ""),
            retry_after_s=retry_after_header_s(response.headers, now=self._clock())
            if is_asked_to_wait
            else None,
        )
