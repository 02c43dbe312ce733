"""The hub accepts a plant's leaf node only with that plant's password: a wrong one carries nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import make_event
from tests.service.bus.conftest import PLANT, plant_and_hub
from tests.support.nats import NatsTopology, nats_server_available
from tests.support.waiting import wait_for

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[NatsTopology]:
    """A hub requiring the plant's password, and the plant's leaf node presenting a wrong one."""
    if not nats_server_available():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    topology = NatsTopology(tmp_path / "nats", leaf_passwords={PLANT: PASSWORD})
    topology.add_plant(PLANT, leaf_password="not-the-plants-password")
    topology.start()
    yield topology
    for server in [*topology.plants.values(), topology.hub]:
        server.kill()
    topology.link.cut()


def test_a_leaf_node_with_a_wrong_password_is_refused_and_the_right_one_carries_the_events(
    tmp_path: Path, guarded: NatsTopology
) -> None:
    leaf = guarded.plants[PLANT]
    with plant_and_hub(tmp_path, leaf.url, guarded.hub.url) as (parts, store):
        for event in [make_event() for _ in range(20)]:
            parts.sink.publish(event)
        assert wait_for(lambda: "Authorization Violation" in leaf.log_path.read_text(errors="replace"), 30)
        assert store.count_events(PLANT) == 0

        leaf.stop()
        leaf.reconfigure(guarded.plant_config(PLANT, leaf.port, PASSWORD))
        leaf.start()
        assert wait_for(lambda: store.count_events(PLANT) == 20, 120)
