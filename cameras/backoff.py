"""Delays between retries: exponential, capped, never giving up.

``backoff_delay_s`` is the one schedule every retry loop uses (camera reconnects here, the
pipeline's HTTP sink, the service's event writer and webhook deliveries); ``Backoff`` adds
jitter for cameras, and ``ReconnectWait`` cuts a wait short when a camera's port, seen
closed, answers again, starts over after a connection that worked, and spaces out the
logins of a camera that refuses its credentials far more."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from anjian.cameras.config import ReconnectConfig

__all__ = ["Backoff", "ReconnectWait", "backoff_delay_s"]


def backoff_delay_s(attempts: int, *, base_s: float, max_s: float, multiplier: float = 2.0) -> float:
    """Seconds to wait after the ``attempts``-th failure in a row: ``min(max_s, base_s * multiplier**(attempts-1))``.

    Args:
        attempts: Failed attempts so far, from 1.
        base_s: Wait after the first failure (0: retry at once, every time).
        max_s: Longest wait; every attempt past the one that reaches it waits this long.
        multiplier: Growth of the wait per failure (at least 1).

    Raises:
        ValueError: When ``attempts`` is below 1.

    Example:
        >>> [backoff_delay_s(n, base_s=1.0, max_s=5.0) for n in (1, 2, 3, 4, 1000)]
        [1.0, 2.0, 4.0, 5.0, 5.0]
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    try:
        return min(max_s, base_s * multiplier ** (attempts - 1))
    except OverflowError:  # the growth passed any float long after the cap
        return max_s if base_s > 0 else 0.0


