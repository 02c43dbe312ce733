"""The service's side of the sensors: the runner built from the site config, feeding the alert stream and the history.

The sensor runner (``anjian.pipeline.sensors.SensorRunner``) lives in the alert
service's process, in every shape (``anjian serve`` and ``anjian run``): its events go
to the same event writer (``StoreSink``) as the cameras' and ingest's, its readings to
the ``ReadingStore``, and gateways push to it through ``POST /ingest/readings``. Where
the process also reads the cameras (``anjian run``), a raised sensor incident carries
the latest live frame of the first camera it names that has one, and a later revision
the clip of that camera's live frames around the crossing. Open sensor incidents
outlive a restart (``{storage.dir}/open_sensor_incidents.json``): a gas alarm that
goes on through a restart stays one alert.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from anjian.pipeline.evidence import BufferedFrame
    from anjian.pipeline.live import LiveView
    from anjian.pipeline.sensors.runner import SensorRunner
    from anjian.pipeline.sink import EventSink
    from anjian.service.config import AnjianConfig
    from anjian.service.readings import ReadingStore

__all__ = ["SensorCollector", "build_sensor_runner"]

_JOURNAL_FILE = "open_sensor_incidents.json"  # the camera pipeline keeps its own (open_incidents.json)


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
    from anjian.pipeline.incident_journal import IncidentJournal
    from anjian.pipeline.sensors.runner import SensorAssignment, SensorRunner  # paho and pymodbus load here

    def snapshot(camera_id: str) -> bytes | None:
        frame = live_view.frame(camera_id) if live_view is not None else None
        return None if frame is None else frame.jpeg

    def clip_frame(camera_id: str) -> BufferedFrame | None:
        from anjian.pipeline.evidence import BufferedFrame  # loaded already where a live view runs

        frame = live_view.frame(camera_id) if live_view is not None else None
        return None if frame is None else BufferedFrame(frame.captured_at, frame.jpeg)

    journal = IncidentJournal(config.storage.dir / _JOURNAL_FILE)
    runner = SensorRunner(
        config.site.id,
        [SensorAssignment(workshop.id, sensor) for workshop, sensor in sensors],
        config.sensor_sources,
        sink,
        readings=readings,
        snapshot=snapshot if live_view is not None else None,
        clip_frames=clip_frame if live_view is not None else None,
        language=config.site.language,
        clock=clock,
        incident_journal=journal,
    )
    for event in journal.close_unclaimed(clock()):  # sensors removed while the service was down
        sink.publish(event)
    return runner


class SensorCollector(Collector):
    """The sensors' figures at ``/metrics``, read from the runner at scrape time.

    ``anjian_sensor_readings_total`` (evaluated), ``anjian_sensor_bad_input_total{reason}``
    (not_numeric, unknown_topic, unknown_sensor, read_error, out_of_order, queue_full),
    ``anjian_sensor_queue`` (readings waiting) and ``anjian_sensor_source_up{source}``
    (1 while an MQTT broker's session or a Modbus device's connection is up).
    """

    def __init__(self, runner: SensorRunner) -> None:
        self._runner = runner

    def collect(self) -> Iterator[Metric]:
        """Yield the sensor metrics."""
        stats = self._runner.stats()
        yield CounterMetricFamily(
            "anjian_sensor_readings", "Sensor readings evaluated.", value=stats.readings
        )
        bad = CounterMetricFamily(
            "anjian_sensor_bad_input", "Sensor input that could not become a reading.", labels=["reason"]
        )
        for reason, count in sorted(stats.bad_input.items()):
            bad.add_metric([reason], count)
        yield bad
        yield GaugeMetricFamily(
            "anjian_sensor_queue", "Sensor readings waiting for the rules.", value=stats.queued
        )
        up = GaugeMetricFamily(
            "anjian_sensor_source_up", "1 while a sensor source is connected.", labels=["source"]
        )
        for name, is_up in self._runner.source_states().items():
            up.add_metric([name], 1.0 if is_up else 0.0)
        yield up
