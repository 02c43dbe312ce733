"""Accepted tokens are remembered a few seconds (ingest would otherwise read the token table per request).

A revocation in this process takes effect at once; one made by another process
(``anjian tokens revoke`` on the same database) within ``ACCEPTED_CACHE_S``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from anjian.service.database import Database
from anjian.service.tokens import ACCEPTED_CACHE_S, Role, TokenStore


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_revocation_by_another_process_takes_effect_within_the_cache_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'anjian.db'}"
    clock = _Clock()
    service = TokenStore(Database(url), clock=clock, monotonic=clock)
    cli = TokenStore(Database(url), clock=clock, monotonic=clock)
    info, secret = cli.create("pipeline-1", Role.PIPELINE)
    assert service.authenticate(secret) == info

    cli.revoke(info.id)

    clock.now += ACCEPTED_CACHE_S / 2
    assert service.authenticate(secret) is not None  # still trusted from memory
    clock.now += ACCEPTED_CACHE_S
    assert service.authenticate(secret) is None


def test_a_wall_clock_stepped_back_does_not_keep_a_revoked_token_trusted(tmp_path: Path) -> None:
    """The trust was kept until a wall-clock time: after NTP stepped the clock back an hour, a token
    revoked with ``anjian tokens revoke`` kept working for that hour."""
    url = f"sqlite:///{tmp_path / 'anjian.db'}"
    wall, ticks = _Clock(), _Clock()
    service = TokenStore(Database(url), clock=wall, monotonic=ticks)
    cli = TokenStore(Database(url), clock=wall)
    info, secret = cli.create("pipeline-1", Role.PIPELINE)
    assert service.authenticate(secret) == info

    wall.now -= 3600.0
    cli.revoke(info.id)
    ticks.now += ACCEPTED_CACHE_S * 1.5

    assert service.authenticate(secret) is None


def test_revocation_in_this_process_takes_effect_at_once(tmp_path: Path) -> None:
    store = TokenStore(Database(f"sqlite:///{tmp_path / 'anjian.db'}"), clock=_Clock())
    info, secret = store.create("operator-1", Role.OPERATOR)
    assert store.authenticate(secret) is not None

    store.revoke(info.id)

    assert store.authenticate(secret) is None


def test_unknown_tokens_are_not_remembered(tmp_path: Path) -> None:
    store = TokenStore(Database(f"sqlite:///{tmp_path / 'anjian.db'}"), clock=_Clock())
    for n in range(50):
        assert store.authenticate(f"anj_{n:043d}") is None
    assert store._accepted == {}


def test_a_busy_database_does_not_refuse_a_valid_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'anjian.db'}")
    store = TokenStore(database, clock=_Clock())
    _, secret = store.create("pipeline-1", Role.PIPELINE)

    def locked() -> Iterator[None]:
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    monkeypatch.setattr(database, "write", contextmanager(locked))

    assert store.authenticate(secret) is not None  # its last use is simply not recorded this time
