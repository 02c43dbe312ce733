"""Delays between reconnect attempts: exponential, jittered, capped, never giving up."""

from __future__ import annotations

import random

from cameras.config import ReconnectConfig

__all__ = ["Backoff"]


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
        self._next_base_s = config.initial_delay_s

    def next_delay(self) -> float:
        """Return the next delay in seconds and grow the one after it."""
        base = self._next_base_s
        self._next_base_s = min(self._config.max_delay_s, base * self._config.multiplier)
        return self._jittered(base)

    def max_delay(self) -> float:
        """Return a delay at the cap (for failures that a quick retry will not fix)."""
        return self._jittered(self._config.max_delay_s)

    def reset(self) -> None:
        """Start again from the initial delay (after a connection that held)."""
        self._next_base_s = self._config.initial_delay_s

    def _jittered(self, base_s: float) -> float:
        jitter = self._config.jitter
        return max(0.0, base_s * (1.0 + self._rng.uniform(-jitter, jitter)))
