"""A message the hub's database refuses does not hold back the others, and is given up after a few tries.

Only failures while the database answers count: an outage never brings a message closer to being
given up, and the durable consumer has no delivery cap of its own.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from anjian.service.bus import subjects
from anjian.service.bus.messages import BusMessage, EventChange
from anjian.service.bus.streams import ensure_durable
from anjian.service.composition import ServiceParts
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import ApplyResult, HubStore
from tests.factories import make_event
from tests.service.bus.conftest import PLANT, SIGNING_KEY, stored_at_the_hub
from tests.service.conftest import FakeClock
from tests.service.hub.conftest import PlantRecorder
from tests.support.nats import NatsTopology, publish_raw, running_jetstream_server
from tests.support.waiting import wait_for


class _FlakyDatabase:
    """Wraps a store's ``apply`` and ``ping``: down (both fail), then ``transient`` failures of ``apply`` alone."""

    def __init__(self, store: HubStore, *, is_down: bool, transient: int) -> None:
        self.is_down = is_down
        self.transient = transient
        self.refused = 0
        self._apply, self._ping = store.apply, store.ping
        store.apply = self.apply  # type: ignore[method-assign]
        store.ping = self.ping  # type: ignore[method-assign]

    def apply(
        self, messages: Sequence[BusMessage], *, stored_at: Sequence[float] | None = None
    ) -> ApplyResult:
        if self.is_down:
            self.refused += 1
            raise RuntimeError("connection refused")
        if self.transient > 0:
            self.transient -= 1
            raise RuntimeError("deadlock detected (transient)")
        return self._apply(messages, stored_at=stored_at)

    def ping(self) -> None:
        if self.is_down:
            raise RuntimeError("connection refused")
        self._ping()


PublishRaw = Callable[[str, bytes, str], None]
"""``publish(subject, data, msg_id)``: ``publish_raw`` on the plant's leaf node."""


@pytest.fixture
def publish(topology: NatsTopology, plant: ServiceParts, hub: tuple[HubStore, HubBus]) -> PublishRaw:
    """Publishes raw messages on the plant's leaf node as ``publish_raw``; the plant's stream exists, the
    hub having stored an event the plant published."""
    stored_at_the_hub(plant, hub[0])
    return functools.partial(publish_raw, topology.plants[PLANT].url)


def test_a_poison_message_is_given_up_and_the_rest_of_its_batch_is_stored(
    plant: ServiceParts,
    hub_store: HubStore,
    start_hub_bus: Callable[..., HubBus],
    caplog: pytest.LogCaptureFixture,
) -> None:
    poison = make_event()
    store = hub_store
    real_apply = store.apply

    def refusing_apply(
        messages: Sequence[BusMessage], *, stored_at: Sequence[float] | None = None
    ) -> ApplyResult:
        if any(isinstance(m, EventChange) and m.payload.event.id == poison.id for m in messages):
            raise RuntimeError("value too long for type character varying(64)")
        return real_apply(messages, stored_at=stored_at)

    store.apply = refusing_apply  # type: ignore[method-assign]
    bus = start_hub_bus(max_deliveries=3)
    good = [make_event() for _ in range(4)]
    for event in [good[0], good[1], poison, good[2], good[3]]:
        plant.sink.publish(event)
    assert wait_for(lambda: store.count_events(PLANT) == 4, 60)
    assert wait_for(lambda: bus.stats().terminated == 1, 60)
    assert store.get_event(PLANT, poison.id) is None
    assert "giving up on message" in caplog.text


def test_through_a_database_outage_nothing_is_given_up(
    plant: ServiceParts, hub_store: HubStore, start_hub_bus: Callable[..., HubBus]
) -> None:
    store = hub_store
    real_apply, real_ping = store.apply, store.ping
    outage = {"is_down": True, "refused": 0}

    def apply(messages: Sequence[BusMessage], *, stored_at: Sequence[float] | None = None) -> ApplyResult:
        if outage["is_down"]:
            outage["refused"] += 1
            raise RuntimeError("connection refused")
        return real_apply(messages, stored_at=stored_at)

    def ping() -> None:
        if outage["is_down"]:
            raise RuntimeError("connection refused")
        real_ping()

    store.apply = apply  # type: ignore[method-assign]
    store.ping = ping  # type: ignore[method-assign]
    bus = start_hub_bus(max_deliveries=2, outage_retry_s=0.2, outage_retry_max_s=1.0)
    events = [make_event() for _ in range(10)]
    for event in events:
        plant.sink.publish(event)
    assert wait_for(lambda: outage["refused"] >= 5, 60)  # refused again and again, past max_deliveries
    outage["is_down"] = False
    assert wait_for(lambda: store.count_events(PLANT) == 10, 60)
    assert bus.stats().terminated == 0


