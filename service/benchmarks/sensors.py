"""``anjian bench sensors``: N sensors at 1 Hz through a real Mosquitto broker into the service; CPU, RSS, latency.

A publisher in a child process (so its CPU is not counted) sends one JSON reading
per sensor per second to a private Mosquitto broker, spread over each second; each
second a few sensors (``crossings_per_s``) read above their red limit for that one
second, and it notes when it sent each such reading. This process runs what
``anjian serve`` runs for sensors: the MQTT source, the sensor rules, the event
writer into a fresh SQLite store, and the reading history. The latency of an alert is
from the publisher sending the crossing reading to the event writer having committed
the raised event (the alert is in the store, its webhooks queued): reading to alert.

CPU is this process's user+system seconds over the measured window divided by its
length (100 % = one core); RSS is read at the end; the broker's CPU is shown beside.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from anjian.pipeline.event import Event
from anjian.pipeline.sensors.config import ReadingHistoryConfig, SensorConfig, SensorSourcesConfig
from anjian.pipeline.sensors.runner import SensorAssignment, SensorRunner
from anjian.service.benchmarks.mosquitto import MosquittoBroker, mosquitto_available
from anjian.service.benchmarks.processes import process_cpu_s, process_rss_bytes
from anjian.service.evidence import EvidenceStore
from anjian.service.readings import ReadingStore
from anjian.service.sink import StoreSink
from anjian.service.store import EventStore, UpsertResult

__all__ = ["SensorBenchReport", "run_sensor_bench"]

_RED = 100.0
_NORMAL = 20.0

_PUBLISHER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, sensors, seconds, crossings, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
red, normal = float(sys.argv[6]), float(sys.argv[7])
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
client.connect("127.0.0.1", port)
client.loop_start()
log = open(out, "w", buffering=1)
slices = 20
start = time.time()
second = 0
while time.time() - start < seconds:
    crossing = {(second * crossings + k) % sensors for k in range(crossings)}
    for part in range(slices):
        due = start + second + part / slices
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        for i in range(part, sensors, slices):
            value = red * 1.5 if i in crossing else normal + (i % 7) * 0.1 + (second % 3) * 0.01
            sent = time.time()
            client.publish(f"bench/s/{i}", json.dumps({"v": value}), qos=0)
            if i in crossing:
                log.write(f"s-{i} {sent}\n")
    second += 1
client.loop_stop()
client.disconnect()
"""


@dataclass(frozen=True)
class SensorBenchReport:
    """Figures of one run.

    Attributes:
        sensors: Sensors simulated.
        seconds: Length of the measured window.
        readings: Readings evaluated in the window.
        readings_written: Readings in the history at the end.
        alerts: Alerts raised (and committed) in the window.
        latency_ms: Reading-to-alert latencies of those alerts, milliseconds.
        cpu_percent: This process's CPU over the window, 100 = one core.
        broker_cpu_percent: The broker's CPU over the window.
        rss_mb: This process's resident memory at the end, MiB.
        bad_input: Bad input counted (none expected).
    """

    sensors: int
    seconds: float
    readings: int
    readings_written: int
    alerts: int
    latency_ms: list[float]
    cpu_percent: float
    broker_cpu_percent: float
    rss_mb: float
    bad_input: dict[str, int]

    def render(self) -> str:
        """The figures as the CLI prints them."""
        lat = sorted(self.latency_ms)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, round(q * (len(lat) - 1)))] if lat else float("nan")

        rate = self.readings / self.seconds if self.seconds else 0.0
        return "\n".join(
            [
                f"sensors: {self.sensors} at 1 Hz over MQTT (Mosquitto), measured {self.seconds:.0f} s",
                f"  readings evaluated     {self.readings} ({rate:.0f}/s; {self.readings_written} in the history)",
                f"  alerts raised          {self.alerts}",
                f"  reading-to-alert       p50 {pct(0.5):.1f} ms   p95 {pct(0.95):.1f} ms   max {pct(1.0):.1f} ms"
                + (f"   mean {statistics.fmean(lat):.1f} ms" if lat else ""),
                f"  CPU (anjian)           {self.cpu_percent:.1f} % of one core",
                f"  CPU (mosquitto)        {self.broker_cpu_percent:.1f} % of one core",
                f"  RSS (anjian)           {self.rss_mb:.0f} MiB",
                f"  bad input              {self.bad_input or 'none'}",
            ]
        )


