"""A message the hub's database refuses does not hold back the others, and is given up after a few tries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from anjian.service.bus.messages import BusMessage, EventChange
from anjian.service.composition import ServiceParts
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import ApplyResult, HubStore
from tests.factories import make_event
from tests.service.bus.conftest import PLANT, hub_config
from tests.support.nats import NatsTopology
from tests.support.waiting import wait_for


def test_a_poison_message_is_given_up_and_the_rest_of_its_batch_is_stored(
    tmp_path: Path, topology: NatsTopology, plant: ServiceParts, caplog: pytest.LogCaptureFixture
) -> None:
    poison = make_event()
    config = hub_config(tmp_path / "hub", topology.hub.url)
    store = HubStore.from_config(config.storage)
    real_apply = store.apply

    def refusing_apply(messages: Sequence[BusMessage]) -> ApplyResult:
        if any(isinstance(m, EventChange) and m.payload.event.id == poison.id for m in messages):
            raise RuntimeError("value too long for type character varying(64)")
        return real_apply(messages)

    store.apply = refusing_apply  # type: ignore[method-assign]
    bus = HubBus(config, store, max_deliveries=3)
    bus.start()
    try:
        good = [make_event() for _ in range(4)]
        for event in [good[0], good[1], poison, good[2], good[3]]:
            plant.sink.publish(event)
        assert wait_for(lambda: store.count_events(PLANT) == 4, 60)
        assert wait_for(lambda: bus.stats().terminated == 1, 60)
        assert store.get_event(PLANT, poison.id) is None
        assert "giving up on message" in caplog.text
    finally:
        bus.stop()
        store.close()


def test_through_a_database_outage_nothing_is_given_up(
    tmp_path: Path, topology: NatsTopology, plant: ServiceParts
) -> None:
    config = hub_config(tmp_path / "hub", topology.hub.url)
    store = HubStore.from_config(config.storage)
    real_apply, real_ping = store.apply, store.ping
    outage = {"is_down": True, "refused": 0}

    def apply(messages: Sequence[BusMessage]) -> ApplyResult:
        if outage["is_down"]:
            outage["refused"] += 1
            raise RuntimeError("connection refused")
        return real_apply(messages)

    def ping() -> None:
        if outage["is_down"]:
            raise RuntimeError("connection refused")
        real_ping()

    store.apply = apply  # type: ignore[method-assign]
    store.ping = ping  # type: ignore[method-assign]
    bus = HubBus(config, store, max_deliveries=2)
    bus.start()
    try:
        events = [make_event() for _ in range(10)]
        for event in events:
            plant.sink.publish(event)
        assert wait_for(lambda: outage["refused"] >= 5, 60)  # refused again and again, past max_deliveries
        outage["is_down"] = False
        assert wait_for(lambda: store.count_events(PLANT) == 10, 60)
        assert bus.stats().terminated == 0
    finally:
        bus.stop()
        store.close()
