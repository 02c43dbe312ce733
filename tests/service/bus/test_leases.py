"""Camera leases of a plant's pipeline nodes against a real nats-server: acquire, renew, expire, race, hand back."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError

from anjian.pipeline.incident_journal import JournalEntry
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.errors import BusUnavailableError
from anjian.service.bus.leases import Lease, LeaseBucket, incident_bucket_name, lease_bucket_name
from anjian.service.bus.subjects import plant_domain
from anjian.service.node_config import NodeConfig, NodesConfig
from anjian.service.nodes import CameraNode, _ids, plan_round, share_orphans
from tests.service.bus.conftest import PLANT
from tests.support.nats import NatsServer, NatsTopology, nats_server_available, start_jetstream_server
from tests.support.waiting import wait_for

TTL_S = 3.0
RENEW_S = 1.0
NODES = NodesConfig(
    lease_ttl_s=TTL_S,
    renew_interval_s=RENEW_S,
    members=[
        NodeConfig(name="line-a", cameras=["cam-1", "cam-2"]),
        NodeConfig(name="line-b", cameras=["cam-3"]),
    ],
)
CAMERAS = ["cam-1", "cam-2", "cam-3"]


def _start_server(folder: Path) -> NatsServer:
    if not nats_server_available():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    return start_jetstream_server(folder)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One JetStream nats-server for the module; each test leases in its own plant's bucket."""
    nats = _start_server(tmp_path_factory.mktemp("nats"))
    yield nats
    nats.kill()


@pytest.fixture
def bus(server: NatsServer) -> Iterator[BusConnection]:
    connection = BusConnection(server.url, name="lease-test")
    connection.start()
    assert connection.wait_connected(10)
    yield connection
    connection.stop()


class Cameras:
    """A ``CameraHost`` shared by the nodes of a test: who runs which camera, and every overlap seen."""

    def __init__(self) -> None:
        self.running: dict[str, str] = {}
        self.overlaps: list[str] = []
        self.settled: dict[str, set[str]] = {}
        self.incidents: dict[str, list[JournalEntry]] = {}  # open on each camera, whichever node runs it
        self.received: list[tuple[str, str, list[JournalEntry]]] = []  # node, camera, incidents carried on
        self.ended: list[tuple[str, str, str]] = []  # node, camera, event id: ended by a node that stopped it
        self.kept: list[
            tuple[str, str, list[JournalEntry]]
        ] = []  # node, camera, incidents kept for its restart
        self._lock = threading.Lock()

    def host(self, node: str) -> NodeCameras:
        return NodeCameras(self, node)

    def nodes_of(self, camera_id: str) -> str | None:
        with self._lock:
            return self.running.get(camera_id)


