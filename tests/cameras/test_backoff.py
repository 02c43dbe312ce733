"""Reconnect delays grow exponentially, stay capped and jittered, start over after a connection that
worked, and are cut short when a closed port answers again, without hammering a camera that stays down
or refuses its credentials (fake time)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from anjian.cameras.backoff import Backoff, ReconnectWait, backoff_delay_s
from anjian.cameras.config import ReconnectConfig


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


@pytest.mark.parametrize(
    ("attempts", "base_s", "max_s", "multiplier", "expected"),
    [
        (1, 0.5, 30.0, 2.0, 0.5),
        (4, 0.5, 30.0, 2.0, 4.0),
        (3, 1.0, 600.0, 10.0, 100.0),
        (2, 1.0, 5.0, 1.0, 1.0),
        (5000, 0.5, 30.0, 2.0, 30.0),  # 2.0**4999 is no float: the cap, not an OverflowError
        (5000, 0.0, 30.0, 2.0, 0.0),  # no wait stays no wait
    ],
    ids=["first", "doubled", "multiplier", "flat", "far-past-the-cap", "zero-base"],
)
def test_backoff_delay_grows_by_the_multiplier_up_to_the_cap(
    attempts: int, base_s: float, max_s: float, multiplier: float, expected: float
) -> None:
    assert backoff_delay_s(attempts, base_s=base_s, max_s=max_s, multiplier=multiplier) == expected


def test_backoff_delay_refuses_an_attempt_below_one() -> None:
    with pytest.raises(ValueError, match="attempts must be >= 1, got 0"):
        backoff_delay_s(0, base_s=1.0, max_s=2.0)


def test_camera_backoff_follows_the_shared_schedule_after_many_failures() -> None:
    config = ReconnectConfig(initial_delay_s=1, max_delay_s=600, multiplier=10, jitter=0)
    backoff = Backoff(config, random.Random(0))
    delays = [backoff.next_delay() for _ in range(3000)]
    assert delays[:4] == [1, 10, 100, 600] and set(delays[3:]) == {600}


def test_reconnect_config_rejects_cap_below_initial_delay() -> None:
    with pytest.raises(ValueError, match="max_delay_s"):
        ReconnectConfig(initial_delay_s=10, max_delay_s=5)


class _FakeTime:
    """A fake monotonic clock whose sleeps advance it; the camera's port opens in scripted spells."""

    def __init__(self, port_open_spells: list[tuple[float, float]] | None = None) -> None:
        self.now = 0.0
        self.spells = port_open_spells or []
        self.probes = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.now += seconds
        return False

    def port_answers(self) -> bool:
        self.probes += 1
        return any(start <= self.now < end for start, end in self.spells)


def _opens_until(
    fake: _FakeTime, wait: ReconnectWait, *, until_s: float, is_up: Callable[[float], bool]
) -> list[float]:
    """Run a reader's retry loop on fake time: the times of every full open until one succeeds or ``until_s``."""
    opens = []
    while fake.now < until_s:
        opens.append(fake.now)
        fake.now += 0.5  # an open costs time too
        if is_up(fake.now):
            break
        wait.wait(wait.next_delay(is_config_error=False))
    return opens


def test_a_camera_down_for_an_hour_is_opened_at_the_backoff_pace_only() -> None:
    fake = _FakeTime()  # the port never answers
    wait = ReconnectWait(
        ReconnectConfig(), random.Random(0), probe=fake.port_answers, sleep=fake.sleep, clock=fake.clock
    )
    opens = _opens_until(fake, wait, until_s=3600, is_up=lambda _t: False)
    assert len(opens) <= 3600 / (ReconnectConfig().max_delay_s * 0.8) + 8  # 1, 2, 4, 8, 16, then the cap
    assert fake.probes <= fake.now / ReconnectConfig().probe_interval_s + len(opens)  # about one a second


