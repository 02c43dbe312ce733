"""Counters: adds from many threads all land, and a reader gets the stats dataclass whole."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from anjian.pipeline.counters import Counters


@dataclass(frozen=True, slots=True)
class _Stats:
    published: int = 0
    spooled: int = 0


def test_adds_from_many_threads_all_count_and_move_together() -> None:
    counters = Counters(_Stats())

    def add_many() -> None:
        for _ in range(1000):
            counters.add(published=1, spooled=2)

    threads = [threading.Thread(target=add_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counters.snapshot() == _Stats(published=8000, spooled=16000)


def test_a_snapshot_does_not_change_with_later_adds() -> None:
    counters = Counters(_Stats())
    counters.add(published=1)
    before = counters.snapshot()

    counters.add(published=1)

    assert (before.published, counters.snapshot().published) == (1, 2)


def test_an_unknown_counter_is_refused() -> None:
    with pytest.raises(AttributeError, match="droped"):
        Counters(_Stats()).add(droped=1)
