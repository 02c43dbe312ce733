"""Proof under faults, with real nats-servers: a cut link, a hub killed with -9, a plant service restarted.

Every event raised reaches the hub, and once: the hub holds exactly one incident row and one
``raise`` audit line per event, whatever was delivered again. No test measures time; the
waits are deadlines.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from anjian.pipeline.event import Event
from anjian.service.benchmarks.hub_process import HubProcess, write_hub_config
from anjian.service.bus.remarks import ACTION_REMARK
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import AnjianConfig
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import HubStore
from anjian.service.records import DeliveryStatus
from tests.factories import make_event
from tests.service.bus.conftest import PLANT
from tests.support.nats import NatsTopology
from tests.support.receiver import unused_port
from tests.support.waiting import wait_for

DELIVERY_TIMEOUT_S = 180.0


def _raise(parts: ServiceParts, count: int, *, over_s: float = 0.0) -> list[Event]:
    """Publish ``count`` new events through the plant's event writer, spread over ``over_s`` seconds."""
    events = [make_event(camera_id=("cam-1", "cam-2")[i % 2]) for i in range(count)]
    pause_s = over_s / count if over_s else 0.0
    for event in events:
        parts.sink.publish(event)
        if pause_s:
            time.sleep(pause_s)
    return events


@contextmanager
def _running_plant(config: AnjianConfig) -> Iterator[ServiceParts]:
    """The plant's service parts over ``config``, started, then closed (closing stores what is queued)."""
    parts = build_service_parts(config)
    parts.start()
    try:
        yield parts
    finally:
        parts.close()


def _all_published(parts: ServiceParts) -> bool:
    """The plant's outbox holds nothing pending: every announcement is in the plant's JetStream."""
    parts.sink.flush(5.0)
    return parts.store.outbox.count(DeliveryStatus.PENDING) == 0


def _assert_once(store: HubStore, events: list[Event], *, already: int = 0) -> None:
    """The hub holds every event exactly once (one row, one raise line) and nothing else."""
    assert store.count_events(PLANT) == len(events) + already
    assert store.count_audit(PLANT, action="raise") == len(events) + already
    missing = [e.id for e in events if store.get_event(PLANT, e.id) is None]
    assert missing == []


