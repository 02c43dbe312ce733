"""Delays between retries: exponential, capped, never giving up.

``backoff_delay_s`` is the one schedule every retry loop uses (camera reconnects here, the
pipeline's HTTP sink, the service's event writer and webhook deliveries); ``Backoff`` adds
jitter for cameras, and ``ReconnectWait`` cuts a wait short when a camera's port, seen
closed, answers again."""

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
    the same instant.

    Example:
        >>> backoff = Backoff(ReconnectConfig(initial_delay_s=1, max_delay_s=8), random.Random(0))
        >>> [round(backoff.next_delay()) for _ in range(5)]  # about 1, 2, 4, 8, 8
    """

    def __init__(self, config: ReconnectConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self._attempts = 0

    def next_delay(self) -> float:
        """Return the next delay in seconds and grow the one after it."""
        self._attempts += 1
        config = self._config
        base_s = backoff_delay_s(
            self._attempts,
            base_s=config.initial_delay_s,
            max_s=config.max_delay_s,
            multiplier=config.multiplier,
        )
        return self._jittered(base_s)

    def max_delay(self) -> float:
        """Return a delay at the cap (for failures that a quick retry will not fix)."""
        return self._jittered(self._config.max_delay_s)

    def reset(self) -> None:
        """Start again from the initial delay (after a connection that held)."""
        self._attempts = 0

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
    port answers but that refuses the stream (wrong password, a hung encoder) too,
    since its port is never seen closed; one whose port flaps gets at most one extra
    open per ``max_delay_s``.

    Args:
        config: The camera's reconnect settings.
        rng: Random source for the backoff's jitter.
        probe: Returns whether the camera's port answers; ``None`` (files, UDP) waits
            the plain backoff.
        sleep: Waits up to the given seconds; returns True when the reader is stopping
            (``threading.Event.wait``).
        clock: Monotonic seconds.

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
    ) -> None:
        self._config = config
        self._backoff = Backoff(config, rng)
        self._probe = probe if config.probe_interval_s > 0 else None
        self._sleep = sleep
        self._clock = clock
        self._is_port_closed = False
        self._may_cut_at = -math.inf  # a port's return may end a wait from then on

    def next_delay(self, *, is_config_error: bool) -> float:
        """The delay before the next open: at the cap for a refusal that needs a config change."""
        return self._backoff.max_delay() if is_config_error else self._backoff.next_delay()

    def connected(self, held_s: float) -> None:
        """A connection delivered frames for ``held_s``; if it held a whole cap, start over from the short delay."""
        self._is_port_closed = False
        self._may_cut_at = -math.inf
        if held_s >= self._config.max_delay_s:
            self._backoff.reset()

    def refused(self) -> None:
        """An open found nothing answering at the port: the next check that finds it open cuts the wait."""
        self._is_port_closed = True

    def wait(self, delay_s: float) -> bool:
        """Wait up to ``delay_s``, ending early when the port, seen closed, answers again.

        A port that comes back ends a wait at most once per ``max_delay_s`` (until a
        connection succeeds), so a port that flaps does not buy an open per flap.

        Returns:
            True when ``sleep`` reported that the reader is stopping, else False (open now).
        """
        if self._probe is None:
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
