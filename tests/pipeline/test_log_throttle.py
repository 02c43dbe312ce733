"""One line per interval for a failure that goes on, with the count held back; recovery starts afresh."""

from __future__ import annotations

import pytest

from anjian.pipeline.log_throttle import Admitted, LogThrottle


def test_the_first_line_goes_at_once_then_one_per_interval_with_the_count_held_back() -> None:
    now = [100.0]
    throttle = LogThrottle(60.0, clock=lambda: now[0])
    assert throttle.admit() == Admitted(held_back=0, is_first=True)
    for step in (1.0, 20.0, 58.0):
        now[0] = 100.0 + step
        assert throttle.admit() is None
    now[0] = 160.0
    assert throttle.admit() == Admitted(held_back=3, is_first=False)
    now[0] = 300.0
    assert throttle.admit() == Admitted(held_back=0, is_first=False)


def test_keys_are_throttled_apart_and_forgetting_one_lets_its_next_line_through_as_the_first() -> None:
    now = [0.0]
    throttle = LogThrottle(60.0, clock=lambda: now[0])
    assert throttle.admit("plant-a") is not None
    assert throttle.admit("plant-b") is not None
    assert throttle.admit("plant-a") is None
    throttle.forget("plant-a")
    assert throttle.admit("plant-a") == Admitted(held_back=0, is_first=True)
    assert throttle.admit("plant-b") is None
    throttle.forget_where(lambda key: key == "plant-b")
    assert throttle.admit("plant-b") == Admitted(held_back=0, is_first=True)


def test_news_goes_at_once_with_what_was_held_back_before_it() -> None:
    throttle = LogThrottle(60.0, clock=lambda: 0.0)
    assert throttle.admit() is not None
    assert throttle.admit() is None
    assert throttle.admit(is_news=True) == Admitted(held_back=1, is_first=False)


def test_a_time_earlier_than_the_last_line_lets_the_line_through() -> None:
    """A frame's capture time can step back (a camera's clock reset): the line must not be held for hours."""
    throttle = LogThrottle(60.0)
    assert throttle.admit(now=5_000.0) is not None
    assert throttle.admit(now=5_010.0) is None
    assert throttle.admit(now=1_000.0) == Admitted(held_back=1, is_first=False)


def test_an_interval_that_is_not_positive_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        LogThrottle(0.0)
