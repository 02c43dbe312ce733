"""Reconnect delays grow exponentially, stay capped and jittered, and start over after a reset."""

from __future__ import annotations

import random

import pytest

from cameras.backoff import Backoff
from cameras.config import ReconnectConfig


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(
        ReconnectConfig(initial_delay_s=1, max_delay_s=8, multiplier=2, jitter=0), random.Random(0)
    )
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]


def test_backoff_reset_starts_again_from_the_initial_delay() -> None:
    backoff = Backoff(ReconnectConfig(initial_delay_s=0.5, max_delay_s=4, jitter=0), random.Random(0))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


@pytest.mark.parametrize("jitter", [0.1, 0.5], ids=["jitter-10pc", "jitter-50pc"])
def test_backoff_jitter_stays_within_bounds_and_spreads_delays(jitter: float) -> None:
    config = ReconnectConfig(initial_delay_s=2, max_delay_s=2, jitter=jitter)
    backoff = Backoff(config, random.Random(1))
    delays = [backoff.next_delay() for _ in range(200)]
    assert min(delays) >= 2 * (1 - jitter)
    assert max(delays) <= 2 * (1 + jitter)
    assert max(delays) - min(delays) > jitter  # not all cameras retry in the same instant


def test_backoff_max_delay_is_at_the_cap_from_the_first_failure() -> None:
    backoff = Backoff(ReconnectConfig(initial_delay_s=1, max_delay_s=30, jitter=0), random.Random(0))
    assert backoff.max_delay() == 30
    assert backoff.next_delay() == 1  # the exponential schedule is untouched


def test_reconnect_config_rejects_cap_below_initial_delay() -> None:
    with pytest.raises(ValueError, match="max_delay_s"):
        ReconnectConfig(initial_delay_s=10, max_delay_s=5)
