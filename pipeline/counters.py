"""Thread-safe counters kept as one stats dataclass, for the ``stats()`` of sinks and writers.

Any thread adds to them; a reader takes them whole, so it never sees half an update
(``published`` bumped, ``spooled`` not yet).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Counters"]

StatsT = TypeVar("StatsT", bound="DataclassInstance")


class Counters(Generic[StatsT]):
    """Counters held in a stats dataclass of ints, replaced whole at each ``add``.

    Args:
        initial: The stats to start from, usually the dataclass with every counter at 0.

    Example:
        >>> counters = Counters(HttpSinkStats())
        >>> counters.add(published=1, spooled=1)
        >>> counters.snapshot().spooled
        1
    """

    def __init__(self, initial: StatsT) -> None:
        self._lock = threading.Lock()
        self._value = initial

    def add(self, **increments: int) -> None:
        """Add each of ``increments`` to the counter of that name."""
        with self._lock:
            current = self._value
            self._value = replace(current, **{k: getattr(current, k) + v for k, v in increments.items()})

    def snapshot(self) -> StatsT:
        """The counters as they are now."""
        with self._lock:
            return self._value