def test_a_camera_whose_port_answers_but_refuses_is_not_hammered() -> None:
    fake = _FakeTime([(0.0, 1e9)])  # the port always answers, the stream never opens
    wait = ReconnectWait(
        ReconnectConfig(), random.Random(0), probe=fake.port_answers, sleep=fake.sleep, clock=fake.clock
    )
    opens = _opens_until(fake, wait, until_s=3600, is_up=lambda _t: False)
    assert len(opens) <= 3600 / (ReconnectConfig().max_delay_s * 0.8) + 8


def test_a_port_flapping_every_second_is_not_hammered_either() -> None:
    fake = _FakeTime([(float(t), t + 1.0) for t in range(0, 3600, 2)])  # open one second in two
    wait = ReconnectWait(
        ReconnectConfig(), random.Random(0), probe=fake.port_answers, sleep=fake.sleep, clock=fake.clock
    )
    opens = _opens_until(fake, wait, until_s=3600, is_up=lambda _t: False)
    assert len(opens) <= 3600 / 5  # not an open per flap: one early open per cap, then the backoff


@pytest.mark.parametrize("down_s", [20.0, 95.0, 1800.0], ids=["20s", "95s", "30min"])
def test_a_camera_is_opened_within_a_probe_interval_of_its_port_answering_again(down_s: float) -> None:
    fake = _FakeTime([(down_s, 1e9)])
    config = ReconnectConfig()
    wait = ReconnectWait(
        config, random.Random(0), probe=fake.port_answers, sleep=fake.sleep, clock=fake.clock
    )
    opens = _opens_until(fake, wait, until_s=down_s + 600, is_up=lambda t: t >= down_s)
    assert down_s <= opens[-1] <= down_s + config.probe_interval_s + 1.0  # + a probe's own time


def test_without_a_probe_the_plain_backoff_is_waited() -> None:
    fake = _FakeTime()
    config = ReconnectConfig(initial_delay_s=1, max_delay_s=8, jitter=0, probe_interval_s=0)
    wait = ReconnectWait(
        config, random.Random(0), probe=fake.port_answers, sleep=fake.sleep, clock=fake.clock
    )
    assert [wait.wait(wait.next_delay(is_config_error=False)) or fake.now for _ in range(4)] == [1, 3, 7, 15]
    assert fake.probes == 0


def test_a_refused_open_counts_as_a_closed_port_so_its_return_cuts_the_wait() -> None:
    fake = _FakeTime([(0.0, 1e9)])  # it answers from the first check on
    config = ReconnectConfig(initial_delay_s=30, max_delay_s=30, jitter=0)
    wait = ReconnectWait(
        config, random.Random(0), probe=fake.port_answers, sleep=fake.sleep, clock=fake.clock
    )
    wait.refused()
    assert wait.wait(30) is False and fake.now == 0.0


def test_wait_reports_a_stop_at_once() -> None:
    stops: list[float] = []
    wait = ReconnectWait(
        ReconnectConfig(), random.Random(0), probe=lambda: False, sleep=lambda s: stops.append(s) or True
    )
    assert wait.wait(30) is True and stops == [1.0]


def test_reconnect_config_rejects_a_credentials_cap_below_its_initial_delay() -> None:
    with pytest.raises(ValueError, match="credentials_max_delay_s"):
        ReconnectConfig(credentials_initial_delay_s=600, credentials_max_delay_s=300)


def test_refused_credentials_are_retried_minutes_then_an_hour_apart_without_probing_the_port() -> None:
    """Each retry is a failed login, and cameras lock the account after a few: not one every max_delay_s."""
    fake = _FakeTime([(0.0, 1e9)])  # the port answers: it is the camera that says no
    config = ReconnectConfig(jitter=0)
    wait = ReconnectWait(
        config, random.Random(0), probe=fake.port_answers, sleep=fake.sleep, clock=fake.clock
    )
    logins = []
    while fake.now < 24 * 3600:
        logins.append(fake.now)
        wait.wait(wait.next_delay(is_config_error=True, is_credentials_refused=True))
    gaps_s = [later - earlier for earlier, later in itertools.pairwise(logins)]
    assert gaps_s[:6] == [300, 600, 1200, 2400, 3600, 3600]  # 5 min doubling to the 1 h cap
    assert len(logins) <= 5 + 24  # a day: not the ~2,900 a 30 s cap gives
    assert fake.probes == 0  # no connect a second to a port known to answer


