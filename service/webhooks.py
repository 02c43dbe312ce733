"""Deliver the webhook outbox: POST each pending event revision to its URL, retrying with backoff.

``EventStore.upsert_event`` writes one ``webhook_deliveries`` row per (revision,
URL) in the event's own transaction; ``WebhookDispatcher`` is the single worker
thread that drains those rows. It sleeps until the earliest row is due or until
``wake()`` is called (``StoreSink`` calls it after every stored revision), so a new
event goes out within milliseconds, and a restart delivers whatever was pending.

Each POST carries the stored JSON body (``service.schemas.WebhookPayload``) and:

- ``Content-Type: application/json``
- ``X-Anjian-Event-Id: <event id>``
- ``X-Anjian-Event-Kind: event.created | event.updated | event.ended``
- ``Idempotency-Key: <event id>:<revision>:<first 16 hex of sha256(url)>``
- ``X-Anjian-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
  when the webhook has a secret (``verify_signature`` checks one).

A 2xx response delivers the row. A transport error (``httpx.HTTPError``) or any
other status is retried after ``min(backoff_max_s, backoff_base_s * 2**(attempts-1))``
seconds until ``max_attempts`` is reached; then the row is marked failed. Every
attempt records its status code and error on the row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import httpx

from service.config import WebhookConfig
from service.store import EventStore, WebhookDelivery

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookDispatcher",
    "backoff_delay_s",
    "idempotency_key",
    "sign_payload",
    "verify_signature",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Anjian-Signature"
_LEASE_MARGIN_S = 10.0
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


def idempotency_key(event_id: str, revision: int, url: str) -> str:
    """``<event_id>:<revision>:<first 16 hex of sha256(url)>``: the same for every retry of one delivery."""
    return f"{event_id}:{revision}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"


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
    """The worker thread that POSTs pending webhook deliveries from the store's outbox.

    Only one dispatcher should run per database; if two do, the lease taken by
    ``EventStore.claim_due_delivery`` keeps them from POSTing the same row at once.

    Args:
        store: Where the outbox lives.
        webhooks: The configured webhooks; a pending row whose URL is no longer
            configured is marked failed without being sent.
        transport: httpx transport; inject ``httpx.MockTransport`` in unit tests.
        clock: Returns epoch seconds; stamps attempts and signatures.
        backoff_base_s: Delay after the first failed attempt, doubled after each.
        backoff_max_s: Longest delay between attempts.
        idle_poll_s: Longest sleep between looks at the outbox when nothing is
            due and nobody calls ``wake()``: the delivery delay for events that
            another process writes into the same database.

    Example:
        >>> dispatcher = WebhookDispatcher(store, config.webhooks)
        >>> dispatcher.start()
        >>> store.upsert_event(event, webhook_urls=dispatcher.urls); dispatcher.wake()
        >>> dispatcher.stop()
    """

    def __init__(
        self,
        store: EventStore,
        webhooks: Sequence[WebhookConfig],
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        idle_poll_s: float = 60.0,
    ) -> None:
        if backoff_base_s < 0 or backoff_max_s < backoff_base_s:
            raise ValueError(
                f"expected 0 <= backoff_base_s <= backoff_max_s, got {backoff_base_s} and {backoff_max_s}"
            )
        if idle_poll_s <= 0:
            raise ValueError(f"idle_poll_s must be > 0, got {idle_poll_s}")
        self._idle_poll_s = idle_poll_s
        self._store = store
        self._webhooks: dict[str, WebhookConfig] = {}
        for webhook in webhooks:
            if webhook.url in self._webhooks:
                logger.warning("webhook %s is configured twice; using the first entry", webhook.url)
                continue
            self._webhooks[webhook.url] = webhook
        self._clock = clock
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": f"anjian/{_anjian_version()}"},
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def urls(self) -> list[str]:
        """The configured webhook URLs, in config order, each once."""
        return list(self._webhooks)

    @property
    def is_running(self) -> bool:
        """Whether the worker thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the worker thread; it first delivers whatever is already pending.

        Raises:
            RuntimeError: The dispatcher was stopped (it cannot be restarted) or is running.
        """
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("a stopped WebhookDispatcher cannot be restarted; create a new one")
            if self._thread is not None:
                raise RuntimeError("WebhookDispatcher is already running")
            self._thread = threading.Thread(target=self._run, name="anjian-webhooks", daemon=True)
            self._thread.start()
        logger.info("webhook dispatcher started for %d URL(s)", len(self._webhooks))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the worker (after the POST in flight, if any) and close the HTTP client.

        Pending rows stay in the outbox for the next start. Safe to call twice.

        Args:
            timeout_s: How long to wait for the thread to finish.
        """
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning("webhook dispatcher did not stop within %.1fs", timeout_s)
                return
        self._client.close()

    def wake(self) -> None:
        """Tell the worker a new delivery is pending, so it does not wait for its timer."""
        self._wake.set()

    def deliver_due(self) -> int:
        """Attempt every delivery due now, in the calling thread; the worker loop calls this.

        Useful in tests with a fake clock. A failed delivery is attempted again in
        the same call only if its backoff has already elapsed by the clock.

        Returns:
            How many deliveries were attempted.
        """
        attempted = 0
        while not self._stop.is_set():
            now = self._clock()
            lease_s = self._lease_s()
            delivery = self._store.claim_due_delivery(now=now, lease_s=lease_s)
            if delivery is None:
                break
            self._attempt(delivery)
            attempted += 1
        return attempted

    def _lease_s(self) -> float:
        """How long a claimed row stays hidden from other dispatchers: the longest timeout plus a margin."""
        longest = max((w.timeout_s for w in self._webhooks.values()), default=0.0)
        return longest + _LEASE_MARGIN_S

    def _run(self) -> None:
        """Worker loop: deliver what is due, then sleep until the next row is due or ``wake()``."""
        while not self._stop.is_set():
            self._wake.clear()  # before looking, so a wake() during delivery is not lost
            try:
                self.deliver_due()
                due_at = self._store.next_delivery_due_at()
            except Exception:
                logger.exception("webhook dispatcher loop failed; retrying in %.1fs", _LOOP_FAULT_BACKOFF_S)
                self._stop.wait(_LOOP_FAULT_BACKOFF_S)
                continue
            idle_s = self._idle_poll_s
            wait_s = idle_s if due_at is None else min(idle_s, max(0.0, due_at - self._clock()))
            if wait_s > 0:
                self._wake.wait(wait_s)
        logger.info("webhook dispatcher stopped")

    def _attempt(self, delivery: WebhookDelivery) -> None:
        """POST one claimed delivery and record the outcome on its row."""
        webhook = self._webhooks.get(delivery.url)
        now = self._clock()
        if webhook is None:
            logger.warning(
                "webhook %s is no longer configured; dropping delivery %d", delivery.url, delivery.id
            )
            self._store.mark_attempt_failed(
                delivery.id,
                error="webhook URL is no longer configured",
                status_code=None,
                retry_at=None,
                now=now,
                is_counted=False,
            )
            return
        outcome = self._post(webhook, delivery)
        now = self._clock()
        if outcome.error is None and outcome.status_code is not None:
            self._store.mark_delivered(delivery.id, status_code=outcome.status_code, now=now)
            logger.debug(
                "delivered event %s rev %d to %s", delivery.event_id, delivery.revision, delivery.url
            )
            return
        attempts = delivery.attempts + 1
        retry_at: float | None = None
        if attempts < webhook.max_attempts:
            retry_at = now + backoff_delay_s(attempts, base_s=self._backoff_base_s, max_s=self._backoff_max_s)
        error = outcome.error or "unknown error"
        self._store.mark_attempt_failed(
            delivery.id, error=error, status_code=outcome.status_code, retry_at=retry_at, now=now
        )
        if retry_at is None:
            logger.error(
                "giving up on event %s rev %d to %s after %d attempt(s): %s",
                delivery.event_id,
                delivery.revision,
                delivery.url,
                attempts,
                error,
            )
        else:
            logger.warning(
                "event %s rev %d to %s failed (attempt %d/%d): %s; retry in %.1fs",
                delivery.event_id,
                delivery.revision,
                delivery.url,
                attempts,
                webhook.max_attempts,
                error,
                retry_at - now,
            )

    def _post(self, webhook: WebhookConfig, delivery: WebhookDelivery) -> _Outcome:
        """Send the delivery's body once; never raises for HTTP or network failures."""
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Anjian-Event-Id": delivery.event_id,
            "X-Anjian-Event-Kind": str(delivery.payload.get("kind", "")),
            "Idempotency-Key": idempotency_key(delivery.event_id, delivery.revision, delivery.url),
        }
        if webhook.secret is not None:
            headers[SIGNATURE_HEADER] = sign_payload(
                webhook.secret.get_secret_value(), body, int(self._clock())
            )
        try:
            response = self._client.post(
                webhook.url, content=body, headers=headers, timeout=webhook.timeout_s
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