class _LatencySink:
    """The runner's sink: each event goes to the writer; raised events note when they were committed."""

    def __init__(self, writer: StoreSink) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self.committed: list[tuple[str, float]] = []  # (sensor id, committed at) of raised alerts

    def publish(self, event: Event) -> None:
        future = self._writer.submit(event)
        if event.revision == 1:
            sensor_id = event.camera_id
            future.add_done_callback(lambda done: self._done(sensor_id, done))

    def _done(self, sensor_id: str, future: Future[UpsertResult]) -> None:
        at = time.time()
        if future.exception() is None:
            with self._lock:
                self.committed.append((sensor_id, at))


def _sensors(count: int) -> list[SensorAssignment]:
    return [
        SensorAssignment(
            "bench",
            SensorConfig.model_validate(
                {
                    "id": f"s-{i}",
                    "quantity": "ammonia",
                    "unit": "ppm",
                    "source": {"kind": "mqtt", "broker": "bench", "topic": f"bench/s/{i}", "json_path": "v"},
                    "thresholds": {"red": _RED, "min_duration_s": 0, "clear_after_s": 2},
                    "faults": {"stale_after_s": 30},
                }
            ),
        )
        for i in range(count)
    ]


def run_sensor_bench(
    *, sensors: int = 1000, seconds: float = 30.0, warmup_s: float = 5.0, crossings_per_s: int = 5
) -> SensorBenchReport:
    """Run the benchmark (see the module docstring) and return its figures.

    Raises:
        RuntimeError: Mosquitto is not installed, or the publisher failed.
    """
    if not mosquitto_available():
        raise RuntimeError("the sensor benchmark needs Debian's mosquitto (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory(prefix="anjian-bench-sensors-") as tmp, MosquittoBroker() as broker:
        folder = Path(tmp)
        store = EventStore(f"sqlite:///{folder / 'events.db'}")
        writer = StoreSink(store, EvidenceStore(folder / "evidence"))
        readings = ReadingStore(store.database, ReadingHistoryConfig())
        sink = _LatencySink(writer)
        sources = SensorSourcesConfig.model_validate(
            {"mqtt": [{"id": "bench", "url": broker.url, "subscribe": ["bench/#"]}]}
        )
        runner = SensorRunner("bench-site", _sensors(sensors), sources, sink, readings=readings)
        crossings_file = folder / "crossings.txt"
        writer.start()
        readings.start()
        runner.start()
        try:
            deadline = time.monotonic() + 20
            while not all(getattr(s, "is_connected", True) for s in runner.sources):
                if time.monotonic() > deadline:
                    raise RuntimeError("the sensor runner did not connect to the broker")
                time.sleep(0.05)
            publisher = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _PUBLISHER,
                    str(broker.port),
                    str(sensors),
                    str(warmup_s + seconds + 1),
                    str(crossings_per_s),
                    str(crossings_file),
                    str(_RED),
                    str(_NORMAL),
                ],
            )
            time.sleep(warmup_s)
            cpu0, broker0, wall0 = (
                process_cpu_s(os.getpid()),
                process_cpu_s(broker.pid or 0),
                time.monotonic(),
            )
            readings0, since = runner.stats().readings, time.time()
            time.sleep(seconds)
            cpu1, broker1, wall1 = (
                process_cpu_s(os.getpid()),
                process_cpu_s(broker.pid or 0),
                time.monotonic(),
            )
            stats, until = runner.stats(), time.time()
            if publisher.wait(60) != 0:
                raise RuntimeError(f"the publisher failed with exit code {publisher.returncode}")
            writer.flush(10)
            time.sleep(0.5)
        finally:
            runner.stop()
            readings.stop()
            writer.stop()
        written = readings.written
        store.close()
        crossings: dict[str, list[float]] = {}
        for line in crossings_file.read_text().splitlines():
            sensor_id, sent_text = line.split()
            crossings.setdefault(sensor_id, []).append(float(sent_text))
        latency: list[float] = []
        for sensor_id, committed_at in sink.committed:
            sent = [t for t in crossings.get(sensor_id, []) if t <= committed_at]
            if sent and since <= sent[-1] <= until:
                latency.append((committed_at - sent[-1]) * 1000.0)
        elapsed = wall1 - wall0
        return SensorBenchReport(
            sensors=sensors,
            seconds=elapsed,
            readings=stats.readings - readings0,
            readings_written=written,
            alerts=len(latency),
            latency_ms=latency,
            cpu_percent=100.0 * ((cpu1 or 0.0) - (cpu0 or 0.0)) / elapsed,
            broker_cpu_percent=100.0 * ((broker1 or 0.0) - (broker0 or 0.0)) / elapsed,
            rss_mb=process_rss_bytes(os.getpid()) / 2**20,
            bad_input=stats.bad_input,
        )
