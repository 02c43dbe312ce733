"""Deliver the webhook outbox: POST each pending announcement to its subscription, retrying with backoff.

Every change of an event enqueues one ``webhook_deliveries`` row per matching
subscription in the change's own transaction (``service.outbox``);
``WebhookDispatcher`` runs the worker threads that drain those rows. They sleep
until the earliest row is due or until ``wake()`` is called (after every stored
change), so an announcement goes out within milliseconds, and a restart delivers
whatever was pending.

Each POST carries the stored JSON body (``service.schemas.WebhookPayload``) and:

- ``Content-Type: application/json``
- ``X-Anjian-Event-Id: <event id>``
- ``X-Anjian-Event-Kind: event.created | event.acknowledged | …``
- ``Idempotency-Key: <event id>:<change>:<subscription id>`` (the same on every retry)
- ``X-Anjian-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
  when the subscription has a secret; receivers check it with ``verify_signature``
  and refuse a ``t`` outside their replay window (300 s by default).

A 2xx response delivers the row. A transport error (``httpx.HTTPError``) or any
other status is retried after ``min(backoff_max_s, backoff_base_s * 2**(attempts-1))``
seconds for as long as the subscription's ``retry_for_s`` (24 h by default) allows,
and at most ``max_attempts`` times when it sets one; then the row becomes a dead
letter (status failed), which ``Outbox.redeliver`` queues again. Every attempt
records its status code and error on the row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import httpx

from service.metrics import ServiceMetrics
from service.outbox import idempotency_key
from service.records import Subscription, WebhookDelivery
from service.store import EventStore

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookDispatcher",
    "backoff_delay_s",
    "idempotency_key",
    "sign_payload",
    "signature_headers",
    "verify_signature",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Anjian-Signature"
_LEASE_MARGIN_S = 10.0
_MAX_TIMEOUT_S = 120.0  # the largest timeout_s a subscription may set
_LOOP_FAULT_BACKOFF_S = 1.0
_ERROR_BODY_CHARS = 200


def _anjian_version() -> str:
    """The installed anjian version, or ``"0"`` when running from a bare checkout."""
    try:
        return version("anjian")
    except PackageNotFoundError:
        return "0"


def sign_payload(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Anjian-Signature`` header value for ``body`` sent at ``timestamp``.

    Args:
        secret: The webhook's shared secret.
        body: The exact bytes POSTed.
        timestamp: Unix seconds, included in the signed text against replays.

    Returns:
        ``"t=<timestamp>,v1=<hex HMAC-SHA256 of b"<timestamp>." + body>"``.
    """
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance_s: float = 300.0
) -> bool:
    """Check an ``X-Anjian-Signature`` header, as a receiver would.

    Args:
        secret: The shared secret.
        header: The header value, ``t=<unix>,v1=<hex>``.
        body: The raw request body.
        now: Current epoch seconds; ``None`` skips the freshness check.
        tolerance_s: Largest accepted distance between ``t`` and ``now``.

    Returns:
        Whether the signature matches and, when ``now`` is given, is fresh.
    """
    fields: dict[str, str] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    try:
        timestamp = int(fields["t"])
        received = fields["v1"]
    except (KeyError, ValueError):
        return False
    if now is not None and abs(now - timestamp) > tolerance_s:
        return False
    expected = sign_payload(secret, body, timestamp).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, received)


def signature_headers(secret: str | None, body: bytes, timestamp: int) -> dict[str, str]:
    """The signature header for ``body`` when there is a secret, else nothing."""
    return {} if secret is None else {SIGNATURE_HEADER: sign_payload(secret, body, timestamp)}