def test_other_failures_keep_their_pace_and_probing_after_refused_credentials() -> None:
    fake = _FakeTime()  # the port does not answer
    config = ReconnectConfig(initial_delay_s=1, max_delay_s=8, jitter=0)
    wait = ReconnectWait(
        config, random.Random(0), probe=fake.port_answers, sleep=fake.sleep, clock=fake.clock
    )
    assert wait.next_delay(is_config_error=True, is_credentials_refused=True) == 300
    assert wait.next_delay(is_config_error=True) == 8  # a wrong path still waits the cap
    assert wait.next_delay(is_config_error=False) == 1  # an outage, the ordinary backoff
    wait.wait(1)
    assert fake.probes == 1


def test_a_connection_that_worked_starts_the_credentials_schedule_over() -> None:
    config = ReconnectConfig(jitter=0)
    wait = ReconnectWait(config, random.Random(0), probe=None, sleep=lambda _s: False)
    refused = [wait.next_delay(is_config_error=True, is_credentials_refused=True) for _ in range(3)]
    wait.connected(delivered_s=60)
    assert refused == [300, 600, 1200]
    assert wait.next_delay(is_config_error=True, is_credentials_refused=True) == 300


def test_a_camera_whose_connections_work_for_a_while_then_drop_is_reopened_at_the_short_delay() -> None:
    """Frames for the healthy period (a reader's stall timeout) show it works: it must not sit at the cap."""
    config = ReconnectConfig(jitter=0)  # 1 s doubling to 30 s
    wait = ReconnectWait(config, random.Random(0), probe=None, sleep=lambda _s: False, healthy_after_s=10)
    for _ in range(5):  # a long outage first: the backoff reaches the cap
        wait.next_delay(is_config_error=False)
    delays = []
    for _ in range(20):  # then it streams fine for 20 s and drops, over and over
        wait.connected(delivered_s=20)
        delays.append(wait.next_delay(is_config_error=False))
    assert delays == [1] * 20


def test_brief_connections_step_the_backoff_down_and_silent_ones_grow_it() -> None:
    config = ReconnectConfig(initial_delay_s=1, max_delay_s=32, jitter=0)
    wait = ReconnectWait(config, random.Random(0), probe=None, sleep=lambda _s: False, healthy_after_s=10)
    grown = [wait.next_delay(is_config_error=False) for _ in range(8)]  # connections that deliver nothing
    stepped = []
    for _ in range(6):  # each delivers frames for 2 s only
        wait.connected(delivered_s=2)
        stepped.append(wait.next_delay(is_config_error=False))
    assert grown == [1, 2, 4, 8, 16, 32, 32, 32]
    assert stepped == [16, 8, 4, 2, 1, 1]


def test_the_healthy_period_is_never_longer_than_the_cap() -> None:
    """A stall timeout above max_delay_s must not make resetting harder than it was."""
    config = ReconnectConfig(initial_delay_s=1, max_delay_s=4, jitter=0)
    wait = ReconnectWait(config, random.Random(0), probe=None, sleep=lambda _s: False, healthy_after_s=60)
    for _ in range(5):
        wait.next_delay(is_config_error=False)
    wait.connected(delivered_s=4)
    assert wait.next_delay(is_config_error=False) == 1


def test_backoff_steps_down_from_the_cap_at_once_however_long_it_sat_there() -> None:
    backoff = Backoff(ReconnectConfig(initial_delay_s=1, max_delay_s=8, jitter=0), random.Random(0))
    for _ in range(100):
        backoff.next_delay()
    backoff.step_down()
    assert [backoff.next_delay() for _ in range(3)] == [4, 8, 8]
