"""Fixtures of the bus tests: real nats-servers (a hub and a plant leaf node), a plant service (signing or
not) and a hub."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from anjian.pipeline.event import Event
from anjian.service.bus.config import BusConfig
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import AnjianConfig, StorageConfig
from anjian.service.hub.config import HubBusConfig, HubConfig, PlantConfig
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import HubStore
from tests.factories import make_event
from tests.service.conftest import make_config
from tests.support.nats import NatsTopology, nats_server_available
from tests.support.waiting import wait_for

PLANT = "site-1"  # make_config's site id: the plant id on the bus
SIGNING_KEY = "a-key-only-site-1-and-the-hub-hold"
"""The plant's signing key in the tests that sign."""


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[NatsTopology]:
    """A hub nats-server and one plant leaf node (``site-1``), started."""
    if not nats_server_available():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    topology = NatsTopology(tmp_path / "nats")
    topology.add_plant(PLANT)
    topology.start()
    yield topology
    for server in [*topology.plants.values(), topology.hub]:
        server.kill()
    topology.link.close()


def plant_config(data_dir: Path, nats_url: str, **bus: object) -> AnjianConfig:
    """The tests' site with a ``bus:`` section to the plant's nats-server."""
    return make_config(data_dir, bus=BusConfig(url=nats_url, **bus))  # type: ignore[arg-type]


def hub_config(
    data_dir: Path, nats_url: str, database_url: str | None = None, *, signing_key: str | None = None
) -> HubConfig:
    """A hub supervising the one plant, storing in ``data_dir`` (or ``database_url``)."""
    plant = PlantConfig(id=PLANT, name="Polishing plant", group="dust", signing_key=signing_key)  # type: ignore[arg-type]
    return HubConfig(
        bus=HubBusConfig(url=nats_url, ack_wait_s=2.0),
        storage=StorageConfig(dir=data_dir, database_url=database_url),
        plants=[plant],
    )


@pytest.fixture
def plant_site(tmp_path: Path, topology: NatsTopology) -> AnjianConfig:
    """The plant's config: the tests' site storing in ``tmp_path / "plant"``, publishing to its leaf node."""
    return plant_config(tmp_path / "plant", topology.plants[PLANT].url)


@pytest.fixture
def plant(plant_site: AnjianConfig) -> Iterator[ServiceParts]:
    """The plant's service parts over ``plant_site``, started, publishing to its leaf node."""
    parts = build_service_parts(plant_site)
    parts.start()
    yield parts
    parts.close()


@pytest.fixture
def signed_plant(tmp_path: Path, topology: NatsTopology) -> Iterator[ServiceParts]:
    """The plant's service parts signing with ``SIGNING_KEY``, started, publishing to its leaf node."""
    parts = build_service_parts(
        plant_config(tmp_path / "plant", topology.plants[PLANT].url, signing_key=SIGNING_KEY)
    )
    parts.start()
    yield parts
    parts.close()


@pytest.fixture
def hub_store(tmp_path: Path, topology: NatsTopology) -> Iterator[HubStore]:
    """The hub's store (SQLite), closed after the test."""
    store = HubStore.from_config(hub_config(tmp_path / "hub", topology.hub.url).storage)
    yield store
    store.close()


@pytest.fixture
def start_hub_bus(
    tmp_path: Path, topology: NatsTopology, hub_store: HubStore
) -> Iterator[Callable[..., HubBus]]:
    """``start_hub_bus(signing_key=None, **options)``: a started hub bus over ``hub_store``; all stop after."""
    buses: list[HubBus] = []

    def start(*, signing_key: str | None = None, **options: Any) -> HubBus:
        config = hub_config(tmp_path / "hub", topology.hub.url, signing_key=signing_key)
        buses.append(HubBus(config, hub_store, **options))
        buses[-1].start()
        return buses[-1]

    yield start
    for bus in buses:
        bus.stop()  # safe to call twice


@pytest.fixture
def signed(
    hub_store: HubStore, start_hub_bus: Callable[..., HubBus], signed_plant: ServiceParts
) -> tuple[ServiceParts, HubStore, HubBus]:
    """The plant and a hub sharing ``SIGNING_KEY``, started."""
    return signed_plant, hub_store, start_hub_bus(signing_key=SIGNING_KEY)


@pytest.fixture
def hub(tmp_path: Path, topology: NatsTopology, database_url: str) -> Iterator[tuple[HubStore, HubBus]]:
    """The hub's store (SQLite, and PostgreSQL in the slow run) and its bus consumer, started."""
    config = hub_config(tmp_path / "hub", topology.hub.url, database_url)
    store = HubStore.from_config(config.storage)
    bus = HubBus(config, store)
    bus.start()
    yield store, bus
    bus.stop()
    store.close()


def stored_at_the_hub(plant: ServiceParts, store: HubStore) -> Event:
    """An event the plant publishes, once the hub has stored it."""
    event = make_event()
    plant.sink.publish(event)
    assert wait_for(lambda: store.get_event(PLANT, event.id) is not None, 60)
    return event


@contextmanager
def plant_and_hub(data_dir: Path, plant_url: str, hub_url: str) -> Iterator[tuple[ServiceParts, HubStore]]:
    """A plant service on ``plant_url`` and a hub consuming from ``hub_url`` (SQLite), started, then closed."""
    config = hub_config(data_dir / "hub", hub_url)
    store = HubStore.from_config(config.storage)
    bus = HubBus(config, store)
    parts = build_service_parts(plant_config(data_dir / "plant", plant_url))
    bus.start()
    parts.start()
    try:
        yield parts, store
    finally:
        parts.close()
        bus.stop()
        store.close()
