"""One sensor reading, the seams readings flow through, and the count of bad input.

Sources (MQTT, Modbus, the HTTP ingest route) turn what arrives into ``Reading``s
and hand them to a ``ReadingConsumer`` (the ``SensorRunner``); the runner keeps
every accepted reading in a ``ReadingSink`` (the service's history). What cannot
become a reading (a payload that is not a number, a topic no sensor reads, a register
read that fails) is counted in ``BadInput`` and logged once per source and reason,
never raised.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "MAX_AHEAD_S",
    "MAX_BEHIND_S",
    "MAX_READING_MAGNITUDE",
    "BadInput",
    "Reading",
    "ReadingConsumer",
    "ReadingSink",
    "reading_problem",
]

logger = logging.getLogger(__name__)

_LOGGED_KEYS = 10_000  # distinct (reason, where) pairs remembered as logged


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one sensor.

    Attributes:
        sensor_id: The sensor.
        value: The reading in the sensor's unit (scale and offset applied).
        at: When it was measured (or received, when the source gives no time), epoch seconds.
        received_at: When anjian received it, epoch seconds (reading-to-alert latency starts here).
    """

    sensor_id: str
    value: float
    at: float
    received_at: float


MAX_AHEAD_S = 10.0
"""How far a reading's time may lie after its arrival (two clocks a little apart). A later one is
refused: a reading stamped a day ahead would make every true reading after it look out of order,
and the sensor would go silent with no alarm and no fault."""

MAX_BEHIND_S = 86_400.0
"""How far a reading's time may lie before its arrival: a day of a gateway's store-and-forward. An older
one is refused: a gateway whose clock was reset (to 2000, after a power cut) would otherwise date its
alarms decades back; refused, its sensors go stale, which names the problem."""

MAX_READING_MAGNITUDE = 1e15
"""Largest reading taken (as the event wire format's numbers): beyond it a rate or a peak overflows
to infinity, which no database stores."""


def reading_problem(reading: Reading) -> tuple[str, str] | None:
    """Why ``reading`` cannot be taken, as ``(reason, detail)`` for ``BadInput``; ``None`` when it can.

    Reasons: ``not_numeric`` (NaN, infinite or beyond ``MAX_READING_MAGNITUDE``: what a Modbus
    transmitter sends as a fault code, or a scale gone wrong), ``future`` (measured more than
    ``MAX_AHEAD_S`` after it arrived: the sender's clock is ahead), ``past`` (measured more than
    ``MAX_BEHIND_S`` before it arrived: the sender's clock is behind or was reset).
    """
    if not math.isfinite(reading.value) or abs(reading.value) > MAX_READING_MAGNITUDE:
        return (
            "not_numeric",
            f"value {reading.value!r} is not a finite number within +-{MAX_READING_MAGNITUDE:g}",
        )
    ahead_s = reading.at - reading.received_at
    if ahead_s > MAX_AHEAD_S:
        return "future", (
            f"measured {ahead_s:.0f} s after it arrived (more than {MAX_AHEAD_S:g} s: is the sender's clock ahead?)"
        )
    behind_s = reading.received_at - reading.at
    if behind_s > MAX_BEHIND_S:
        return "past", (
            f"measured {behind_s:.0f} s before it arrived (more than {MAX_BEHIND_S:g} s: is the sender's clock "
            "behind, or was it reset?)"
        )
    return None


class ReadingConsumer(Protocol):
    """Takes readings from a source (the ``SensorRunner``); must not block the source for long."""

    def offer(self, reading: Reading) -> bool:
        """Queue ``reading`` for the rules; False when it was refused (unknown sensor, queue full)."""
        ...

    def bad_input(self, reason: str, where: str, detail: str = "") -> None:
        """Count input that could not become a reading (logged once per reason and place)."""
        ...


class ReadingSink(Protocol):
    """Keeps accepted readings (the service's history); must queue and return."""

    def add(self, readings: list[Reading]) -> None:
        """Accept a batch of readings."""
        ...


class BadInput:
    """Counts input that could not become a reading, by reason; logs the first of each reason and place.

    Reasons in use: ``not_numeric`` (a payload or JSON field that is no number, or no finite one),
    ``future`` (a reading time ahead of its arrival), ``past`` (a reading time more than a day
    before its arrival), ``repeated`` (a second reading with the time of the sensor's last one:
    a sender retrying), ``retained`` (an MQTT message the broker
    replays on subscribing: of unknown age),
    ``unknown_topic`` (a message no sensor reads), ``unknown_sensor`` (a pushed reading
    for a sensor not configured), ``read_error`` (a Modbus request that failed),
    ``out_of_order`` (older than the sensor's last reading), ``queue_full``.

    Example:
        >>> bad = BadInput()
        >>> bad.count("not_numeric", "plant/nh3/1", "payload b'abc'")
        >>> bad.counts()
        {'not_numeric': 1}
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()

    def count(self, reason: str, where: str, detail: str = "") -> None:
        """Count one bad input of ``reason`` at ``where`` (a topic, a sensor, a device); log it the first time."""
        with self._lock:
            self._counts[reason] += 1
            key = (reason, where)
            is_first = key not in self._logged and len(self._logged) < _LOGGED_KEYS
            if is_first:
                self._logged.add(key)
        if is_first:
            logger.warning("sensor input %s at %s: %s (counted; not logged again)", reason, where, detail)

    def counts(self) -> dict[str, int]:
        """Bad input so far, by reason."""
        with self._lock:
            return dict(self._counts)
