"""API tokens and their roles; only the SHA-256 of each token is stored.

Tokens are 256-bit random strings (``anj_`` + 43 URL-safe characters), so a plain
SHA-256 is enough to store them: there is nothing to brute-force. The secret is
shown once, when created (``anjian tokens create --role operator``).

Roles: ``viewer`` reads; ``operator`` also works alerts through their lifecycle;
``admin`` also manages webhooks and tokens; ``pipeline`` only ingests events.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from anjian.service.copying import copy_fields
from anjian.service.database import Database
from anjian.service.one_line_text import REFUSED_CATEGORIES
from anjian.service.tables import ApiTokenRow, TokenColumns

__all__ = [
    "ApiToken",
    "Role",
    "TokenStore",
    "check_token_name",
    "find_live_token",
    "hash_token",
    "new_token_secret",
    "printable",
]

logger = logging.getLogger(__name__)

_PREFIX = "anj_"
_LAST_USED_RESOLUTION_S = 60.0
ACCEPTED_CACHE_S = 5.0
"""How long an accepted token is trusted without reading the database again (a revocation in
another process, e.g. ``anjian tokens revoke``, takes effect within this time; in this process at once)."""
_ACCEPTED_CACHE_ENTRIES = 1024
_MAX_NAME_CHARS = 200

_Row = TypeVar("_Row", bound=TokenColumns)


class Role(StrEnum):
    """What a token may do."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    PIPELINE = "pipeline"

    def grants(self, required: Role) -> bool:
        """Whether this role may do what ``required`` may (admin ⊃ operator ⊃ viewer; pipeline alone)."""
        ladder = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
        if required is Role.PIPELINE:
            return self in (Role.PIPELINE, Role.ADMIN)
        if self is Role.PIPELINE:
            return False
        return ladder.index(self) >= ladder.index(required)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token, without its secret.

    Attributes:
        id: Row id.
        name: Who or what holds it; recorded as the actor in the audit trail.
        role: What it may do.
        created_at: Epoch seconds.
        last_used_at: Epoch seconds of the last use (to the minute), or ``None``.
        revoked_at: Epoch seconds of revocation, or ``None`` while valid.
    """

    id: int
    name: str
    role: Role
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token: what the database keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token_secret(prefix: str) -> str:
    """A new secret: ``prefix`` and 256 random bits as 43 URL-safe characters (only its hash is stored)."""
    return prefix + secrets.token_urlsafe(32)


def find_live_token(session: Session, row_type: type[_Row], digest: str) -> _Row | None:
    """The token row of ``row_type`` whose hash is ``digest``, unless it is revoked; else ``None``.

    Args:
        session: An open session of the token table's database.
        row_type: The token table (the service's ``ApiTokenRow``, the hub's ``HubTokenRow``).
        digest: ``hash_token`` of the secret presented; matched in constant time.
    """
    row = session.scalars(select(row_type).where(row_type.token_hash == digest)).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row


def printable(text: str) -> str:
    """``text`` with control, format and line-separator characters escaped (``\\x1b``), for logs and terminals.

    Example:
        >>> printable("ops\\x1b[2J")
        'ops\\\\x1b[2J'
    """
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in REFUSED_CATEGORIES else ch
        for ch in text
    )


def check_token_name(name: str) -> str:
    """The name trimmed, if it is 1-200 characters without control, format or line-separator characters.

    Raises:
        ValueError: It is blank, too long, or holds such a character (named by code point).
    """
    name = name.strip()
    if not 1 <= len(name) <= _MAX_NAME_CHARS:
        raise ValueError(f"a token name must be 1-{_MAX_NAME_CHARS} characters, got {len(name)}")
    for position, ch in enumerate(name):
        if unicodedata.category(ch) in REFUSED_CATEGORIES:
            raise ValueError(
                f"a token name may not hold control or format characters: U+{ord(ch):04X} at position {position}"
            )
    return name


def _to_token(row: ApiTokenRow) -> ApiToken:
    """Copy a token row into a record."""
    return copy_fields(ApiToken, row, role=Role(row.role))


class TokenStore:
    """Creates, checks, lists and revokes API tokens; thread-safe.

    Args:
        database: The shared database.
        clock: Returns epoch seconds (creation, last use).
        monotonic: Returns seconds that never step; how long an accepted token is trusted from memory
            (on the wall clock, a step back of an hour kept a token revoked by another process working
            for that hour).
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = database
        self._clock = clock
        self._monotonic = monotonic
        self._accepted: dict[str, tuple[ApiToken, float]] = {}  # digest -> (token, trusted until: monotonic)
        self._accepted_lock = threading.Lock()

    def create(self, name: str, role: Role | str) -> tuple[ApiToken, str]:
        """Make a token.

        Args:
            name: Who holds it (1-200 characters, no control characters); shown in the audit trail.
            role: What it may do.

        Returns:
            The record and the secret token, which is not stored and cannot be shown again.

        Raises:
            ValueError: ``name`` is empty, too long or holds control characters, or ``role`` is unknown.
        """
        name = check_token_name(name)
        role = Role(role)
        secret = new_token_secret(_PREFIX)
        with self._db.write() as session:
            row = ApiTokenRow(
                name=name, role=role.value, token_hash=hash_token(secret), created_at=self._clock()
            )
            session.add(row)
            session.flush()
            return _to_token(row), secret

    def authenticate(self, token: str) -> ApiToken | None:
        """The valid (not revoked) token with this secret, or ``None``.

        Every request carries a token, so an accepted one is remembered for
        ``ACCEPTED_CACHE_S`` (by digest; unknown tokens are never remembered): ingest at
        hundreds of requests a second would otherwise spend a third of its CPU reading
        the token table, on the event loop.
        """
        if not token.startswith(_PREFIX) or len(token) > 200:
            return None
        digest = hash_token(token)
        now, ticks = self._clock(), self._monotonic()
        with self._accepted_lock:
            cached = self._accepted.get(digest)
        if cached is not None and ticks < cached[1]:
            return cached[0]
        with self._db.read() as session:
            row = find_live_token(session, ApiTokenRow, digest)
            if row is None:
                self._forget(digest)
                return None
            found = _to_token(row)
        if found.last_used_at is None or now - found.last_used_at >= _LAST_USED_RESOLUTION_S:
            try:
                with self._db.write() as session:
                    stored = session.get(ApiTokenRow, found.id)
                    if stored is not None:
                        stored.last_used_at = now
            except SQLAlchemyError as exc:  # a busy writer must not refuse a valid token; next time, then
                logger.info("token %d: last use not recorded (%s)", found.id, type(exc).__name__)
        with self._accepted_lock:
            if len(self._accepted) >= _ACCEPTED_CACHE_ENTRIES:
                self._accepted.clear()
            self._accepted[digest] = (found, ticks + ACCEPTED_CACHE_S)
        return found

    def _forget(self, digest: str | None = None, *, token_id: int | None = None) -> None:
        """Drop a remembered token, by digest or by id."""
        with self._accepted_lock:
            if digest is not None:
                self._accepted.pop(digest, None)
            if token_id is not None:
                for key in [k for k, (t, _) in self._accepted.items() if t.id == token_id]:
                    del self._accepted[key]

    def get_active(self, token_id: int) -> ApiToken | None:
        """The token with this id unless it is unknown or revoked (a dashboard session's token)."""
        with self._db.read() as session:
            row = session.get(ApiTokenRow, token_id)
            return None if row is None or row.revoked_at is not None else _to_token(row)

    def list(self) -> list[ApiToken]:
        """Every token, revoked ones too, oldest first."""
        with self._db.read() as session:
            return [_to_token(row) for row in session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))]

    def revoke(self, token_id: int) -> ApiToken | None:
        """Revoke a token; ``None`` when no token has this id."""
        with self._db.write() as session:
            row = session.get(ApiTokenRow, token_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            revoked = _to_token(row)
        self._forget(token_id=token_id)
        return revoked