class Backoff:
    """Successive reconnect delays for one camera.

    The n-th delay is ``initial * multiplier**n`` capped at ``max``, each randomised by
    ``+-jitter`` so that cameras dropped together (a switch reboot) do not all retry in
    the same instant. ``reset`` starts the schedule over, ``step_down`` goes back one step.

    Example:
        >>> backoff = Backoff(ReconnectConfig(initial_delay_s=1, max_delay_s=8), random.Random(0))
        >>> [round(backoff.next_delay()) for _ in range(5)]  # about 1, 2, 4, 8, 8
    """

    def __init__(self, config: ReconnectConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self._attempts = 0

    def next_delay(self) -> float:
        """Return the next delay in seconds and grow the one after it (up to the cap)."""
        # Past the cap the count stays put, so that one ``step_down`` leaves the cap at once.
        if self._attempts == 0 or self._delay_at(self._attempts) < self._config.max_delay_s:
            self._attempts += 1
        return self._jittered(self._delay_at(self._attempts))

    def max_delay(self) -> float:
        """Return a delay at the cap (for failures that a quick retry will not fix)."""
        return self._jittered(self._config.max_delay_s)

    def reset(self) -> None:
        """Start again from the initial delay (after a connection that held)."""
        self._attempts = 0

    def step_down(self) -> None:
        """Make the next delay one step shorter than the last one (after a connection that worked, briefly).

        Example:
            >>> backoff = Backoff(ReconnectConfig(initial_delay_s=1, max_delay_s=8, jitter=0), random.Random(0))
            >>> [backoff.next_delay() for _ in range(5)]
            [1.0, 2.0, 4.0, 8.0, 8.0]
            >>> backoff.step_down()
            >>> backoff.next_delay()
            4.0
        """
        self._attempts = max(0, self._attempts - 2)

    def _delay_at(self, attempts: int) -> float:
        """The delay, before jitter, after ``attempts`` failures in a row."""
        config = self._config
        return backoff_delay_s(
            attempts, base_s=config.initial_delay_s, max_s=config.max_delay_s, multiplier=config.multiplier
        )

    def _jittered(self, base_s: float) -> float:
        jitter = self._config.jitter
        return max(0.0, base_s * (1.0 + self._rng.uniform(-jitter, jitter)))


class ReconnectWait:
    """When a down camera is opened again: at the backoff's pace, or at once when its port comes back.

    Between full opens (which the ``Backoff`` spaces out: 1, 2, 4 … up to ``max_delay_s``)
    the camera's TCP port is checked every ``probe_interval_s`` with a bare connect.
    Once a check (or a refused open) has found the port closed, the first check that
    finds it answering again ends the wait, and the backoff starts over from the
    initial delay: a camera that comes back is online within about a probe interval
    plus one open. A camera that stays down gets only the backoff's opens; one whose
    port answers but that refuses the stream (a wrong path, a hung encoder) too,
    since its port is never seen closed; one whose port flaps gets at most one extra
    open per ``max_delay_s``.

    The delay grows only after connections that delivered nothing. One that delivered
    frames for ``healthy_after_s`` starts it over; one that delivered frames for less
    steps it down, so a camera whose connections work but keep dropping is not left
    waiting at the cap after every drop.

    A camera that refuses the credentials (401, 403) waits on a schedule of its own,
    ``credentials_initial_delay_s`` growing to ``credentials_max_delay_s`` (5 min to 1 h
    by default): each open is a failed login, and cameras lock the account or the
    client's address after a few. Its port, which has just answered, is not checked
    during such a wait.

    Args:
        config: The camera's reconnect settings.
        rng: Random source for the backoff's jitter.
        probe: Returns whether the camera's port answers; ``None`` (files, UDP) waits
            the plain backoff.
        sleep: Waits up to the given seconds; returns True when the reader is stopping
            (``threading.Event.wait``).
        clock: Monotonic seconds.
        healthy_after_s: Seconds of frames that show a connection worked (a reader passes
            its stall timeout: a lone frame flushed as a stream dies is no proof). Capped
            at ``max_delay_s``, which is also the value when ``None``.

    Example:
        >>> wait = ReconnectWait(config, rng, probe=port_probe(url), sleep=stop.wait)
        >>> is_stopping = wait.wait(wait.next_delay(is_config_error=False))
    """

    def __init__(
        self,
        config: ReconnectConfig,
        rng: random.Random,
        *,
        probe: Callable[[], bool] | None,
        sleep: Callable[[float], bool],
        clock: Callable[[], float] = time.monotonic,
        healthy_after_s: float | None = None,
    ) -> None:
        self._config = config
        self._backoff = Backoff(config, rng)
        self._credentials_backoff = Backoff(
            config.model_copy(
                update={
                    "initial_delay_s": config.credentials_initial_delay_s,
                    "max_delay_s": config.credentials_max_delay_s,
                }
            ),
            rng,
        )
        self._probe = probe if config.probe_interval_s > 0 else None
        self._sleep = sleep
        self._clock = clock
        self._healthy_after_s = (
            config.max_delay_s if healthy_after_s is None else min(healthy_after_s, config.max_delay_s)
        )
        self._is_port_closed = False
        self._is_credentials_wait = False  # the camera itself refused: its port answers, nothing to probe
        self._may_cut_at = -math.inf  # a port's return may end a wait from then on

    def next_delay(self, *, is_config_error: bool, is_credentials_refused: bool = False) -> float:
        """The delay before the next open, and the kind of wait that ``wait`` then does.

        Args:
            is_config_error: The camera refused what is configured: wait at the cap.
            is_credentials_refused: It refused the credentials: wait their own, far longer,
                growing schedule, without checking the port.
        """
        self._is_credentials_wait = is_credentials_refused
        if is_credentials_refused:
            return self._credentials_backoff.next_delay()
        return self._backoff.max_delay() if is_config_error else self._backoff.next_delay()

    def connected(self, delivered_s: float) -> None:
        """A connection delivered frames for ``delivered_s`` (first to last frame); the login worked.

        ``healthy_after_s`` of frames start the backoff over from the initial delay; fewer
        step it down one step. Either way it does not grow: only connections that deliver
        nothing make it grow.
        """
        self._is_port_closed = False
        self._may_cut_at = -math.inf
        self._credentials_backoff.reset()
        if delivered_s >= self._healthy_after_s:
            self._backoff.reset()
        else:
            self._backoff.step_down()

    def refused(self) -> None:
        """An open found nothing answering at the port: the next check that finds it open cuts the wait."""
        self._is_port_closed = True

    def wait(self, delay_s: float) -> bool:
        """Wait up to ``delay_s``, ending early when the port, seen closed, answers again.

        A port that comes back ends a wait at most once per ``max_delay_s`` (until a
        connection succeeds), so a port that flaps does not buy an open per flap. A wait
        after refused credentials is never checked nor cut short.

        Returns:
            True when ``sleep`` reported that the reader is stopping, else False (open now).
        """
        if self._probe is None or self._is_credentials_wait:
            return self._sleep(delay_s)
        deadline = self._clock() + delay_s
        while self._clock() < deadline:
            if not self._probe():
                self._is_port_closed = True
            elif self._is_port_closed:
                self._is_port_closed = False
                if self._clock() >= self._may_cut_at:
                    self._may_cut_at = self._clock() + self._config.max_delay_s
                    self._backoff.reset()  # it is back: should this open fail, retry soon
                    return False
            remaining_s = deadline - self._clock()
            if remaining_s > 0 and self._sleep(min(self._config.probe_interval_s, remaining_s)):
                return True
        return False
