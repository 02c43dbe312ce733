"""Process sensors (ammonia, dust, hydrogen, temperature, level, pressure) raising alerts in the camera stream.

``config`` (the site YAML's sensors and their connections), ``reading`` (a reading and
the seams it flows through), ``mqtt_source`` / ``modbus_source`` (the sources),
``rules`` (limits, rate of rise, faults), ``runner`` (the worker tying them to the
``EventSink``) and ``health`` (each sensor's health as the runner reports it). Nothing runs at
import time.
"""

from __future__ import annotations

from anjian.pipeline.sensors.config import SensorConfig, SensorSourcesConfig
from anjian.pipeline.sensors.health import SensorHealth, SensorState
from anjian.pipeline.sensors.reading import Reading, ReadingSink
from anjian.pipeline.sensors.runner import SensorAssignment, SensorRunner, SensorStats

__all__ = [
    "Reading",
    "ReadingSink",
    "SensorAssignment",
    "SensorConfig",
    "SensorHealth",
    "SensorRunner",
    "SensorSourcesConfig",
    "SensorState",
    "SensorStats",
]
