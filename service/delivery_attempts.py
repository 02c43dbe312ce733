"""Settle one attempt of an outbox delivery on its row: delivered, retried with backoff, held back or given up.

A 2xx response delivers the row; it is recorded at once (``anjian.service.claims.SuccessLog``),
so a crash re-sends at most the POSTs in flight. A failed attempt is retried after
``min(backoff_max_s, backoff_base_s * 2**(attempts-1))`` seconds (``anjian.cameras.backoff``),
or later when the receiver asked for it (``Retry-After``), for as long as the
subscription's ``retry_for_s`` (24 h by default) allows, and at most
``max_attempts`` times when it sets one; then the row becomes a dead letter (status
failed), which ``Outbox.redeliver`` queues again. Every attempt records its status
code and error on the row.

Some rows are made due again without counting an attempt: a row held back while its
receiver is silent (``anjian.service.receiver_health.SilentReceivers``), a message held
back to keep a robot under its rate or out of its mute, and a delivery a receiver refused
for its rate (a robot's rate-limit answer holds the whole robot as long as the vendor asks,
DingTalk: ten minutes). Such a row becomes a dead letter only when its retry window ends first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from anjian.cameras.backoff import backoff_delay_s
from anjian.service.channels.outcome import SendOutcome
from anjian.service.claims import SuccessLog
from anjian.service.metrics import ServiceMetrics
from anjian.service.outbox import Outbox
from anjian.service.receiver_health import FailureLog, SilentReceivers
from anjian.service.records import Subscription, WebhookDelivery

__all__ = ["AttemptRecorder"]

# The dispatcher's log: its lines keep the name operators (and tests) filter on.
logger = logging.getLogger("anjian.service.webhooks")


class AttemptRecorder:
    """Records how each attempt of a claimed delivery went: on its row, in the log and the metrics.

    Args:
        outbox: Where the rows live.
        clock: Returns epoch seconds; stamps the rows held back.
        backoff_base_s: Delay after the first failed attempt, doubled after each.
        backoff_max_s: Longest delay between attempts.
        successes: Records each 2xx at once.
        failures: Logs the failed attempts, at most once a minute per subscription.
        silent: The subscriptions whose receiver gave no answer; updated by every outcome.
        metrics: Counts settled attempts by result, when given.
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        clock: Callable[[], float],
        backoff_base_s: float,
        backoff_max_s: float,
        successes: SuccessLog,
        failures: FailureLog,
        silent: SilentReceivers,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._outbox = outbox
        self._clock = clock
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._successes = successes
        self._failures = failures
        self._silent = silent
        self._metrics = metrics

    def dropped(self, delivery: WebhookDelivery, now: float) -> None:
        """Give up on a delivery whose subscription is gone or inactive: a dead letter, no attempt counted."""
        logger.warning(
            "webhook subscription %d (%s) is no longer active; dropping delivery %d",
            delivery.subscription_id,
            delivery.url,
            delivery.id,
        )
        self._outbox.mark_attempt_failed(
            delivery.id,
            error="the webhook subscription is no longer active",
            status_code=None,
            retry_at=None,
            now=now,
            is_counted=False,
        )
        self._count("dead_letter")

    def record(
        self, delivery: WebhookDelivery, subscription: Subscription, outcome: SendOutcome, now: float
    ) -> None:
        """Settle an attempt that ``outcome`` tells of, finished at ``now`` (epoch seconds)."""
        if outcome.is_success and outcome.status_code is not None:
            self._successes.record(delivery, outcome.status_code)
            self._failures.succeeded(subscription.id, subscription.url)
            self._silent.answered(subscription.id)
            return
        if not outcome.is_attempted:
            self._defer(delivery, outcome, now)
            return
        if outcome.is_rate_limited:
            self._silent.answered(subscription.id)
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
            self._silent.fell_silent(
                subscription.id, now + wait_s, f"no answer to delivery {delivery.id} ({error})"
            )
        else:
            self._silent.answered(subscription.id)
        self._outbox.mark_attempt_failed(
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

    def hold_back(self, delivery: WebhookDelivery, until: float, reason: str) -> None:
        """Hold back a row, untried and uncounted, until the retry of another that its receiver left unanswered."""
        self._postpone(
            delivery, error=f"held back: {reason}", status_code=None, retry_at=until, now=self._clock()
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
        self._outbox.mark_attempt_failed(
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
