"""``anjian bench hub``: events through the bus, plant to hub, and what one hub carries for 100 plants x 60 cameras.

Real parts on this machine: a hub nats-server, ``plants`` leaf nodes (each its own JetStream
domain, through the hub's advertised link), one plant service per leaf (store, outbox,
dispatcher, ``PlantBus``), and the hub (``HubStore`` + ``HubBus``, SQLite or the given
PostgreSQL) consuming every plant. Every figure is end to end, from the event handed to a
plant's event writer (``StoreSink.publish``) to its row in the hub's database:

- **burst**: ``events`` revisions (a 30 kB snapshot each) handed to the plants at once;
  events/s = events over the time until the hub stored the last;
- **trickle**: ``rate`` events/s for ``seconds``; latency p50/p95 per event, handed-in to
  stored at the hub (the plant's commit, outbox, publish, sourcing over the leaf link, the
  hub's fetch, transaction and ack);
- **hub intake**: ``events`` messages published straight into the plants' streams (no plant
  service): what the hub alone takes per second, the figure a region's load is set against;
- **the calculation**: the message rate of ``target_plants`` x ``cameras_per_plant`` cameras,
  from stated assumptions, against the burst rate measured here: the headroom.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nats

from anjian.pipeline.config import CameraPipelineConfig
from anjian.service.benchmarks.events import SNAPSHOT_JPEG, bench_event
from anjian.service.benchmarks.nats_servers import NatsTopology
from anjian.service.bus import subjects
from anjian.service.bus.config import BusConfig
from anjian.service.bus.messages import EventChange
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import AnjianConfig, SiteConfig, StorageConfig, WorkshopConfig
from anjian.service.hub.config import HubBusConfig, HubConfig, PlantConfig
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import HubStore
from anjian.service.schemas import EventOut, WebhookPayload

__all__ = ["HubBenchReport", "HubLoadModel", "run_hub_bench"]

_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class HubLoadModel:
    """The load of a supervised region, from stated assumptions (each a CLI option).

    Attributes:
        plants: Plants supervised by one hub.
        cameras_per_plant: Cameras per plant.
        incidents_per_camera_hour: Incidents a camera raises per hour at a busy time.
        messages_per_incident: Bus messages per incident: revisions (raise, updates, end, clip)
            and lifecycle changes (acknowledge, dispatch, resolve, close, escalations).
        health_interval_s: Each plant reports its cameras' health this often.
    """

    plants: int = 100
    cameras_per_plant: int = 60
    incidents_per_camera_hour: float = 2.0
    messages_per_incident: float = 10.0
    health_interval_s: float = 30.0

    @property
    def messages_per_s(self) -> float:
        """Bus messages per second the hub must take."""
        cameras = self.plants * self.cameras_per_plant
        events = cameras * self.incidents_per_camera_hour * self.messages_per_incident / 3600.0
        return events + self.plants / self.health_interval_s

    @property
    def snapshot_bytes_per_s(self) -> float:
        """Snapshot bytes per second (one 30 kB snapshot per incident raised and per update carrying one: ~3)."""
        cameras = self.plants * self.cameras_per_plant
        return cameras * self.incidents_per_camera_hour / 3600.0 * 3 * len(SNAPSHOT_JPEG)


@dataclass(frozen=True, slots=True)
class HubBenchReport:
    """The figures of one run."""

    plants: int
    database: str
    burst_events: int
    burst_s: float
    trickle_rate_per_s: float
    trickle_events: int
    latency_p50_s: float
    latency_p95_s: float
    latency_max_s: float
    intake_events: int
    intake_s: float
    model: HubLoadModel

    @property
    def burst_per_s(self) -> float:
        """Events per second through the bus in the burst."""
        return self.burst_events / self.burst_s

    @property
    def intake_per_s(self) -> float:
        """Messages per second the hub alone stored."""
        return self.intake_events / self.intake_s

    def render(self) -> str:
        """A short human report, with the calculation for the modelled region."""
        model = self.model
        need = model.messages_per_s
        return "\n".join(
            [
                f"anjian bench hub  ({self.plants} plant leaf node(s) + hub on {self.database}, {os.cpu_count()} CPU(s))",
                (
                    f"burst: {self.burst_events} events (30 kB snapshot each) stored at the hub in {self.burst_s:.2f} s"
                    f" = {self.burst_per_s:.0f} events/s through the bus, plant service to hub database"
                ),
                (
                    f"trickle: {self.trickle_rate_per_s:g} events/s x {self.trickle_events}: plant-to-hub latency"
                    f" p50 {self.latency_p50_s * 1000:.0f} ms, p95 {self.latency_p95_s * 1000:.0f} ms,"
                    f" max {self.latency_max_s * 1000:.0f} ms"
                ),
                (
                    f"hub intake: {self.intake_events} messages published into the plants' streams, stored in"
                    f" {self.intake_s:.2f} s = {self.intake_per_s:.0f} messages/s (the hub alone)"
                ),
                (
                    f"{model.plants} plants x {model.cameras_per_plant} cameras, {model.incidents_per_camera_hour:g}"
                    f" incidents/camera/h x {model.messages_per_incident:g} messages, health every"
                    f" {model.health_interval_s:g} s: {need:.1f} messages/s, {model.snapshot_bytes_per_s / 1e6:.2f} MB/s"
                    " of snapshots"
                ),
                (
                    f"  one hub here takes {self.intake_per_s:.0f}/s = {self.intake_per_s / need:.1f}x that load"
                    f" (it would carry {model.plants * self.intake_per_s / need:.0f} such plants); each plant needs"
                    f" {need / model.plants:.2f} messages/s of its own service, which took {self.burst_per_s:.0f}/s"
                    f" for {self.plants} plant(s) on this machine"
                ),
            ]
        )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _plant_config(directory: Path, plant_id: str, nats_url: str) -> AnjianConfig:
    camera = CameraPipelineConfig(id="cam-1", url="rtsp://127.0.0.1:9/unused")
    return AnjianConfig(
        site=SiteConfig(id=plant_id, workshops=[WorkshopConfig(id="w1", cameras=[camera])]),
        storage=StorageConfig(dir=directory / plant_id),
        bus=BusConfig(url=nats_url),
    )


async def _publish_straight(urls: dict[str, str], template: dict[str, object], count: int) -> None:
    """Publish ``count`` event messages (30 kB snapshot each) into the plants' streams, 100 in flight per plant."""
    clients = {plant_id: await nats.connect(url) for plant_id, url in urls.items()}
    try:
        ids = list(urls)

        async def one(index: int) -> None:
            plant_id = ids[index % len(ids)]
            event = EventOut.model_validate(template | {"id": f"intake{index:07d}", "site_id": plant_id})
            change = EventChange(
                plant_id=plant_id,
                key=f"intake{index}",
                sent_at=time.time(),
                payload=WebhookPayload(kind="event.created", event=event),
                snapshot_jpeg=SNAPSHOT_JPEG,
            )
            await (
                clients[plant_id]
                .jetstream()
                .publish(
                    subjects.event_subject(plant_id),
                    change.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": f"{plant_id}:{change.key}"},
                    timeout=30.0,
                )
            )

        for start in range(0, count, 100 * len(ids)):
            await asyncio.gather(*(one(i) for i in range(start, min(count, start + 100 * len(ids)))))
    finally:
        for client in clients.values():
            await client.close()


