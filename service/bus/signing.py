"""Each plant's messages are signed with a key only that plant and the hub hold (HMAC-SHA256).

Every plant's leaf node shares the hub's NATS account, and nats-server 2.9 cannot limit a
leaf node to its own subjects: a plant could publish on another plant's subjects (its events
would land in that plant's stream) or on the hub's command subjects. With ``bus.signing_key``
at the plant and the same ``signing_key`` for that plant in the hub's YAML, every message
between them carries ``Anjian-Signature: v1=<hex HMAC-SHA256 of the message body>``; the hub
drops a plant message whose signature does not match that plant's key, and the plant drops a
remark that is not signed with its own.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

__all__ = ["SIGNATURE_HEADER", "is_signed_by", "signature"]

SIGNATURE_HEADER: Final = "Anjian-Signature"
_PREFIX: Final = "v1="


def signature(key: str, data: bytes) -> str:
    """The ``Anjian-Signature`` value of ``data`` under ``key``."""
    return _PREFIX + hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def is_signed_by(key: str, data: bytes, headers: Mapping[str, str] | None) -> bool:
    """Whether ``headers`` carry the signature of ``data`` under ``key`` (compared in constant time)."""
    given = (headers or {}).get(SIGNATURE_HEADER, "")
    return hmac.compare_digest(given.encode(), signature(key, data).encode())
