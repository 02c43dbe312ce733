"""Webhook signatures: the Standard Webhooks headers, and anjian's own ``X-Anjian-Signature`` header.

A subscription's ``secret`` holds one secret, or several separated by spaces
while one is being rotated (``"whsec_NEW… whsec_OLD…"``, or ``"whsec_NEW… old-secret"``
to move a receiver off an anjian 0.x secret). Every delivery is signed with each
of them, so a receiver still holding the old secret and one already holding the
new one both accept it; once every receiver has the new one, drop the old one.
A field without any ``whsec_`` secret is one secret, spaces included (as anjian
0.x read it).

**Standard Webhooks** (https://www.standardwebhooks.com, verified by the
``standardwebhooks`` libraries):

- ``webhook-id``: the delivery's idempotency key, the same on every attempt;
- ``webhook-timestamp``: unix seconds of this attempt;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``,
  one per secret, separated by spaces.

A ``whsec_<base64>`` secret signs with the bytes it encodes (what the libraries
expect: ``Webhook("whsec_…")``); any other secret signs with its UTF-8 bytes
(``Webhook(secret.encode())`` on the receiving side). ``new_secret`` makes a
``whsec_`` one.

**X-Anjian-Signature** (kept for receivers written against anjian 0.x):
``t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`` keyed with the
secret's UTF-8 text, one ``v1=`` per secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
from typing import Annotated

from pydantic import AfterValidator, SecretStr

__all__ = [
    "SIGNATURE_HEADER",
    "STANDARD_ID_HEADER",
    "STANDARD_SIGNATURE_HEADER",
    "STANDARD_TIMESTAMP_HEADER",
    "SigningSecret",
    "new_secret",
    "parse_secrets",
    "sign_payload",
    "sign_standard",
    "signature_headers",
    "verify_signature",
    "verify_standard",
]

SIGNATURE_HEADER = "X-Anjian-Signature"
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"

_WHSEC_PREFIX = "whsec_"
_MIN_KEY_BYTES = 16
_MAX_SECRETS = 4


def new_secret(key_bytes: int = 32) -> str:
    """A fresh random secret in the Standard Webhooks form, ``whsec_<base64 of key_bytes random bytes>``."""
    if key_bytes < _MIN_KEY_BYTES:
        raise ValueError(f"a secret needs at least {_MIN_KEY_BYTES} random bytes, got {key_bytes}")
    return _WHSEC_PREFIX + base64.b64encode(_random.token_bytes(key_bytes)).decode()


def parse_secrets(secret: str) -> list[str]:
    """Split a subscription's secret field into its secrets, checking each.

    Args:
        secret: One secret, or several separated by whitespace (during a rotation)
            when at least one of them is a ``whsec_`` secret.

    Returns:
        The secrets, in the order given.

    Raises:
        ValueError: The field is empty, holds more than 4 secrets, or a ``whsec_``
            secret is not valid base64 of at least 16 bytes. The message never
            repeats the secret.
    """
    parts = secret.split()
    if not parts:
        raise ValueError("a webhook secret may not be empty")
    if not any(part.startswith(_WHSEC_PREFIX) for part in parts):
        return [secret]  # an anjian 0.x secret: taken whole, spaces and all
    if len(parts) > _MAX_SECRETS:
        raise ValueError(f"at most {_MAX_SECRETS} webhook secrets at once (for a rotation), got {len(parts)}")
    for index, part in enumerate(parts, 1):
        if part.startswith(_WHSEC_PREFIX):
            key = _decode_whsec(part)
            if key is None or len(key) < _MIN_KEY_BYTES:
                raise ValueError(
                    f"webhook secret {index} starts with whsec_ but is not base64 of at least "
                    f"{_MIN_KEY_BYTES} bytes (whsec_ followed by e.g. the output of `openssl rand -base64 32`)"
                )
    return parts


def _check_secret(secret: SecretStr) -> SecretStr:
    """Pydantic validator: ``parse_secrets`` on the field's value."""
    parse_secrets(secret.get_secret_value())
    return secret


SigningSecret = Annotated[SecretStr, AfterValidator(_check_secret)]
"""A webhook secret field of the site YAML or the API, checked with ``parse_secrets``."""


