"""Dashboard session cookies: ``<token id>.<expiry>.<HMAC-SHA256>``, keyed by a secret in the storage folder.

The MAC key is random, made on first use and kept in ``session.key`` (mode
0600) in the storage folder, so every process sharing that folder accepts the
same cookies, and a restart keeps sessions open. The cookie holds no secret and
cannot be forged or extended; what it grants is checked against the token store
on each use (``anjian.service.api.auth``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = ["SessionCheck", "SessionSigner", "SessionVerdict"]

logger = logging.getLogger(__name__)

_KEY_FILE = "session.key"
_KEY_BYTES = 32
_MAC_HEX = re.compile(r"[0-9a-f]{64}")  # what ``_mac`` makes: SHA-256 as lowercase hex


class SessionVerdict(StrEnum):
    """What a presented session cookie turned out to be."""

    VALID = "valid"
    EXPIRED = "expired"  # genuine but old: not a guess
    FORGED = "forged"  # malformed or a bad MAC: counts as a failed attempt


@dataclass(frozen=True, slots=True)
class SessionCheck:
    """The verdict on a cookie and, when genuine, the token id it was issued for."""

    verdict: SessionVerdict
    token_id: int | None = None


def _read_key(path: Path) -> bytes:
    """The key in ``path``; ``ValueError`` when it is not one."""
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii", errors="replace").strip())
    except ValueError:
        key = b""
    if len(key) < _KEY_BYTES:
        raise ValueError(
            f"{path} does not hold a {_KEY_BYTES}-byte hex key; delete it to make a new one"
            " (open dashboard sessions end)"
        )
    return key


def _load_or_create_key(folder: Path) -> bytes:
    """The MAC key in ``folder/session.key``, made (mode 0600) on first use, atomically."""
    path = folder / _KEY_FILE
    if path.exists():
        return _read_key(path)
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / f".{_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_bytes(_KEY_BYTES).hex() + "\n")
        try:
            os.link(staged, path)  # fails if another process made one first: use theirs
            logger.info("made a new dashboard session key in %s", path)
        except FileExistsError:
            pass
    finally:
        staged.unlink(missing_ok=True)
    return _read_key(path)


class SessionSigner:
    """Issues and checks session cookie values.

    Args:
        key_dir: Folder of ``session.key`` (the storage folder).
        ttl_s: Lifetime of a session.
        clock: Epoch seconds.
    """

    def __init__(self, key_dir: Path, *, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self._key = _load_or_create_key(key_dir)
        self.ttl_s = ttl_s
        self._clock = clock

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self, token_id: int) -> tuple[str, float]:
        """A cookie value for ``token_id`` and its expiry (epoch seconds)."""
        expires_at = int(self._clock() + self.ttl_s)
        payload = f"{token_id}.{expires_at}"
        return f"{payload}.{self._mac(payload)}", float(expires_at)

    def check(self, value: str) -> SessionCheck:
        """Whether ``value`` is a session this service issued, and still current.

        Anything but ``<digits>.<digits>.<64 lowercase hex>`` with the right MAC is ``FORGED``
        (counted as a failed attempt), whatever bytes the client put in the cookie.
        """
        parts = value.split(".")
        if len(value) > 200 or len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts[:2]):
            return SessionCheck(SessionVerdict.FORGED)
        if not _MAC_HEX.fullmatch(parts[2]):  # compare_digest raises TypeError on non-ASCII text: a 500
            return SessionCheck(SessionVerdict.FORGED)
        if not hmac.compare_digest(self._mac(f"{parts[0]}.{parts[1]}"), parts[2]):
            return SessionCheck(SessionVerdict.FORGED)
        if int(parts[1]) <= self._clock():
            return SessionCheck(SessionVerdict.EXPIRED)
        return SessionCheck(SessionVerdict.VALID, int(parts[0]))
