"""POST one webhook delivery to its receiver and say how it went (a ``SendOutcome``); never raises.

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

A 2xx response is a success. A transport error (``httpx.HTTPError``, or any other exception
raised while sending) or any other status is a failed attempt. Of a non-2xx answer the outcome
keeps ``HTTP <status>`` and the start of its body, one printable line of 80 characters at most
(the receiver's reason, not its page), and, for 429 and 503, the wait its ``Retry-After`` asks
for. A receiver that gives no answer (it cannot be reached, or times out) is
``SendOutcome.is_unreachable``.
POSTs connect only to addresses a webhook may go to (``anjian.service.webhook_url``):
a target that resolves to a link-local, cloud metadata or unspecified address fails
with ``ConnectError`` saying so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import httpx

from anjian.service.channels.outcome import SendOutcome, retry_after_header_s
from anjian.service.records import Subscription, WebhookDelivery
from anjian.service.signing import signature_headers
from anjian.service.tokens import printable
from anjian.service.webhook_url import checked_transport

__all__ = ["WebhookPoster"]

_ERROR_BODY_CHARS = 80  # of a non-2xx answer, kept in last_error: the receiver's reason, not its page


def _anjian_version() -> str:
    """The installed anjian version, or ``"0"`` when running from a bare checkout."""
    try:
        return version("anjian")
    except PackageNotFoundError:
        return "0"


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


class WebhookPoster:
    """The HTTP client the webhook workers share: POSTs one delivery's signed body, once.

    Args:
        transport: httpx transport; inject ``httpx.MockTransport`` in unit tests. Default:
            ``checked_transport``, which refuses to connect where ``address_fault`` says no.
        clock: Returns epoch seconds; stamps signatures and dates ``Retry-After``.
        limits: Connections the client keeps (POSTs in flight at most, idle ones kept alive).

    Example:
        >>> poster = WebhookPoster(transport=None, clock=time.time, limits=httpx.Limits(max_connections=8))
        >>> outcome = poster.post(subscription, delivery)
        >>> poster.close()
    """

    def __init__(
        self, *, transport: httpx.BaseTransport | None, clock: Callable[[], float], limits: httpx.Limits
    ) -> None:
        self._clock = clock
        self._client = httpx.Client(
            # Connect-time address check: no link-local, metadata or unspecified target, whatever its name resolves to.
            transport=transport if transport is not None else checked_transport(limits=limits),
            follow_redirects=False,
            headers={"User-Agent": f"anjian/{_anjian_version()}"},
            limits=limits,
        )

    def close(self) -> None:
        """Close the HTTP client and its connections."""
        self._client.close()

    def post(self, subscription: Subscription, delivery: WebhookDelivery) -> SendOutcome:
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
