"""With a signing key per plant, no one else can speak for a plant: forged events are set aside, forged remarks dropped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import nats

from anjian.service.bus import subjects
from anjian.service.bus.messages import EventChange, SupervisorRemark
from anjian.service.bus.remarks import ACTION_REMARK
from anjian.service.bus.signing import is_signed_by, signature
from anjian.service.bus.subjects import HUB_UNSIGNED_STREAM
from anjian.service.composition import ServiceParts
from anjian.service.hub.config import HubBusConfig
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import HubStore
from anjian.service.schemas import WebhookPayload
from tests.factories import make_event
from tests.service.bus.conftest import PLANT, SIGNING_KEY, stored_at_the_hub
from tests.support.nats import NatsTopology, publish_raw
from tests.support.waiting import wait_for


def test_a_signature_verifies_only_with_its_key_and_its_body() -> None:
    headers = {"Anjian-Signature": signature(SIGNING_KEY, b"body")}
    assert is_signed_by(SIGNING_KEY, b"body", headers)
    assert not is_signed_by(SIGNING_KEY, b"other body", headers)
    assert not is_signed_by("another-key-of-16+chars", b"body", headers)
    assert not is_signed_by(SIGNING_KEY, b"body", None)


def test_an_unsigned_event_in_the_plants_stream_is_set_aside_and_signed_ones_are_stored(
    signed: tuple[ServiceParts, HubStore, HubBus], topology: NatsTopology
) -> None:
    plant, store, bus = signed
    stored = plant.store.get_event(stored_at_the_hub(plant, store).id)
    assert stored is not None

    forged_event = make_event()
    payload = WebhookPayload.for_event(stored)
    payload = payload.model_copy(update={"event": payload.event.model_copy(update={"id": forged_event.id})})
    change = EventChange(plant_id=PLANT, key="forged:1", sent_at=0.0, payload=payload)
    # Another plant publishing on site-1's subject: it lands in site-1's stream, unsigned.
    publish_raw(
        topology.plants[PLANT].url,
        subjects.event_subject(PLANT),
        change.model_dump_json().encode(),
        "forged:1",
    )
    assert wait_for(lambda: bus.stats().unsigned == 1, 60)  # set aside (a wrong key loses nothing) ...
    assert store.get_event(PLANT, forged_event.id) is None  # ... and not stored


def test_a_remark_not_signed_with_the_plants_key_is_dropped(
    signed: tuple[ServiceParts, HubStore, HubBus], topology: NatsTopology
) -> None:
    plant, store, bus = signed
    event = stored_at_the_hub(plant, store)
    forged = SupervisorRemark(
        id=uuid.uuid4().hex, plant_id=PLANT, event_id=event.id, actor="bureau", note="forged", at=1.0
    )
    publish_raw(
        topology.hub.url, subjects.command_subject(PLANT), forged.model_dump_json().encode(), forged.id
    )
    store.add_remark(PLANT, event.id, actor="bureau", note="genuine", is_press_for_action=False)
    bus.remark_added()

    def remarks() -> list[str]:
        return [line.note for line in plant.store.audit_trail(event.id) if line.action == ACTION_REMARK]

    assert wait_for(lambda: remarks() != [], 60)
    assert remarks() == ["genuine"]  # the forged one came first, and was dropped


def test_events_set_aside_under_a_wrong_hub_key_are_stored_once_the_key_is_fixed(
    hub_store: HubStore, start_hub_bus: Callable[..., HubBus], signed_plant: ServiceParts
) -> None:
    store = hub_store
    bus = start_hub_bus(signing_key="not-the-key-site-1-signs-with")
    events = [make_event() for _ in range(5)]
    for event in events:
        signed_plant.sink.publish(event)
    assert wait_for(lambda: bus.stats().unsigned >= 5, 60)  # set aside
    assert store.count_events(PLANT) == 0
    bus.stop()

    bus = start_hub_bus(signing_key=SIGNING_KEY)
    assert wait_for(lambda: store.count_events(PLANT) == 5, 60)  # the hub with the right key stores them
    assert wait_for(lambda: bus.stats().released >= 5, 10)  # counted once the batch is committed


def test_unsigned_messages_are_set_aside_and_never_wait_in_the_live_consumer(
    signed: tuple[ServiceParts, HubStore, HubBus], topology: NatsTopology
) -> None:
    # Held back in the live consumer, 20,000 of them (its max_ack_pending) stopped the hub taking anything
    # from any plant: they are copied to HUB_UNSIGNED and acked instead.
    plant, store, bus = signed
    stored_at_the_hub(plant, store)  # the plant's stream exists once it has published
    for index in range(50):
        publish_raw(
            topology.plants[PLANT].url, subjects.event_subject(PLANT), b'{"type":"event"}', f"junk:{index}"
        )
    assert wait_for(lambda: bus.stats().unsigned == 50, 60)
    stored_at_the_hub(plant, store)  # the plant's signed events still come through

    async def counts() -> tuple[int, int]:
        client = await nats.connect(topology.hub.url)
        try:
            js = client.jetstream()
            consumer = await js.consumer_info(subjects.HUB_EVENTS_STREAM, subjects.HUB_CONSUMER)
            set_aside = await js.stream_info(HUB_UNSIGNED_STREAM)
            return consumer.num_ack_pending, set_aside.state.messages
        finally:
            await client.close()

    assert asyncio.run(counts()) == (0, 50)
    assert store.count_events(PLANT) == 2


def test_the_hubs_events_stream_holds_at_most_max_stream_bytes(
    signed: tuple[ServiceParts, HubStore, HubBus], topology: NatsTopology
) -> None:
    plant, store, _bus = signed
    stored_at_the_hub(plant, store)  # the hub has set up its streams

    async def limits() -> tuple[int | None, int | None]:
        client = await nats.connect(topology.hub.url)
        try:
            js = client.jetstream()
            events = await js.stream_info(subjects.HUB_EVENTS_STREAM)
            set_aside = await js.stream_info(HUB_UNSIGNED_STREAM)
            return events.config.max_bytes, set_aside.config.max_bytes
        finally:
            await client.close()

    default = HubBusConfig().max_stream_bytes
    assert asyncio.run(limits()) == (default, default // 10)
