"""Webhook signatures: Standard Webhooks headers checked by the ``standardwebhooks`` library and by an
independent reading of the spec, secret rotation, and the X-Anjian-Signature header kept as it was."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from pydantic import SecretStr, ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from anjian.service.config import WebhookConfig
from anjian.service.signing import (
    SIGNATURE_HEADER,
    new_secret,
    parse_secrets,
    sign_payload,
    signature_headers,
    verify_signature,
    verify_standard,
)

BODY = '{"kind":"event.created","event":{"id":"e1","message":"明火"}}'.encode()
MESSAGE_ID = "e1:r1:3"


def spec_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The spec, read independently: v1,base64(HMAC-SHA256(key, "id.timestamp.body"))."""
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_standard_headers_verify_with_the_standardwebhooks_library() -> None:
    secret = new_secret()
    now = int(time.time())

    headers = signature_headers(secret, MESSAGE_ID, BODY, now)

    assert headers["webhook-id"] == MESSAGE_ID
    assert headers["webhook-timestamp"] == str(now)
    assert Webhook(secret).verify(BODY, headers) == {
        "kind": "event.created",
        "event": {"id": "e1", "message": "明火"},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)


def test_standard_signature_matches_an_independent_reading_of_the_spec() -> None:
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()

    headers = signature_headers(secret, MESSAGE_ID, BODY, 1_800_000_000)

    assert headers["webhook-signature"] == spec_signature(key, MESSAGE_ID, 1_800_000_000, BODY)


def test_rotation_signs_with_every_secret_so_old_and_new_receivers_both_verify() -> None:
    old, new = new_secret(), new_secret()
    now = int(time.time())

    headers = signature_headers(f"{new} {old}", MESSAGE_ID, BODY, now)

    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    assert verify_standard(old, headers, BODY, now=now)
    assert verify_signature(old, headers[SIGNATURE_HEADER], BODY, now=now)
    assert verify_signature(new, headers[SIGNATURE_HEADER], BODY, now=now)
    assert not verify_signature(new_secret(), headers[SIGNATURE_HEADER], BODY, now=now)


def test_a_plain_secret_signs_with_its_utf8_bytes_and_keeps_the_anjian_header() -> None:
    secret = "plain old secret with spaces"  # anjian 0.x: one secret, spaces and all
    now = int(time.time())

    headers = signature_headers(secret, MESSAGE_ID, BODY, now)

    Webhook(secret.encode()).verify(BODY, headers)
    digest = hmac.new(secret.encode(), f"{now}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"t={now},v1={digest}" == sign_payload(secret, BODY, now)


def test_moving_off_a_plain_secret_signs_with_both() -> None:
    plain, new = "an-anjian-0.x-secret", new_secret()
    now = int(time.time())

    headers = signature_headers(f"{new} {plain}", MESSAGE_ID, BODY, now)

    assert verify_signature(plain, headers[SIGNATURE_HEADER], BODY, now=now)
    Webhook(plain.encode()).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)


def test_unsigned_deliveries_still_carry_id_and_timestamp() -> None:
    assert signature_headers(None, MESSAGE_ID, BODY, 1_800_000_000) == {
        "webhook-id": MESSAGE_ID,
        "webhook-timestamp": "1800000000",
    }


def test_verify_standard_refuses_stale_and_missing_headers() -> None:
    secret = new_secret()
    headers = signature_headers(secret, MESSAGE_ID, BODY, 1_800_000_000)

    assert verify_standard(secret, headers, BODY, now=1_800_000_100)
    assert not verify_standard(secret, headers, BODY, now=1_800_000_301)
    assert not verify_standard(secret, {**headers, "webhook-id": "other"}, BODY)
    assert not verify_standard(secret, {"webhook-id": MESSAGE_ID}, BODY)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "may not be empty"),
        ("whsec_!!!notbase64!!!", "secret 1 starts with whsec_ but is not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "at least 16 bytes"),
        (" ".join(new_secret() for _ in range(5)), "at most 4 webhook secrets"),
    ],
    ids=["empty", "bad-base64", "short-key", "too-many"],
)
def test_unusable_secrets_are_refused_without_echoing_them(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_secrets(secret)
    assert not secret or secret not in str(info.value)


def test_new_secret_refuses_a_weak_key() -> None:
    with pytest.raises(ValueError, match="at least 16 random bytes"):
        new_secret(8)


def test_a_site_config_with_a_broken_whsec_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError, match="not base64") as info:
        WebhookConfig(url="http://hook.example/", secret=SecretStr("whsec_!!!broken!!!"))
    assert "broken" not in str(info.value)