def _wait(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {_TIMEOUT_S:.0f} s")
        time.sleep(0.01)


def run_hub_bench(
    *,
    plants: int = 2,
    events: int = 2000,
    rate_per_s: float = 50.0,
    seconds: float = 10.0,
    database_url: str | None = None,
    model: HubLoadModel | None = None,
) -> HubBenchReport:
    """Start the servers, the plants and the hub; measure the burst and the trickle; stop everything.

    Raises:
        RuntimeError: nats-server is not installed or did not start.
        TimeoutError: The hub did not store every event within 10 minutes.
    """
    if plants < 1 or events < plants or rate_per_s <= 0 or seconds <= 0:
        raise ValueError("expected plants >= 1, events >= plants, rate_per_s > 0 and seconds > 0")
    with tempfile.TemporaryDirectory(prefix="anjian-bench-hub-") as tmp:
        root = Path(tmp)
        topology = NatsTopology(root / "nats")
        ids = [f"plant{i + 1}" for i in range(plants)]
        for plant_id in ids:
            topology.add_plant(plant_id)
        topology.start()
        hub_config = HubConfig(
            bus=HubBusConfig(url=topology.hub.url),
            storage=StorageConfig(dir=root / "hub", database_url=database_url),
            plants=[PlantConfig(id=plant_id) for plant_id in ids],
        )
        store = HubStore.from_config(hub_config.storage)
        bus = HubBus(hub_config, store)
        parts: list[ServiceParts] = []
        try:
            bus.start()
            for plant_id in ids:
                plant = build_service_parts(
                    _plant_config(root / "plants", plant_id, topology.plants[plant_id].url)
                )
                plant.start()
                parts.append(plant)
            stored = 0

            def hand_in(count: int, tag: str) -> dict[str, float]:
                handed: dict[str, float] = {}
                for index in range(count):
                    event = bench_event(index, snapshot=SNAPSHOT_JPEG, tag=tag)
                    handed[event.id] = time.time()
                    parts[index % plants].sink.publish(event)
                return handed

            hand_in(plants, "w")  # warm-up: every link, stream and consumer up
            stored += plants
            _wait(lambda: store.count_events() >= stored, "the warm-up")

            started = time.monotonic()
            hand_in(events, "b")
            stored += events
            _wait(lambda: store.count_events() >= stored, "the burst")
            burst_s = time.monotonic() - started

            count = max(1, round(rate_per_s * seconds))
            handed: dict[str, float] = {}
            first = time.monotonic()
            for index in range(count):
                time.sleep(max(0.0, first + index / rate_per_s - time.monotonic()))
                handed.update(hand_in(1, f"t{index:06d}x"))
            stored += count
            _wait(lambda: store.count_events() >= stored, "the trickle")
            latencies = []
            template: dict[str, object] = {}
            for event_id, at in handed.items():
                row = next(
                    (e for plant_id in ids if (e := store.get_event(plant_id, event_id)) is not None), None
                )
                if row is not None:
                    latencies.append(row.received_at - at)
                    template = row.event

            started = time.monotonic()
            asyncio.run(_publish_straight({p: topology.plants[p].url for p in ids}, template, events))
            stored += events
            _wait(lambda: store.count_events() >= stored, "the hub intake")
            intake_s = time.monotonic() - started
        finally:
            for plant in parts:
                plant.close()
            bus.stop()
            store.close()
            topology.stop()
    return HubBenchReport(
        plants=plants,
        database="PostgreSQL" if database_url and database_url.startswith("postgresql") else "SQLite",
        burst_events=events,
        burst_s=burst_s,
        trickle_rate_per_s=rate_per_s,
        trickle_events=len(latencies),
        latency_p50_s=statistics.median(latencies),
        latency_p95_s=_percentile(latencies, 0.95),
        latency_max_s=max(latencies),
        intake_events=events,
        intake_s=intake_s,
        model=model or HubLoadModel(),
    )
