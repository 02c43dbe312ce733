"""The service's side of the sensors: the runner built from the site config, feeding the alert stream and the history.

The sensor runner (``anjian.pipeline.sensors.SensorRunner``) lives in the alert
service's process, in every shape (``anjian serve`` and ``anjian run``): its events go
to the same event writer (``StoreSink``) as the cameras' and ingest's, its readings to
the ``ReadingStore``, and gateways push to it through ``POST /ingest/readings``. Where
the process also reads the cameras (``anjian run``), a raised sensor incident carries
the latest live frame of the first camera it names that has one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anjian.pipeline.live import LiveView
    from anjian.pipeline.sensors.runner import SensorRunner
    from anjian.pipeline.sink import EventSink
    from anjian.service.config import AnjianConfig
    from anjian.service.readings import ReadingStore

__all__ = ["build_sensor_runner"]


def build_sensor_runner(
    config: AnjianConfig,
    sink: EventSink,
    readings: ReadingStore,
    *,
    live_view: LiveView | None = None,
    clock: Callable[[], float] = time.time,
) -> SensorRunner | None:
    """The site's sensor runner (not started), or ``None`` when the site has no sensors.

    Args:
        config: The site config (``site.workshops[].sensors``, ``sensor_sources``).
        sink: Where its events go (the service's event writer).
        readings: Where its readings go (the history).
        live_view: The cameras' latest frames in this process, for the snapshots of sensor incidents.
        clock: Wall clock, epoch seconds.
    """
    sensors = config.sensors()
    if not sensors:
        return None
    from anjian.pipeline.sensors.runner import SensorAssignment, SensorRunner  # paho and pymodbus load here

    def snapshot(camera_id: str) -> bytes | None:
        frame = live_view.frame(camera_id) if live_view is not None else None
        return None if frame is None else frame.jpeg

    return SensorRunner(
        config.site.id,
        [SensorAssignment(workshop.id, sensor) for workshop, sensor in sensors],
        config.sensor_sources,
        sink,
        readings=readings,
        snapshot=snapshot if live_view is not None else None,
        language=config.site.language,
        clock=clock,
    )
