"""An event whose snapshot would make its message too big for the nats-server still reaches the bus, without it."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import nats
import pytest
from pydantic import ValidationError

from anjian.service.bus import subjects
from anjian.service.bus.address import BUS_ADDRESS
from anjian.service.bus.config import MAX_SNAPSHOT_BYTES, BusConfig
from anjian.service.composition import build_service_parts
from anjian.service.records import DeliveryStatus
from tests.factories import make_event, make_jpeg
from tests.service.bus.conftest import PLANT, plant_config
from tests.support.nats import nats_server_available, start_jetstream_server
from tests.support.waiting import wait_for


def _stored_messages(url: str, count: int) -> list[dict[str, object]]:
    """The first ``count`` messages of the plant's events stream, as JSON."""

    async def read() -> list[dict[str, object]]:
        client = await nats.connect(url)
        try:
            js = client.jetstream()
            stream = subjects.plant_events_stream(PLANT)
            return [json.loads((await js.get_msg(stream, seq)).data or b"") for seq in range(1, count + 1)]
        finally:
            await client.close()

    return asyncio.run(read())


def test_an_event_whose_snapshot_is_over_the_servers_max_payload_is_published_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # nats-server's default max_payload is 1 MiB: a 900 KB snapshot is 1.2 MB in base64.
    if not nats_server_available():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    server = start_jetstream_server(tmp_path / "nats")
    parts = build_service_parts(plant_config(tmp_path / "plant", server.url))
    parts.start()
    try:
        big = make_event(snapshot_jpeg=make_jpeg() + os.urandom(900_000))
        small = make_event()
        for event in (big, small):
            parts.sink.publish(event)

        def delivered() -> int:
            rows = parts.store.outbox.list(status=DeliveryStatus.DELIVERED)
            return sum(row.url == BUS_ADDRESS for row in rows)

        assert wait_for(lambda: delivered() == 2, 60)
        messages = {m["payload"]["event"]["id"]: m for m in _stored_messages(server.url, 2)}  # type: ignore[index]
        assert messages[big.id]["snapshot_jpeg"] is None
        assert messages[small.id]["snapshot_jpeg"] is not None
        assert parts.bus is not None and parts.bus.stats().snapshots_left_out == 1
        assert "the event goes to the hub without it" in caplog.text
    finally:
        parts.close()
        server.kill()


def test_a_max_snapshot_bytes_that_cannot_fit_a_bus_message_is_refused_saying_why() -> None:
    assert BusConfig(max_snapshot_bytes=MAX_SNAPSHOT_BYTES).max_snapshot_bytes == MAX_SNAPSHOT_BYTES
    with pytest.raises(
        ValidationError, match="at most 6000000 bytes, got 7000000: a snapshot travels base64"
    ):
        BusConfig(max_snapshot_bytes=7_000_000)
