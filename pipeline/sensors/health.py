"""Health of one sensor, as the plant knows it: its source's connection, its last reading, its open faults.

The sensor runner answers ``health()`` with one ``SensorHealth`` per sensor; the plant's
bus sends them to the hub with the cameras' health. ``state`` sums it up, worst first:

- ``offline``: its source (an MQTT broker's session, a Modbus device's connection) is down;
- ``fault``: a ``sensor_fault`` incident is open (``stale``, ``flatline``, ``out_of_range``);
- ``waiting``: no reading yet since the runner started (not stale yet);
- ``ok``: readings arrive and look sound.

An alarm (a limit or a rate of rise crossed) is not a fault of the sensor: it shows in
``open_kinds`` (``threshold``, ``rate``) and ``is_alarm``, beside the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["ALARM_KINDS", "SensorHealth", "SensorState", "sensor_state"]

ALARM_KINDS: Final = frozenset({"threshold", "rate"})
"""Open kinds that are alarms on the reading, not faults of the sensor."""


class SensorState(StrEnum):
    """A sensor's health, worst first (see the module docstring)."""

    OFFLINE = "offline"
    FAULT = "fault"
    WAITING = "waiting"
    OK = "ok"


def sensor_state(
    *, is_source_connected: bool | None, open_kinds: Sequence[str], last_reading_at: float | None
) -> SensorState:
    """The state of a sensor from what the runner knows of it.

    Args:
        is_source_connected: Whether its broker or device is connected; ``None`` for pushed
            readings (no connection of anjian's own) or a source not started.
        open_kinds: What is open for it (``SensorRules.open_kinds``).
        last_reading_at: When its latest reading was measured, ``None`` before the first.
    """
    if is_source_connected is False:
        return SensorState.OFFLINE
    if any(kind not in ALARM_KINDS for kind in open_kinds):
        return SensorState.FAULT
    if last_reading_at is None:
        return SensorState.WAITING
    return SensorState.OK


@dataclass(frozen=True, slots=True)
class SensorHealth:
    """A snapshot of one sensor's health.

    Attributes:
        sensor_id: The sensor.
        workshop_id: Its workshop.
        quantity: What it measures (ammonia, dust ...).
        unit: Unit of its readings.
        source: ``mqtt:<broker id>``, ``modbus:<device id>`` or ``http`` (pushed by a gateway).
        state: The summary (see the module docstring).
        is_source_connected: Whether its source is connected; ``None`` for ``http`` or a source not started.
        last_reading_at: When its latest reading was measured, epoch seconds; ``None`` before the first.
        last_value: Its latest reading, in ``unit``; ``None`` before the first.
        open_kinds: What is open for it: ``threshold``, ``rate``, ``stale``, ``flatline``, ``out_of_range``.
    """

    sensor_id: str
    workshop_id: str
    quantity: str
    unit: str
    source: str
    state: SensorState
    is_source_connected: bool | None = None
    last_reading_at: float | None = None
    last_value: float | None = None
    open_kinds: tuple[str, ...] = ()

    @property
    def is_alarm(self) -> bool:
        """Whether a limit or rate-of-rise alarm is open."""
        return any(kind in ALARM_KINDS for kind in self.open_kinds)
