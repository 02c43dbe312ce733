"""The hub's tokens: a role (what it may do) and a scope (which plants it sees).

Scopes:

- ``all``: every plant (the supervising office);
- ``group:<name>``: the plants of one named group (a district, a company's plants);
- ``plant:<id>``: one plant (that plant's own staff looking at the hub): it sees nothing else.

Roles: ``viewer`` reads; ``supervisor`` also adds remarks and presses plants for action.
Only the SHA-256 of a token is stored, as for the service's own tokens.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sqlalchemy import select

from anjian.service.copying import copy_fields
from anjian.service.database import Database
from anjian.service.hub.tables import HubTokenRow
from anjian.service.tokens import check_token_name, find_live_token, hash_token, new_token_secret

__all__ = ["HubRole", "HubToken", "HubTokens", "check_scope"]

_PREFIX: Final = "anjhub_"
_SCOPE: Final = re.compile(r"^(all|group:[A-Za-z0-9][A-Za-z0-9_.-]*|plant:[A-Za-z0-9][A-Za-z0-9_-]*)$")


class HubRole(StrEnum):
    """What a hub token may do."""

    VIEWER = "viewer"
    SUPERVISOR = "supervisor"


def check_scope(scope: str) -> str:
    """``scope`` when it is ``all``, ``group:<name>`` or ``plant:<id>``.

    Raises:
        ValueError: Naming what was expected.
    """
    if not _SCOPE.fullmatch(scope) or len(scope) > 80:
        raise ValueError(f"a scope is all, group:<name> or plant:<id>, got {scope!r}")
    return scope


@dataclass(frozen=True, slots=True)
class HubToken:
    """A stored hub token, without its secret."""

    id: int
    name: str
    role: HubRole
    scope: str
    created_at: float
    revoked_at: float | None

    def plant_ids(self, plants: Sequence[tuple[str, str]]) -> list[str]:
        """Which of ``plants`` (id, group) this token sees, in their order."""
        kind, _, value = self.scope.partition(":")
        if kind == "all":
            return [plant_id for plant_id, _group in plants]
        if kind == "group":
            return [plant_id for plant_id, group in plants if group == value]
        return [plant_id for plant_id, _group in plants if plant_id == value]


def _token(row: HubTokenRow) -> HubToken:
    return copy_fields(HubToken, row, role=HubRole(row.role))


class HubTokens:
    """Creates, checks, lists and revokes hub tokens; thread-safe.

    Args:
        database: The hub's database.
        clock: Epoch seconds.
    """

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = database
        self._clock = clock

    def create(self, name: str, role: HubRole | str, scope: str) -> tuple[HubToken, str]:
        """A new token; returns it and its secret (shown once, never stored).

        Raises:
            ValueError: The name, role or scope is not valid.
        """
        name = check_token_name(name)
        role = HubRole(role)
        scope = check_scope(scope)
        secret = new_token_secret(_PREFIX)
        with self._db.write() as session:
            row = HubTokenRow(
                name=name,
                role=role.value,
                scope=scope,
                token_hash=hash_token(secret),
                created_at=self._clock(),
                revoked_at=None,
            )
            session.add(row)
            session.flush()
            return _token(row), secret

    def authenticate(self, secret: str) -> HubToken | None:
        """The valid token with this secret, or ``None``."""
        if not secret.startswith(_PREFIX):
            return None
        with self._db.read() as session:
            row = find_live_token(session, HubTokenRow, hash_token(secret))
            return None if row is None else _token(row)

    def list(self) -> list[HubToken]:
        """Every token, oldest first."""
        with self._db.read() as session:
            return [_token(row) for row in session.scalars(select(HubTokenRow).order_by(HubTokenRow.id))]

    def revoke(self, token_id: int) -> HubToken:
        """Revoke a token.

        Raises:
            KeyError: No token has this id.
        """
        with self._db.write() as session:
            row = session.get(HubTokenRow, token_id)
            if row is None:
                raise KeyError(f"no hub token with id {token_id}")
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            return _token(row)
