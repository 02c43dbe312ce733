"""The sensor runner: every source of the site, one queue of readings, the rules, events out.

Sources (``MqttSource`` per broker, ``ModbusSource`` per device, and the service's
``POST /ingest/readings`` for gateways that push) ``offer`` readings; one worker
thread takes them in arrival order, runs each sensor's ``SensorRules``, publishes
the event revisions to the ``EventSink`` (the same one the camera pipeline uses:
one alert stream), hands the readings to the ``ReadingSink`` (history) in batches,
and ticks every rule about once a second so a silent sensor goes stale. A raised
sensor incident carries the latest live frame of the first of its cameras that has
one (``snapshot``), and, ``clip_post_s`` later, one more revision carries the clip of
that camera around the crossing (``anjian.pipeline.sensors.clips``), so the control
room sees the place of a gas alarm.

Readings never block a source: when the queue is full the reading is dropped and
counted (``queue_full``). Stopping ends the open incidents of every sensor.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from anjian.pipeline.event import Event
from anjian.pipeline.incident_journal import IncidentJournal
from anjian.pipeline.incidents import EventContext, IncidentUpdate, UpdateKind
from anjian.pipeline.sensors.config import (
    HttpSensorSource,
    ModbusSensorSource,
    MqttSensorSource,
    SensorConfig,
    SensorSourcesConfig,
)
from anjian.pipeline.sensors.health import SensorHealth, sensor_state
from anjian.pipeline.sensors.modbus_source import ModbusSource
from anjian.pipeline.sensors.mqtt_source import MqttSource
from anjian.pipeline.sensors.reading import MAX_AHEAD_S, BadInput, Reading, ReadingSink, reading_problem
from anjian.pipeline.sensors.rules import SensorRules
from anjian.pipeline.sink import EventSink

if TYPE_CHECKING:  # clips load PyAV and OpenCV: only where a live view feeds them (anjian run)
    from anjian.pipeline.sensors.clips import LinkedCameraClips, LiveFrameSource

__all__ = ["SensorAssignment", "SensorRunner", "SensorStats"]

logger = logging.getLogger(__name__)

SnapshotProvider = Callable[[str], bytes | None]
"""The latest JPEG of a camera, or ``None`` (``LiveView.frame(camera_id).jpeg``)."""

_CLOCK_STEP_S = 2 * MAX_AHEAD_S
"""This machine's clock this much before a sensor's last reading means it went back (a gateway's own
times may run up to ``MAX_AHEAD_S`` ahead of it: not a step)."""

_BATCH = 2000  # readings taken off the queue per pass at most


@dataclass(frozen=True, slots=True)
class SensorAssignment:
    """A sensor and the workshop it belongs to."""

    workshop_id: str
    config: SensorConfig


@dataclass(frozen=True, slots=True)
class SensorStats:
    """What the runner has done so far.

    Attributes:
        readings: Readings evaluated.
        events: Event revisions published.
        queued: Readings waiting in the queue.
        bad_input: Input that could not become a reading, by reason.
    """

    readings: int
    events: int
    queued: int
    bad_input: dict[str, int]


class SensorRunner:
    """Reads every sensor of the site and raises their incidents (see the module docstring).

    Args:
        site_id: The site of the events.
        assignments: The sensors, with their workshops.
        sources: The site's MQTT brokers and Modbus devices.
        sink: Where event revisions go (the alert service's writer, or a pipeline's HTTP sink).
        readings: Where accepted readings go (the history), or ``None``.
        snapshot: The latest JPEG of a camera, for the cameras a sensor names; ``None``: no snapshots.
        clip_frames: The latest live frame of a camera, buffered for clips of the cameras sensors
            name; ``None``: no clips.
        clip_pre_s: Seconds of a clip before the crossing.
        clip_post_s: Seconds of a clip after it.
        language: Language of the event messages.
        clock: Wall clock, epoch seconds.
        queue_size: Readings that may wait before new ones are dropped.
        tick_s: How often silent sensors are checked for staleness.
        incident_journal: Keeps open incidents across a restart (``anjian.pipeline.incident_journal``;
            a file of its own, not the camera pipeline's): ``stop`` leaves them open and the next
            runner carries on with them, so a restart during a gas alarm does not end it.
        start_sources: False to run only the rules (readings offered by the caller: tests, the bench).

    Example:
        >>> runner = SensorRunner("plant", assignments, config.sensor_sources, parts.sink)
        >>> runner.start(); ...; runner.stop()
    """

    def __init__(
        self,
        site_id: str,
        assignments: Sequence[SensorAssignment],
        sources: SensorSourcesConfig,
        sink: EventSink,
        *,
        readings: ReadingSink | None = None,
        snapshot: SnapshotProvider | None = None,
        clip_frames: LiveFrameSource | None = None,
        clip_pre_s: float = 5.0,
        clip_post_s: float = 5.0,
        language: str = "en",
        clock: Callable[[], float] = time.time,
        queue_size: int = 100_000,
        tick_s: float = 1.0,
        incident_journal: IncidentJournal | None = None,
        start_sources: bool = True,
    ) -> None:
        self._sink = sink
        self._journal = incident_journal
        self._readings = readings
        self._snapshot = snapshot
        self._clock = clock
        self._tick_s = tick_s
        self._queue: queue.Queue[Reading] = queue.Queue(maxsize=queue_size)
        self._bad = BadInput()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # rules are touched by the worker, and by stop() after it
        self._evaluated = 0
        self._published = 0
        now = clock()
        self.sensors = {a.config.id: a.config for a in assignments}
        self._workshops = {a.config.id: a.workshop_id for a in assignments}
        self._last_values: dict[str, float] = {}
        self._contexts = {
            a.config.id: EventContext(
                site_id, a.workshop_id, a.config.id, "", language=language, journal=incident_journal
            )
            for a in assignments
        }
        self._rules = {
            a.config.id: SensorRules(a.config, self._contexts[a.config.id], started_at=now)
            for a in assignments
        }
        linked = sorted({camera_id for a in assignments for camera_id in a.config.camera_ids})
        self._clips: LinkedCameraClips | None = None
        if clip_frames is not None and linked:
            from anjian.pipeline.sensors.clips import LinkedCameraClips

            self._clips = LinkedCameraClips(
                linked, clip_frames, self.attach_clip, pre_s=clip_pre_s, post_s=clip_post_s, clock=clock
            )
        self._sources: list[MqttSource | ModbusSource] = (
            self._build_sources(assignments, sources) if start_sources else []
        )

    def _build_sources(
        self, assignments: Sequence[SensorAssignment], sources: SensorSourcesConfig
    ) -> list[MqttSource | ModbusSource]:
        """One client per broker and one poller per device that some sensor reads through."""
        mqtt: dict[str, list[tuple[str, MqttSensorSource]]] = {}
        modbus: dict[str, list[tuple[str, ModbusSensorSource]]] = {}
        for assignment in assignments:
            source = assignment.config.source
            if isinstance(source, MqttSensorSource):
                mqtt.setdefault(source.broker, []).append((assignment.config.id, source))
            elif isinstance(source, ModbusSensorSource):
                modbus.setdefault(source.device, []).append((assignment.config.id, source))
        built: list[MqttSource | ModbusSource] = [
            MqttSource(broker, mqtt[broker.id], self, clock=self._clock)
            for broker in sources.mqtt
            if broker.id in mqtt
        ]
        built += [
            ModbusSource(device, modbus[device.id], self, clock=self._clock)
            for device in sources.modbus
            if device.id in modbus
        ]
        return built

    @property
    def sources(self) -> list[MqttSource | ModbusSource]:
        """The running sources (one per broker and device in use)."""
        return list(self._sources)

    def source_states(self) -> dict[str, bool]:
        """Whether each source is connected, by ``mqtt:<broker id>`` / ``modbus:<device id>``."""
        states: dict[str, bool] = {}
        for source in self._sources:
            if isinstance(source, MqttSource):
                states[f"mqtt:{source.broker.id}"] = source.is_connected
            else:
                states[f"modbus:{source.device.id}"] = source.is_connected
        return states

    def health(self) -> list[SensorHealth]:
        """Each sensor's health now, in config order: its source's connection, last reading and open faults."""
        connected = self.source_states()
        with self._lock:
            open_kinds = {sensor_id: tuple(rules.open_kinds()) for sensor_id, rules in self._rules.items()}
            last_at = {sensor_id: rules.last_reading_at for sensor_id, rules in self._rules.items()}
            last_values = dict(self._last_values)
        health = []
        for sensor_id, config in self.sensors.items():
            source = config.source
            key = "http" if isinstance(source, HttpSensorSource) else f"{source.kind}:{_source_id(source)}"
            is_connected = connected.get(key)
            health.append(
                SensorHealth(
                    sensor_id=sensor_id,
                    workshop_id=self._workshops[sensor_id],
                    quantity=config.quantity,
                    unit=config.unit,
                    source=key,
                    state=sensor_state(
                        is_source_connected=is_connected,
                        open_kinds=open_kinds[sensor_id],
                        last_reading_at=last_at[sensor_id],
                    ),
                    is_source_connected=is_connected,
                    last_reading_at=last_at[sensor_id],
                    last_value=last_values.get(sensor_id),
                    open_kinds=open_kinds[sensor_id],
                )
            )
        return health

    def offer(self, reading: Reading) -> bool:
        """Queue a reading for the rules; False (and counted) for an unknown sensor, a bad reading or a full queue."""
        if reading.sensor_id not in self._rules:
            self._bad.count("unknown_sensor", reading.sensor_id, "no sensor of the site has this id")
            return False
        problem = reading_problem(reading)
        if problem is not None:
            self._bad.count(problem[0], reading.sensor_id, problem[1])
            return False
        try:
            self._queue.put_nowait(reading)
        except queue.Full:
            self._bad.count("queue_full", reading.sensor_id, f"{self._queue.maxsize} readings waiting")
            return False
        return True

    def bad_input(self, reason: str, where: str, detail: str = "") -> None:
        """Count input that could not become a reading (logged once per reason and place)."""
        self._bad.count(reason, where, detail)

    def stats(self) -> SensorStats:
        """Readings and events so far, the queue's depth and the bad input."""
        return SensorStats(self._evaluated, self._published, self._queue.qsize(), self._bad.counts())

    def open_kinds(self, sensor_id: str) -> list[str]:
        """What is open for a sensor: ``threshold``, ``rate``, fault kinds."""
        with self._lock:
            return self._rules[sensor_id].open_kinds()

    def start(self) -> None:
        """Start the worker, then the sources."""
        if self._thread is not None:
            raise RuntimeError("the sensor runner was started before")
        self._thread = threading.Thread(target=self._run, name="sensor-rules", daemon=True)
        self._thread.start()
        if self._clips is not None:
            self._clips.start()
        for source in self._sources:
            source.start()
        logger.info("sensors: %d sensor(s) on %d source(s)", len(self._rules), len(self._sources))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the sources, evaluate what is queued, end every open incident (kept open with a journal), stop the worker."""
        for source in self._sources:
            source.stop()
        if self._journal is not None:
            self._journal.suspend()  # a restart resumes them: no ended_at goes out
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._lock:
            self._drain()
            now = self._clock()
            for rules in self._rules.values():
                self._publish(rules.close(now))
        if self._clips is not None:
            self._clips.stop()  # clips still due are cut now and published as revisions of the ended incidents

    def attach_clip(self, event_id: str, mp4: bytes) -> bool:
        """Publish one more revision of sensor incident ``event_id`` carrying its clip; False when it is long gone."""
        with self._lock:
            for rules in self._rules.values():
                event = rules.amend(event_id, clip_mp4=mp4)
                if event is not None:
                    self._sink.publish(event)
                    self._published += 1
                    return True
        logger.warning("sensors: the clip of %s is ready but its incident is long gone", event_id)
        return False

    def _run(self) -> None:
        next_tick = self._clock() + self._tick_s
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=max(0.01, min(self._tick_s, next_tick - self._clock())))
            except queue.Empty:
                first = None
            try:
                with self._lock:
                    if first is not None:
                        self._evaluate([first, *self._take(_BATCH - 1)])
                    now = self._clock()
                    if now >= next_tick or next_tick - now > 2 * self._tick_s:  # the clock went back
                        next_tick = now + self._tick_s
                        for sensor_id, rules in list(self._rules.items()):
                            if self._is_clock_step(rules, now):
                                rules = self._restart_timeline(sensor_id, now)
                            self._publish(rules.tick(now))
            except Exception:
                logger.exception("sensors: evaluating readings failed")
                self._stop.wait(0.5)

    def _take(self, most: int) -> list[Reading]:
        taken: list[Reading] = []
        while len(taken) < most:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return taken

    def _drain(self) -> None:
        while batch := self._take(_BATCH):
            self._evaluate(batch)

    def _evaluate(self, batch: list[Reading]) -> None:
        kept: list[Reading] = []
        for reading in batch:
            rules = self._rules[reading.sensor_id]
            if rules.is_repeat(reading.at):
                self._bad.count("repeated", reading.sensor_id, f"a second reading at {reading.at}")
                continue
            if rules.is_out_of_order(reading.at):
                if reading.at == reading.received_at and self._is_clock_step(rules, reading.at):
                    rules = self._restart_timeline(reading.sensor_id, reading.at)  # stamped by our clock
                else:
                    self._bad.count(
                        "out_of_order", reading.sensor_id, f"reading at {reading.at} after a later one"
                    )
                    continue
            kept.append(reading)
            self._last_values[reading.sensor_id] = reading.value
            self._publish(rules.observe(reading.value, reading.at, received_at=reading.received_at))
        self._evaluated += len(kept)
        if self._readings is not None and kept:
            self._readings.add(kept)

    @staticmethod
    def _is_clock_step(rules: SensorRules, now: float) -> bool:
        """True when ``now`` (this machine's clock) lies well before the sensor's last reading: the clock went back."""
        last = rules.last_reading_at
        return last is not None and last - now > _CLOCK_STEP_S

    def _restart_timeline(self, sensor_id: str, now: float) -> SensorRules:
        """After this machine's clock went back: end the sensor's incidents at its last reading, watch afresh from ``now``.

        Without it, every reading stamped by the stepped-back clock would be older than the last
        one and dropped as out of order, and ``now - last reading`` would stay negative, so the
        sensor would read nothing and never go stale until the clock caught up (an hour's step:
        an hour blind). A condition that still holds raises a new incident at once.
        """
        rules = self._rules[sensor_id]
        last = rules.last_reading_at if rules.last_reading_at is not None else now
        logger.warning(
            "sensors: %s: this machine's clock went back %.0f s (now %.0f, last reading %.0f); "
            "its open incidents end at the last reading and its watch starts again",
            sensor_id,
            last - now,
            now,
            last,
        )
        self._publish(rules.close(last))
        self._rules[sensor_id] = SensorRules(rules.config, self._contexts[sensor_id], started_at=now)
        return self._rules[sensor_id]

    def _publish(self, updates: list[IncidentUpdate]) -> None:
        for update in updates:
            event = update.event
            if update.kind is UpdateKind.OPENED and event.sensor is not None:
                self._add_evidence_requests(event)
                if self._snapshot is not None:
                    event = replace(event, snapshot_jpeg=self._first_snapshot(event.sensor.camera_ids))
            try:
                self._sink.publish(event)
            except Exception:
                logger.exception("sensors: %s: cannot publish event %s", event.camera_id, event.id)
                continue
            self._published += 1

    def _add_evidence_requests(self, event: Event) -> None:
        """Ask for the clip of the sensor's first camera around the moment the incident was raised."""
        if self._clips is not None and event.sensor is not None and event.sensor.camera_ids:
            self._clips.request(event.id, event.sensor.camera_ids[0], at=event.last_seen_at)

    def _first_snapshot(self, camera_ids: Sequence[str]) -> bytes | None:
        """The latest frame of the first of ``camera_ids`` that has one."""
        assert self._snapshot is not None
        for camera_id in camera_ids:
            jpeg = self._snapshot(camera_id)
            if jpeg is not None:
                return jpeg
        return None


def _source_id(source: MqttSensorSource | ModbusSensorSource) -> str:
    """The broker or device a sensor reads through."""
    return source.broker if isinstance(source, MqttSensorSource) else source.device