def test_every_event_raised_while_the_link_is_cut_reaches_the_hub_once(
    plant: ServiceParts, hub: tuple[HubStore, HubBus], topology: NatsTopology
) -> None:
    """1,000 events in a burst while the link is down (on SQLite and PostgreSQL)."""
    _cut_link_while_raising(plant, hub, topology, cut_s=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_events_raised_over_a_60_s_cut_reach_the_hub_once(
    plant: ServiceParts, hub: tuple[HubStore, HubBus], topology: NatsTopology
) -> None:
    """The issue's case: the link cut for 60 s while 1,000 events are raised through it.

    The hub's database plays no part in the cut itself, so PostgreSQL runs the burst above only.
    """
    _cut_link_while_raising(plant, hub, topology, cut_s=60.0)


def _cut_link_while_raising(
    plant: ServiceParts, hub: tuple[HubStore, HubBus], topology: NatsTopology, *, cut_s: float
) -> None:
    store, bus = hub
    warm_up = _raise(plant, 1)
    assert wait_for(lambda: store.count_events(PLANT) == 1, 60)

    topology.link.cut()
    events = _raise(plant, 1000, over_s=cut_s)
    store.add_remark(
        PLANT, warm_up[0].id, actor="bureau", note="Why no acknowledgement?", is_press_for_action=False
    )
    bus.remark_added()
    # While the link is down the plant's own JetStream takes every announcement (its disk).
    assert wait_for(lambda: _all_published(plant), DELIVERY_TIMEOUT_S)
    assert store.count_events(PLANT) == 1

    topology.link.restore()
    assert wait_for(lambda: store.count_events(PLANT) == 1001, DELIVERY_TIMEOUT_S)
    _assert_once(store, events, already=1)

    def remarked() -> bool:
        return any(line.action == ACTION_REMARK for line in plant.store.audit_trail(warm_up[0].id))

    assert wait_for(remarked, 60)  # the remark made during the cut reached the plant afterwards


@pytest.fixture
def hub_process(
    tmp_path: Path, topology: NatsTopology, database_url: str
) -> Iterator[tuple[HubProcess, str]]:
    """``anjian hub serve`` as a child process (SQLite; PostgreSQL in the slow run), 50 messages a batch,
    redelivering after 2 s; with the URL of its database."""
    port = unused_port()
    config = write_hub_config(
        tmp_path / "hub",
        nats_url=topology.hub.url,
        plant_ids=[PLANT],
        port=port,
        fetch_batch=50,
        ack_wait_s=2.0,
        database_url=None if database_url.startswith("sqlite") else database_url,
    )
    process = HubProcess(config, port, tmp_path / "hub.log")
    process.start()
    data = tmp_path / "hub" / "data"
    yield process, f"sqlite:///{data / 'anjian.db'}" if database_url.startswith("sqlite") else database_url
    process.kill()


def test_a_hub_killed_mid_stream_and_restarted_loses_nothing_and_repeats_nothing(
    plant: ServiceParts, hub_process: tuple[HubProcess, str]
) -> None:
    process, hub_database = hub_process
    store = HubStore(hub_database)
    try:
        events = _raise(plant, 1000)
        assert wait_for(lambda: store.count_events(PLANT) >= 100, DELIVERY_TIMEOUT_S)
        process.kill()
        if store.count_events(PLANT) == 1000:
            pytest.skip("the hub stored every event before it was killed: nothing was mid-stream")
        process.start()
        assert wait_for(lambda: store.count_events(PLANT) == 1000, DELIVERY_TIMEOUT_S)
        _assert_once(store, events)
    finally:
        store.close()


def test_a_plant_service_restarted_mid_stream_resumes_publishing(
    hub: tuple[HubStore, HubBus], plant_site: AnjianConfig
) -> None:
    store, _bus = hub
    with _running_plant(plant_site) as parts:
        before = _raise(parts, 500)
    # closed: what was queued is stored; announcements not yet published stay in the outbox

    with _running_plant(plant_site) as parts:
        after = _raise(parts, 10)
        assert wait_for(lambda: store.count_events(PLANT) == 510, DELIVERY_TIMEOUT_S)
        _assert_once(store, before + after)


def test_events_raised_while_the_plants_own_nats_server_is_down_flow_when_it_returns(
    plant: ServiceParts, hub: tuple[HubStore, HubBus], topology: NatsTopology
) -> None:
    store, _bus = hub
    server = topology.plants[PLANT]
    server.kill()
    events = _raise(plant, 200)
    plant.sink.flush(30.0)

    def held_back() -> bool:
        deliveries = plant.store.outbox.list(status=DeliveryStatus.PENDING, limit=1000)
        return len(deliveries) == 200 and all(d.last_error and not d.attempts for d in deliveries)

    # Nothing can be published: the announcements wait in the plant's outbox, held back without
    # counting attempts (so no backoff grows while the server is down).
    assert wait_for(held_back, 60)
    assert store.count_events(PLANT) == 0

    server.start()
    assert wait_for(lambda: store.count_events(PLANT) == 200, DELIVERY_TIMEOUT_S)
    _assert_once(store, events)


def _copy_database(source: Path, target: Path) -> None:
    """Copy the plant's SQLite database (with its WAL files) from one data folder to another, replacing it."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("anjian.db*"):
        old.unlink()
    for path in source.glob("anjian.db*"):
        shutil.copy(path, target / path.name)


def test_a_plant_restored_from_a_backup_gets_its_later_changes_to_the_hub(
    tmp_path: Path, hub: tuple[HubStore, HubBus], plant_site: AnjianConfig
) -> None:
    # The restored database hands out the same audit ids, so the same outbox keys: the plant's JetStream
    # dropped its new changes as retries of the old ones, and the hub kept the old state for good.
    store, _bus = hub
    with _running_plant(plant_site) as parts:
        (event,) = _raise(parts, 1)
        assert wait_for(lambda: store.get_event(PLANT, event.id) is not None, DELIVERY_TIMEOUT_S)
    _copy_database(tmp_path / "plant", tmp_path / "backup")  # the nightly backup

    with _running_plant(plant_site) as parts:
        parts.store.transition(event.id, "acknowledge", actor="duty officer")
        parts.store.transition(event.id, "dispatch", actor="duty officer", assignee="Wang")
        assert wait_for(lambda: _state(store, event.id) == "dispatched", DELIVERY_TIMEOUT_S)
    _copy_database(tmp_path / "backup", tmp_path / "plant")  # the disk died: restored from the backup

    with _running_plant(plant_site) as parts:
        parts.store.transition(event.id, "false_alarm", actor="duty officer", note="reflection")
        parts.store.transition(event.id, "close", actor="duty officer")
        assert wait_for(lambda: _state(store, event.id) == "closed", DELIVERY_TIMEOUT_S)
    actions = [line.action for line in store.audit_trail(PLANT, event.id)]
    assert sorted(actions) == sorted(["raise", "acknowledge", "dispatch", "false_alarm", "close"])


def _state(store: HubStore, event_id: str) -> str | None:
    """The incident's state at the hub, or ``None`` before it has it."""
    event = store.get_event(PLANT, event_id)
    return None if event is None else event.state