def _decode_whsec(secret: str) -> bytes | None:
    """The key bytes of a ``whsec_`` secret, or ``None`` when its base64 is broken."""
    encoded = secret[len(_WHSEC_PREFIX) :]
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _standard_key(secret: str) -> bytes:
    """The HMAC key of one secret for the Standard Webhooks signature."""
    if secret.startswith(_WHSEC_PREFIX):
        key = _decode_whsec(secret)
        if key is not None:
            return key
    return secret.encode()


def sign_standard(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC>`` for each secret of ``secret``, space-separated.

    Args:
        secret: The subscription's secret field (one or several secrets).
        message_id: The ``webhook-id`` sent with it.
        timestamp: The ``webhook-timestamp`` sent with it (unix seconds).
        body: The exact bytes POSTed.
    """
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_standard_key(s), signed, hashlib.sha256).digest()).decode()
        for s in parse_secrets(secret)
    )


def verify_standard(
    secret: str,
    headers: dict[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = 300.0,
) -> bool:
    """Check Standard Webhooks headers as a receiver would (any one of ``secret``'s secrets may match).

    Args:
        secret: The receiver's secret (or several, space-separated).
        headers: The request headers (any case).
        body: The raw request body.
        now: Current epoch seconds; ``None`` skips the freshness check.
        tolerance_s: Largest accepted distance between the timestamp and ``now``.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get(STANDARD_ID_HEADER)
    raw_timestamp = lowered.get(STANDARD_TIMESTAMP_HEADER, "")
    received = lowered.get(STANDARD_SIGNATURE_HEADER, "").split()
    if not message_id or not raw_timestamp.isdigit() or not received:
        return False
    timestamp = int(raw_timestamp)
    if now is not None and abs(now - timestamp) > tolerance_s:
        return False
    expected = sign_standard(secret, message_id, timestamp, body).split()
    return any(hmac.compare_digest(e, r) for e in expected for r in received)


def sign_payload(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Anjian-Signature`` header value for ``body`` sent at ``timestamp``.

    Args:
        secret: The subscription's secret field (one or several secrets).
        body: The exact bytes POSTed.
        timestamp: Unix seconds, included in the signed text against replays.

    Returns:
        ``"t=<timestamp>,v1=<hex HMAC-SHA256 of b"<timestamp>." + body>"``, with one
        ``v1=`` per secret.
    """
    signed = f"{timestamp}.".encode() + body
    digests = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in parse_secrets(secret)]
    return f"t={timestamp}," + ",".join(f"v1={d}" for d in digests)


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance_s: float = 300.0
) -> bool:
    """Check an ``X-Anjian-Signature`` header, as a receiver would.

    Args:
        secret: The shared secret (or several, space-separated).
        header: The header value, ``t=<unix>,v1=<hex>[,v1=<hex>…]``.
        body: The raw request body.
        now: Current epoch seconds; ``None`` skips the freshness check.
        tolerance_s: Largest accepted distance between ``t`` and ``now``.

    Returns:
        Whether one signature matches one secret and, when ``now`` is given, is fresh.
    """
    timestamps: list[str] = []
    received: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep and key == "t":
            timestamps.append(value)
        elif sep and key == "v1":
            received.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not received:
        return False
    timestamp = int(timestamps[0])
    if now is not None and abs(now - timestamp) > tolerance_s:
        return False
    try:
        expected = sign_payload(secret, body, timestamp).split(",")[1:]
    except ValueError:
        return False
    return any(hmac.compare_digest(e.removeprefix("v1="), r) for e in expected for r in received)


def signature_headers(secret: str | None, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Every signature header of one POST: both schemes when there is a secret, else only ``webhook-id``/``-timestamp``.

    Args:
        secret: The subscription's secret field, or ``None`` for unsigned deliveries.
        message_id: The delivery's idempotency key (``webhook-id``).
        body: The exact bytes POSTed.
        timestamp: Unix seconds of this attempt.
    """
    headers = {STANDARD_ID_HEADER: message_id, STANDARD_TIMESTAMP_HEADER: str(timestamp)}
    if secret is None:
        return headers
    return {
        **headers,
        STANDARD_SIGNATURE_HEADER: sign_standard(secret, message_id, timestamp, body),
        SIGNATURE_HEADER: sign_payload(secret, body, timestamp),
    }