def backoff_delay_s(attempts: int, *, base_s: float, max_s: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``min(max_s, base_s * 2**(attempts-1))``."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    return min(max_s, base_s * 2.0 ** min(attempts - 1, 64))


@dataclass(frozen=True, slots=True)
class _Outcome:
    """Result of one POST: a status code, an error, or both."""

    status_code: int | None
    error: str | None


class WebhookDispatcher:
    """The worker threads that POST pending webhook deliveries from the store's outbox.

    The lease taken by ``Outbox.claim_due`` keeps workers (and dispatchers of other
    processes on the same database) from POSTing one row at once. With several
    workers, announcements of one event may arrive out of order: receivers order
    by ``event.version``.

    Args:
        store: Where the outbox and the subscriptions live.
        transport: httpx transport; inject ``httpx.MockTransport`` in unit tests.
        clock: Returns epoch seconds; stamps attempts and signatures.
        backoff_base_s: Delay after the first failed attempt, doubled after each.
        backoff_max_s: Longest delay between attempts.
        idle_poll_s: Longest sleep between looks at the outbox when nothing is
            due and nobody calls ``wake()``: the delivery delay for changes that
            another process writes into the same database.
        workers: Worker threads (concurrent POSTs).
        claim_batch: Deliveries a worker claims at once and settles in one write when
            they succeed (fewer serialised database writes under a burst).
        lease_margin_s: A claim hides its rows for the longest subscription timeout
            plus this; a worker sends the next row of its batch only while that POST
            would end within the lease, and hands the rest back otherwise. It is also
            how long rows claimed by a crashed process wait.
        metrics: Counts attempts and delivery latency, when given.

    Example:
        >>> dispatcher = WebhookDispatcher(store)
        >>> dispatcher.start()
        >>> store.upsert_event(event); dispatcher.wake()
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
        lease_margin_s: float = _LEASE_MARGIN_S,
        metrics: ServiceMetrics | None = None,
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
        if lease_margin_s <= 0:
            raise ValueError(f"lease_margin_s must be > 0, got {lease_margin_s}")
        self._claim_batch = claim_batch
        self._lease_margin_s = lease_margin_s
        self._idle_poll_s = idle_poll_s
        self._store = store
        self._clock = clock
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._workers = workers
        self._metrics = metrics
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": f"anjian/{_anjian_version()}"},
            limits=httpx.Limits(max_connections=workers * 2, max_keepalive_connections=workers * 2),
        )
        self._wake = threading.Condition()
        self._wake_count = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def is_running(self) -> bool:
        """Whether a worker thread is alive."""
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        """Start the worker threads; they first deliver whatever is already pending.

        Raises:
            RuntimeError: The dispatcher was stopped (it cannot be restarted) or is running.
        """
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("a stopped WebhookDispatcher cannot be restarted; create a new one")
            if self._threads:
                raise RuntimeError("WebhookDispatcher is already running")
            for index in range(self._workers):
                thread = threading.Thread(target=self._run, name=f"anjian-webhooks-{index}", daemon=True)
                self._threads.append(thread)
                thread.start()
        logger.info("webhook dispatcher started with %d worker(s)", self._workers)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the workers (after the POSTs in flight, if any) and close the HTTP client.

        Pending rows stay in the outbox for the next start. Safe to call twice.

        Args:
            timeout_s: How long to wait for the threads to finish.
        """
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        if self.is_running:
            logger.warning("webhook dispatcher did not stop within %.1fs", timeout_s)
            return
        self._client.close()

    def wake(self) -> None:
        """Tell the workers a new delivery is pending, so they do not wait for their timer."""
        with self._wake:
            self._wake_count += 1
            self._wake.notify_all()

    def deliver_due(self) -> int:
        """Attempt every delivery due now, in the calling thread; the worker loop calls this.

        Useful in tests with a fake clock. A failed delivery is attempted again in
        the same call only if its backoff has already elapsed by the clock.

        Returns:
            How many deliveries were attempted.
        """
        attempted = 0
        while not self._stop.is_set():
            subscriptions = {s.id: s for s in self._store.subscriptions.list()}
            lease_s = self._lease_s(subscriptions.values())
            batch = self._store.outbox.claim_due(now=self._clock(), lease_s=lease_s, limit=self._claim_batch)
            if not batch:
                break
            claimed_at = time.monotonic()
            delivered: dict[int, int] = {}
            try:
                for index, delivery in enumerate(batch):
                    subscription = subscriptions.get(delivery.subscription_id)
                    timeout_s = subscription.timeout_s if subscription is not None else 0.0
                    if self._stop.is_set() or time.monotonic() - claimed_at + timeout_s > lease_s:
                        # Stopping, or the lease could run out during this POST (slow receivers):
                        # hand the rest back rather than risk another worker sending them too.
                        self._store.outbox.release([d.id for d in batch[index:]], now=self._clock())
                        break
                    status_code = self._attempt(delivery, subscription)
                    attempted += 1
                    if status_code is not None:
                        delivered[delivery.id] = status_code
            finally:
                self._settle_delivered(batch, delivered)
        return attempted

    def _lease_s(self, subscriptions: Iterable[Subscription]) -> float:
        """How long a claimed batch stays hidden from other workers: the longest timeout plus a margin.

        A worker sends a batch's next row only while its POST would end within the lease.
        """
        longest = max((s.timeout_s for s in subscriptions), default=_MAX_TIMEOUT_S)
        return longest + self._lease_margin_s

    def _settle_delivered(self, batch: list[WebhookDelivery], status_codes: dict[int, int]) -> None:
        """Record the successful POSTs of a batch (``status_codes`` by delivery id) in one write."""
        if not status_codes:
            return
        now = self._clock()
        self._store.outbox.mark_delivered(status_codes, now=now)
        for delivery in (d for d in batch if d.id in status_codes):
            self._count("delivered")
            if self._metrics is not None:
                self._metrics.delivery_latency.observe(max(0.0, now - delivery.created_at))
            logger.debug("delivered %s of event %s to %s", delivery.kind, delivery.event_id, delivery.url)

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

    def _attempt(self, delivery: WebhookDelivery, subscription: Subscription | None) -> int | None:
        """POST one claimed delivery; record a failure on its row, return the status code of a success."""
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
            return None
        outcome = self._post(subscription, delivery)
        now = self._clock()
        if outcome.error is None and outcome.status_code is not None:
            return outcome.status_code
        attempts = delivery.attempts + 1
        retry_at: float | None = now + backoff_delay_s(
            attempts, base_s=self._backoff_base_s, max_s=self._backoff_max_s
        )
        is_capped = subscription.max_attempts is not None and attempts >= subscription.max_attempts
        if is_capped or (retry_at is not None and retry_at > delivery.retry_until):
            retry_at = None
        error = outcome.error or "unknown error"
        self._store.outbox.mark_attempt_failed(
            delivery.id, error=error, status_code=outcome.status_code, retry_at=retry_at, now=now
        )
        if retry_at is None:
            self._count("dead_letter")
            logger.error(
                "giving up on %s of event %s to %s after %d attempt(s): %s",
                delivery.kind,
                delivery.event_id,
                delivery.url,
                attempts,
                error,
            )
        else:
            self._count("retry")
            logger.warning(
                "%s of event %s to %s failed (attempt %d): %s; retry in %.1fs",
                delivery.kind,
                delivery.event_id,
                delivery.url,
                attempts,
                error,
                retry_at - now,
            )
        return None

    def _count(self, result: str) -> None:
        """Count one settled attempt."""
        if self._metrics is not None:
            self._metrics.deliveries.labels(result=result).inc()

    def _post(self, subscription: Subscription, delivery: WebhookDelivery) -> _Outcome:
        """Send the delivery's body once; never raises for HTTP or network failures."""
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Anjian-Event-Id": delivery.event_id,
            "X-Anjian-Event-Kind": delivery.kind,
            "Idempotency-Key": delivery.idempotency_key,
            **signature_headers(subscription.secret, body, int(self._clock())),
        }
        try:
            response = self._client.post(
                subscription.url, content=body, headers=headers, timeout=subscription.timeout_s
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _Outcome(status_code=None, error=f"{type(exc).__name__}: {exc}")
        if response.is_success:
            return _Outcome(status_code=response.status_code, error=None)
        excerpt = response.text[:_ERROR_BODY_CHARS].strip()
        return _Outcome(
            status_code=response.status_code,
            error=f"HTTP {response.status_code}" + (f": {excerpt}" if excerpt else ""),
        )