class NodeCameras:
    def __init__(self, cameras: Cameras, node: str) -> None:
        self._cameras = cameras
        self._node = node

    def start_camera(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        with self._cameras._lock:
            self._cameras.received.append((self._node, camera_id, incidents))
            if camera_id in self._cameras.running:
                self._cameras.overlaps.append(
                    f"{camera_id}: {self._cameras.running[camera_id]} and {self._node}"
                )
            self._cameras.running[camera_id] = self._node

    def stop_camera(self, camera_id: str) -> list[JournalEntry]:
        with self._cameras._lock:
            if self._cameras.running.get(camera_id) != self._node:
                return []  # as a journal that handed them over already
            del self._cameras.running[camera_id]
            return self._cameras.incidents.get(camera_id, [])

    def open_incidents(self, camera_id: str) -> list[JournalEntry]:
        with self._cameras._lock:
            return self._cameras.incidents.get(camera_id, [])

    def settle(self, continued: set[str]) -> None:
        self._cameras.settled[self._node] = continued

    def end_incidents(self, camera_id: str, incidents: list[JournalEntry], carried_on: set[str]) -> None:
        with self._cameras._lock:
            self._cameras.ended.extend(
                (self._node, camera_id, str(entry["event"]["id"]))
                for entry in incidents
                if str(entry["event"]["id"]) not in carried_on
            )

    def keep_incidents(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        with self._cameras._lock:
            self._cameras.kept.append((self._node, camera_id, incidents))


def _node(name: str, server: NatsServer, plant: str) -> CameraNode:
    return CameraNode(name, NODES, plant_id=plant, bus_url=server.url, camera_ids=CAMERAS)


@contextmanager
def _running(cameras: Cameras, *nodes: CameraNode) -> Iterator[None]:
    """Start ``nodes`` on the test's shared cameras; stop each on the way out, then check no camera ran twice."""
    for node in nodes:
        node.start(cameras.host(node.name))
    try:
        yield
    finally:
        for node in nodes:
            node.stop()
    assert cameras.overlaps == []


def test_create_lets_one_of_two_racing_nodes_take_a_free_camera(bus: BusConnection) -> None:
    async def race(js: JetStreamContext) -> list[Lease | None]:
        bucket = await LeaseBucket.ensure(js, "race", ttl_s=TTL_S)
        return list(await asyncio.gather(*(bucket.acquire("cam-1", f"node-{i}") for i in range(4))))

    won = [lease for lease in bus.call(race, timeout_s=10) if lease is not None]

    assert len(won) == 1


def test_a_lease_renews_with_its_revision_and_a_stale_revision_loses(bus: BusConnection) -> None:
    async def scenario(js: JetStreamContext) -> tuple[Lease | None, Lease | None, bool, dict[str, Lease]]:
        bucket = await LeaseBucket.ensure(js, "renew", ttl_s=TTL_S)
        first = await bucket.acquire("cam-1", "line-a")
        assert first is not None
        renewed = await bucket.renew(first)
        stale = await bucket.renew(first)  # the revision it names was replaced by the renewal
        released_stale = await bucket.release(first)
        return renewed, stale, released_stale, await bucket.leases(["cam-1", "cam-2"])

    renewed, stale, released_stale, leases = bus.call(scenario, timeout_s=10)

    assert renewed is not None and stale is None and not released_stale
    assert list(leases) == ["cam-1"] and leases["cam-1"].node == "line-a"
    assert leases["cam-1"].revision == renewed.revision


def test_an_unreadable_lease_is_left_out_held_and_the_other_cameras_still_read(
    bus: BusConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged value (or one in a format this version cannot read) once failed every node's round."""

    async def scenario(js: JetStreamContext) -> tuple[dict[str, Lease], Lease | None, dict[str, Lease]]:
        bucket = await LeaseBucket.ensure(js, "unreadable", ttl_s=TTL_S)
        assert await bucket.acquire("cam-2", "line-a") is not None
        raw = await js.key_value(lease_bucket_name("unreadable"))
        await raw.put("camera.cam-1", b"not json")
        first = await bucket.leases(["cam-1", "cam-2"])
        taken = await bucket.acquire("cam-1", "line-b")
        await raw.put("camera.cam-1", b'{"node": "line-c"}')  # no renewed_at
        return first, taken, await bucket.leases(["cam-1", "cam-2"])

    with caplog.at_level(logging.WARNING, logger="anjian.service.bus.leases"):
        first, taken, second = bus.call(scenario, timeout_s=10)

    assert list(first) == ["cam-2"] and list(second) == ["cam-2"]
    assert taken is None  # held by whoever wrote it: no second node runs the camera
    warnings = [r.getMessage() for r in caplog.records if "cam-1" in r.getMessage()]
    assert len(warnings) == 2 and all("unreadable" in w for w in warnings)  # once per revision


@pytest.mark.parametrize(
    ("saved", "ids"),
    [
        (b'[{"event": {"id": "e-1"}}, 1, {"event": 5}, {"event": {}}, [], null]', {"e-1"}),
        (b'{"event": {"id": "e-1"}}', set()),
        (b"not json", set()),
    ],
    ids=["entries-of-other-shapes", "not-a-list", "not-json"],
)
def test_saved_incidents_of_another_shape_give_no_id_rather_than_fail_the_round(
    saved: bytes, ids: set[str]
) -> None:
    assert _ids(saved) == ids


def test_an_unrenewed_lease_expires_on_the_server_and_another_node_can_take_it(bus: BusConnection) -> None:
    async def take(js: JetStreamContext, node: str) -> Lease | None:
        bucket = await LeaseBucket.ensure(js, "expire", ttl_s=TTL_S)
        return await bucket.acquire("cam-1", node)

    async def take_twice(js: JetStreamContext) -> tuple[Lease | None, Lease | None]:
        # One call, two round trips: line-a's lease is fresh when line-b asks, however loaded the machine.
        return await take(js, "line-a"), await take(js, "line-b")

    first, second = bus.call(take_twice, timeout_s=10)
    assert first is not None and second is None  # held

    assert wait_for(lambda: bus.call(lambda js: take(js, "line-b"), timeout_s=10) is not None, timeout_s=20)


def test_a_lease_that_ages_out_while_it_is_being_taken_is_taken(bus: BusConnection) -> None:
    """nats-py's create finds the key held, then reads it, and by then the server aged it out.

    The read then raises ``KeyNotFoundError`` out of ``create`` (a loaded CI run hit it): the key is
    free, so ``acquire`` asks again. The ageing out is made certain by purging the key's message
    (no tombstone, as the server's max_age leaves none) just before the client's read.
    """

    async def take_while_it_ages_out(js: JetStreamContext) -> tuple[Lease | None, str | None]:
        await LeaseBucket.ensure(js, "aging", ttl_s=TTL_S)
        kv = await js.key_value(lease_bucket_name("aging"))
        incidents = await js.key_value(incident_bucket_name("aging"))
        await LeaseBucket(kv, incidents).acquire("cam-1", "line-a")
        read = kv._get  # the read nats-py's create does after a refused first write

        async def read_after_ageing_out(key: str, revision: int | None = None) -> Any:
            kv._get = read  # type: ignore[method-assign]
            await js.purge_stream(
                f"KV_{lease_bucket_name('aging')}", subject=f"$KV.{lease_bucket_name('aging')}.{key}"
            )
            return await read(key, revision)

        kv._get = read_after_ageing_out  # type: ignore[method-assign]
        lease = await LeaseBucket(kv, incidents).acquire("cam-1", "line-b")
        holder = json.loads((await kv.get("camera.cam-1")).value or b"{}").get("node")
        return lease, holder

    lease, holder = bus.call(take_while_it_ages_out, timeout_s=10)
    assert lease is not None and lease.node == "line-b"
    assert holder == "line-b"


def test_a_changed_lease_ttl_is_applied_to_the_existing_bucket(bus: BusConnection) -> None:
    async def ttl_after(js: JetStreamContext, ttl_s: float) -> float | None:
        await LeaseBucket.ensure(js, "retimed", ttl_s=ttl_s)
        return (await (await js.key_value(lease_bucket_name("retimed"))).status()).ttl

    assert bus.call(lambda js: ttl_after(js, TTL_S), timeout_s=10) == pytest.approx(TTL_S)
    assert bus.call(lambda js: ttl_after(js, 20.0), timeout_s=10) == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("leases", "alive", "running", "expected"),
    [
        ({}, {"line-a"}, [], ([], [], [], ["cam-1", "cam-2", "cam-3"])),
        ({}, {"line-a", "line-b"}, [], ([], [], [], ["cam-1", "cam-2"])),
        (
            {"cam-3": Lease("cam-3", "line-a", 5, 0.0)},
            {"line-a", "line-b"},
            ["cam-3"],
            ([], ["cam-3"], [], ["cam-1", "cam-2"]),
        ),
        (
            {"cam-1": Lease("cam-1", "line-b", 5, 0.0)},
            {"line-a", "line-b"},
            ["cam-1"],
            ([], [], ["cam-1"], ["cam-2"]),
        ),
        (
            {"cam-1": Lease("cam-1", "line-a", 7, 0.0)},
            {"line-a"},
            [],
            (["cam-1"], [], [], ["cam-2", "cam-3"]),
        ),
    ],
    ids=["free-own-and-dead-nodes", "others-preferred-alive", "hand-back", "lost", "own-lease-after-restart"],
)
def test_plan_round_renews_hands_back_and_takes_only_what_it_should(
    leases: dict[str, Lease],
    alive: set[str],
    running: list[str],
    expected: tuple[list[str], list[str], list[str], list[str]],
) -> None:
    plan = plan_round("line-a", NODES.preferred_nodes(), leases, alive, running)

    got = ([x.camera_id for x in plan.renew], [x.camera_id for x in plan.hand_back], plan.lost, plan.acquire)
    assert got == expected


def test_a_dead_nodes_cameras_are_shared_evenly_among_the_live_nodes() -> None:
    preferred = {"a1": "a", "a2": "a", "b1": "b", "c1": "c", "c2": "c", "c3": "c", "c4": "c"}
    leases = {c: Lease(c, preferred[c], 1, 0.0) for c in ("a1", "a2", "b1")}  # c died: its leases expired
    orphans = ["c1", "c2", "c3", "c4"]

    shares = share_orphans(orphans, preferred, leases, {"a", "b"})
    takes = {node: plan_round(node, preferred, leases, {"a", "b"}, []).acquire for node in ("a", "b")}

    assert shares == {"c1": "b", "c2": "a", "c3": "b", "c4": "a"}  # b had fewer: 3 cameras each at the end
    assert takes == {"a": ["c2", "c4"], "b": ["c1", "c3"]}


def test_a_dead_nodes_cameras_are_taken_by_a_live_node_and_handed_back_when_it_returns(
    server: NatsServer, bus: BusConnection
) -> None:
    cameras = Cameras()
    fire = [{"camera_id": "cam-1", "event": {"id": "fire-1"}}]
    cameras.incidents["cam-1"] = fire  # open on cam-1: whichever node runs it carries it on
    line_a, line_b = _node("line-a", server, "handover"), _node("line-b", server, "handover")
    with _running(cameras, line_a, line_b):
        assert wait_for(lambda: line_a.held() == ["cam-1", "cam-2"] and line_b.held() == ["cam-3"])
        assert wait_for(
            lambda: sorted(cameras.settled) == ["line-a", "line-b"]
        )  # after each one's first round
        assert wait_for(lambda: _saved_incidents(bus, "handover", "cam-1") == fire)

        line_a.stop(release=False)  # as if it died: its leases are left to expire
        assert wait_for(lambda: line_b.held() == CAMERAS and len(cameras.running) == 3)
        assert ("line-b", "cam-1", fire) in cameras.received, "the fire goes on, not raised again"

        with _running(cameras, _node("line-a", server, "handover")):  # it comes back
            handed_back = {"cam-1": "line-a", "cam-2": "line-a", "cam-3": "line-b"}
            assert wait_for(lambda: cameras.running == handed_back and line_b.held() == ["cam-3"])
            assert cameras.settled["line-a"] == {"fire-1"}, "its old fire is line-b's now: not ended at start"
            handed_back = {(node, camera): incidents for node, camera, incidents in cameras.received[-2:]}
            assert handed_back == {("line-a", "cam-1"): fire, ("line-a", "cam-2"): []}


def test_a_hand_back_whose_save_failed_still_hands_the_incidents_over(
    server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cameras = Cameras()
    fire = [{"camera_id": "cam-1", "event": {"id": "fire-1"}}]
    line_b = _node("line-b", server, "retry")
    with _running(cameras, line_b):  # alone: it takes every camera
        assert wait_for(lambda: line_b.held() == CAMERAS and len(cameras.running) == 3)
        cameras.incidents["cam-1"] = fire
        real_save = LeaseBucket.save_incidents
        failures: list[str] = []

        async def save_failing_once(bucket: LeaseBucket, camera_id: str, incidents: bytes) -> None:
            if camera_id == "cam-1" and not failures:
                failures.append(camera_id)
                raise BusUnavailableError("NATS did not answer")
            await real_save(bucket, camera_id, incidents)

        monkeypatch.setattr(LeaseBucket, "save_incidents", save_failing_once)
        line_a = _node("line-a", server, "retry")
        with _running(cameras, line_a):
            assert wait_for(lambda: line_a.held() == ["cam-1", "cam-2"] and "cam-1" in cameras.running)
            assert failures == ["cam-1"]
            assert ("line-a", "cam-1", fire) in cameras.received


def _leases(bus: BusConnection, plant: str) -> dict[str, Lease]:
    async def read(js: JetStreamContext) -> dict[str, Lease]:
        return await (await LeaseBucket.ensure(js, plant, ttl_s=TTL_S)).leases(CAMERAS)

    return bus.call(read, timeout_s=10)


def test_of_two_processes_under_one_node_name_one_runs_each_camera(
    server: NatsServer, bus: BusConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """A frozen process and its replacement (or a double start): the replacement takes over, the other stops."""
    old_cameras, new_cameras = Cameras(), Cameras()
    old, new = _node("line-a", server, "twice"), _node("line-a", server, "twice")
    with _running(old_cameras, old):  # alone in the plant: it runs every camera
        assert wait_for(lambda: old.held() == CAMERAS and len(old_cameras.running) == 3)
        with caplog.at_level("WARNING"), _running(new_cameras, new):
            assert wait_for(lambda: new.held() == CAMERAS and old.held() == [])
            renewals: set[int] = set()

            def renewed_thrice_more() -> bool:
                renewals.add(_leases(bus, "twice")["cam-1"].revision)
                return len(renewals) > 3

            assert wait_for(renewed_thrice_more)  # rounds of both processes since: it stays so
            assert old.held() == [] and old_cameras.running == {}
            assert sorted(new_cameras.running) == CAMERAS
            assert {lease.instance for lease in _leases(bus, "twice").values()} == {new.instance}
    assert old.instance != new.instance
    assert any(
        old.instance in record.getMessage() and new.instance in record.getMessage()
        for record in caplog.records
    ), "the process that stops says which two instances run the node"


def test_a_lease_written_without_an_instance_is_read_as_another_process(bus: BusConnection) -> None:
    async def scenario(js: JetStreamContext) -> Lease:
        bucket = await LeaseBucket.ensure(js, "upgrade", ttl_s=TTL_S)
        kv = await js.key_value(lease_bucket_name("upgrade"))
        await kv.put("camera.cam-1", json.dumps({"node": "line-a", "renewed_at": 1.0}).encode())
        return (await bucket.leases(["cam-1"]))["cam-1"]

    lease = bus.call(scenario, timeout_s=10)
    assert (lease.node, lease.instance) == ("line-a", "")


def test_a_take_over_whose_incidents_could_not_be_read_starts_the_camera_with_them_later(
    server: NatsServer, bus: BusConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    cameras = Cameras()
    fire = [{"camera_id": "cam-1", "event": {"id": "fire-1"}}]
    cameras.incidents["cam-1"] = fire
    line_a = _node("line-a", server, "unread")
    with _running(cameras, line_a):
        assert wait_for(lambda: line_a.held() == CAMERAS and _saved_incidents(bus, "unread", "cam-1") == fire)
        line_a.stop(release=False)  # as if it died: its leases are left to expire
        real_load = LeaseBucket.load_incidents
        failures: list[str] = []

        async def load_failing_once(bucket: LeaseBucket, camera_ids: Iterable[str]) -> dict[str, bytes]:
            ids = list(camera_ids)
            if ids == ["cam-1"] and not failures:  # the take-over's read, not the first round's settle
                failures.append("cam-1")
                raise BusUnavailableError("NATS did not answer")
            return await real_load(bucket, ids)

        monkeypatch.setattr(LeaseBucket, "load_incidents", load_failing_once)
        line_b = _node("line-b", server, "unread")
        with _running(cameras, line_b):
            assert wait_for(lambda: line_b.held() == CAMERAS and len(cameras.running) == 3)
            assert failures == ["cam-1"]
            started = [incidents for node, camera, incidents in cameras.received if node == "line-b"]
            assert len(started) == 3  # each camera once
            assert [i for n, c, i in cameras.received if (n, c) == ("line-b", "cam-1")] == [fire], (
                "started a round after its read failed, with the fire: not raised again as a new one"
            )


def _saved_incidents(bus: BusConnection, plant: str, camera_id: str) -> list[JournalEntry]:
    async def load(js: JetStreamContext) -> dict[str, bytes]:
        bucket = await LeaseBucket.ensure(js, plant, ttl_s=TTL_S)
        return await bucket.load_incidents([camera_id])

    saved = bus.call(load, timeout_s=10)
    return json.loads(saved[camera_id]) if camera_id in saved else []


def test_a_node_that_stops_gracefully_releases_its_cameras_at_once(server: NatsServer) -> None:
    cameras = Cameras()
    line_a = _node("line-a", server, "graceful")
    line_b = CameraNode(
        "line-b",
        NODES.model_copy(update={"lease_ttl_s": 60.0}),  # expiry alone would take a minute
        plant_id="graceful",
        bus_url=server.url,
        camera_ids=CAMERAS,
    )
    with _running(cameras, line_a, line_b):
        assert wait_for(lambda: line_a.held() == ["cam-1", "cam-2"] and line_b.held() == ["cam-3"])
        line_a.stop()

        assert wait_for(lambda: line_b.held() == CAMERAS, timeout_s=10)


def test_a_node_cut_off_from_nats_stops_its_cameras_before_its_leases_expire(tmp_path: Path) -> None:
    server = _start_server(tmp_path / "nats")
    cameras = Cameras()
    line_a = _node("line-a", server, "fence")
    try:
        with _running(cameras, line_a):
            assert wait_for(lambda: line_a.held() == ["cam-1", "cam-2", "cam-3"])
            server.kill()

            assert wait_for(lambda: cameras.running == {}, timeout_s=20)
            assert line_a.held() == []
    finally:
        server.kill()


def test_leases_live_on_the_plants_leaf_node_not_the_hub(topology: NatsTopology) -> None:
    cameras = Cameras()
    line_a = _node("line-a", topology.plants[PLANT], PLANT)
    hub = BusConnection(topology.hub.url, name="hub-check")
    with _running(cameras, line_a):
        hub.start()
        try:
            assert wait_for(lambda: line_a.held() == CAMERAS)
            assert hub.wait_connected(10)
            with pytest.raises(BucketNotFoundError):  # they work while the link to the hub is down
                hub.call(lambda js: js.key_value(lease_bucket_name(PLANT)), timeout_s=10)
            plant_js = hub.jetstream(domain=plant_domain(PLANT))  # the plant's JetStream, over the leaf link
            assert (
                hub.call(lambda _js: plant_js.key_value(lease_bucket_name(PLANT)), timeout_s=10) is not None
            )
        finally:
            hub.stop()


def test_a_node_leases_its_cameras_again_after_the_server_lost_its_store(tmp_path: Path) -> None:
    server = _start_server(tmp_path / "nats")
    cameras = Cameras()
    line_a = _node("line-a", server, "amnesia")
    try:
        with _running(cameras, line_a):
            assert wait_for(lambda: line_a.held() == CAMERAS)
            server.kill()
            shutil.rmtree(tmp_path / "nats" / "jetstream")  # a new disk: the bucket is gone
            assert wait_for(lambda: line_a.held() == [], timeout_s=20)  # fenced while the server was away
            server.start()

            assert wait_for(lambda: line_a.held() == CAMERAS, timeout_s=30)
    finally:
        server.kill()