def test_redeliveries_through_an_outage_do_not_count_towards_giving_a_message_up(
    plant: ServiceParts, hub_store: HubStore, start_hub_bus: Callable[..., HubBus]
) -> None:
    store = hub_store
    # Down; once up, the batch and then the message alone fail once each.
    database = _FlakyDatabase(store, is_down=True, transient=2)
    bus = start_hub_bus(max_deliveries=3, outage_retry_s=0.2, outage_retry_max_s=0.5)
    event = make_event()
    plant.sink.publish(event)
    assert wait_for(lambda: database.refused >= 6, 60)  # delivered twice max_deliveries while down
    database.is_down = False
    assert wait_for(lambda: store.get_event(PLANT, event.id) is not None, 60)
    assert bus.stats().terminated == 0


def test_a_message_set_aside_as_unsigned_survives_a_database_failure_once_the_key_is_fixed(
    hub_store: HubStore, start_hub_bus: Callable[..., HubBus], signed_plant: ServiceParts
) -> None:
    # A wrong key on the hub sets the plant's messages aside; once fixed (a restart), a transient
    # failure of the database while they are stored loses none of them.
    store = hub_store
    bus = start_hub_bus(signing_key="not-the-key-the-plant-signs-with")  # the wrong key
    event = make_event()
    signed_plant.sink.publish(event)
    assert wait_for(lambda: bus.stats().unsigned >= 1, 60)
    bus.stop()
    _FlakyDatabase(store, is_down=False, transient=2)
    bus = start_hub_bus(signing_key=SIGNING_KEY, max_deliveries=3)  # the right key
    assert wait_for(lambda: store.get_event(PLANT, event.id) is not None, 60)
    assert bus.stats().terminated == 0


def test_a_durable_consumer_that_caps_deliveries_is_updated_to_no_cap(tmp_path: Path) -> None:
    async def run(url: str) -> int:
        client = await nats.connect(url)
        try:
            js = client.jetstream()
            await js.add_stream(StreamConfig(name="S", subjects=["s.>"]))
            await js.add_consumer(
                "S", ConsumerConfig(durable_name="D", ack_policy=AckPolicy.EXPLICIT, max_deliver=5)
            )
            await ensure_durable(js, "S", "D", ack_wait_s=2.0)
            info = await js.consumer_info("S", "D")
            return int(info.config.max_deliver or 0)
        finally:
            await client.close()

    with running_jetstream_server(tmp_path / "nats") as server:
        assert asyncio.run(run(server.url)) == -1


def test_a_report_timed_at_infinity_is_dropped_with_its_reason_and_the_rest_is_stored(
    plant: ServiceParts, hub: tuple[HubStore, HubBus], publish: PublishRaw, caplog: pytest.LogCaptureFixture
) -> None:
    # A time of Infinity would order after every later report for good: it is bad input, dropped.
    store, bus = hub
    data = b'{"type":"health","plant_id":"site-1","sent_at":Infinity,"cameras":[]}'

    second = make_event()
    publish(subjects.health_subject(PLANT), data, "inf")
    plant.sink.publish(second)
    assert wait_for(lambda: store.get_event(PLANT, second.id) is not None, 60)
    assert wait_for(lambda: bus.stats().terminated == 1, 60)
    assert "health.sent_at: Input should be a finite number" in caplog.text


def test_an_event_from_a_plant_newer_than_the_hub_is_stored_without_the_fields_it_does_not_know(
    tmp_path: Path, hub: tuple[HubStore, HubBus], publish: PublishRaw, caplog: pytest.LogCaptureFixture
) -> None:
    # A plant upgraded before the hub: its messages were terminated for good ("Extra inputs are not permitted").
    store, bus = hub
    recorder = PlantRecorder(PLANT, tmp_path / "newer-plant.db", FakeClock())
    newer = make_event()
    message = json.loads(recorder.raise_event(newer).model_dump_json())
    recorder.store.close()
    message["payload"]["event"]["shift"] = "night"
    message["priority"] = 2

    publish(subjects.event_subject(PLANT), json.dumps(message).encode(), "newer")

    assert wait_for(lambda: store.get_event(PLANT, newer.id) is not None, 60)
    assert bus.stats().terminated == 0
    assert "payload.event.shift, priority" in caplog.text  # named once: upgrade the hub


def test_a_report_timed_past_any_clock_is_dropped_and_the_next_one_is_stored(
    hub: tuple[HubStore, HubBus], publish: PublishRaw, caplog: pytest.LogCaptureFixture
) -> None:
    # Stored, since=1e15 made /api/cameras answer 500 for every token that sees the plant.
    store, bus = hub

    def report(sent_at: float, since: float) -> bytes:
        camera = {"camera_id": "cam-1", "state": "online", "since": since}
        return json.dumps(
            {"type": "health", "plant_id": PLANT, "sent_at": sent_at, "cameras": [camera]}
        ).encode()

    now = time.time()
    publish(subjects.health_subject(PLANT), report(now, 1e15), "far")
    publish(subjects.health_subject(PLANT), report(now + 1, now - 60), "near")

    assert wait_for(lambda: bus.stats().terminated == 1, 60)
    assert wait_for(lambda: [c.since for c in store.cameras([PLANT])] == [now - 60], 60)
    assert "health.cameras.0.since: Input should be less than or equal to 100000000000" in caplog.text
