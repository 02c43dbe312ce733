"""Open incidents of a camera that leaves its node before they were saved (a pause, a partition, a stop).

Each node saves its cameras' open incidents in the plant's incident bucket once a round;
these tests open an incident between two saves and then take the camera away from the
node, against a real nats-server, to check the incident is carried on or ended: never
dropped (open forever at the service) nor raised again as a new event.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from nats.js import JetStreamContext

from anjian.pipeline.event import Event
from anjian.pipeline.event_json import event_to_json
from anjian.pipeline.incident_journal import IncidentJournal, JournalEntry
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.leases import LeaseBucket
from anjian.service.nodes import CameraNode, LeasePlan, RunnerCameras
from tests.factories import make_event
from tests.service.bus.test_leases import CAMERAS, NODES, TTL_S, _node, _start_server
from tests.service.conftest import make_config
from tests.support.nats import NatsServer
from tests.support.waiting import wait_for

T = TypeVar("T")


def _fire(camera_id: str, event_id: str) -> JournalEntry:
    return {"camera_id": camera_id, "behaviour": "open_flame", "key": "zone-a", "event": {"id": event_id}}


def _ids(incidents: list[JournalEntry]) -> list[str]:
    return [str(entry["event"]["id"]) for entry in incidents]


class NodeJournal:
    """A ``CameraHost`` of one node, as its incident journal sees it: the incidents open on the cameras it runs.

    ``stop_camera`` hands them over and forgets them, as ``RunnerCameras`` does; every
    start (with the incidents carried on), stop, end and keep is recorded.
    """

    def __init__(self) -> None:
        self.open: dict[str, list[JournalEntry]] = {}  # camera run -> its rules' open incidents
        self.started: list[tuple[str, list[str]]] = []  # camera, ids of the incidents carried on
        self.stopped: list[tuple[str, list[str]]] = []  # camera, ids of the incidents handed over
        self.ended: list[tuple[str, str]] = []  # camera, event id
        self.kept: list[tuple[str, list[str]]] = []  # camera, ids kept for the node's next start
        self._lock = threading.Lock()

    def raise_incident(self, camera_id: str, event_id: str) -> None:
        """A rule of the camera opens an incident (published to the service at once)."""
        with self._lock:
            self.open[camera_id].append(_fire(camera_id, event_id))

    def running(self) -> set[str]:
        with self._lock:
            return set(self.open)

    def starts_of(self, camera_id: str) -> list[list[str]]:
        with self._lock:
            return [ids for camera, ids in self.started if camera == camera_id]

    def start_camera(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        with self._lock:
            self.open[camera_id] = list(incidents)
            self.started.append((camera_id, _ids(incidents)))

    def stop_camera(self, camera_id: str) -> list[JournalEntry]:
        with self._lock:
            incidents = self.open.pop(camera_id, [])
            self.stopped.append((camera_id, _ids(incidents)))
            return incidents

    def open_incidents(self, camera_id: str) -> list[JournalEntry]:
        with self._lock:
            return list(self.open.get(camera_id, []))

    def settle(self, continued: set[str]) -> None:
        pass  # nothing left in the journal at a node's first round here

    def end_incidents(self, camera_id: str, incidents: list[JournalEntry], carried_on: set[str]) -> None:
        with self._lock:
            self.ended.extend(
                (camera_id, event_id) for event_id in _ids(incidents) if event_id not in carried_on
            )

    def keep_incidents(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        with self._lock:
            self.kept.append((camera_id, _ids(incidents)))


class Pause:
    """Pauses a node's loop between two rounds (a stopped process, a long GC pause): no round, no fence.

    Its cameras keep running meanwhile, and its leases age out on the server.
    """

    def __init__(self, node: CameraNode) -> None:
        self._is_open = threading.Event()
        self._is_open.set()
        self._is_waiting = threading.Event()
        play_round = node.play_round

        def paused_round() -> LeasePlan:
            if not self._is_open.is_set():
                self._is_waiting.set()
                self._is_open.wait()
            return play_round()

        node.play_round = paused_round  # type: ignore[method-assign]

    def pause(self) -> None:
        """Pause, and wait until the loop waits before its next round (a round under way ends first)."""
        self._is_waiting.clear()
        self._is_open.clear()
        assert self._is_waiting.wait(30), "the node's loop did not come to its next round"

    def resume(self) -> None:
        self._is_open.set()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of the test's own: tests here stop and start it."""
    nats = _start_server(tmp_path / "nats")
    yield nats
    nats.kill()


def _bucket_call(server: NatsServer, work: Callable[[JetStreamContext], Awaitable[T]]) -> T | None:
    """``work(js)`` on a connection of the test's own (``None``: NATS not answering)."""
    bus = BusConnection(server.url, name="handover-check")
    bus.start()
    try:
        if not bus.wait_connected(10):
            return None
        return bus.call(work, timeout_s=10)
    finally:
        bus.stop()


def _saved_ids(server: NatsServer, plant: str, camera_id: str) -> list[str] | None:
    """The ids of the camera's incidents saved in the bucket (``None``: none saved, or NATS not answering)."""

    async def load(js: JetStreamContext) -> dict[str, bytes]:
        return await (await LeaseBucket.ensure(js, plant, ttl_s=TTL_S)).load_incidents([camera_id])

    saved = _bucket_call(server, load)
    return _ids(json.loads(saved[camera_id])) if saved is not None and camera_id in saved else None


@dataclass
class _Pair:
    """line-a (pausable) and line-b on one plant, each with its journal, running their preferred cameras."""

    line_a: CameraNode
    line_b: CameraNode
    journal_a: NodeJournal
    journal_b: NodeJournal
    pause: Pause


@contextmanager
def _paused_pair(server: NatsServer, plant: str) -> Iterator[_Pair]:
    """line-a and line-b started and holding their preferred cameras; then line-a raises fire-A on cam-1 and is
    paused before it saves it, until line-b has taken cam-1. Both stopped after."""
    pair = _Pair(
        _node("line-a", server, plant), _node("line-b", server, plant), NodeJournal(), NodeJournal(), None
    )  # type: ignore[arg-type]
    pair.pause = Pause(pair.line_a)
    pair.line_a.start(pair.journal_a)
    pair.line_b.start(pair.journal_b)
    try:
        assert wait_for(
            lambda: pair.line_a.held() == ["cam-1", "cam-2"] and pair.line_b.held() == ["cam-3"], 30
        )
        pair.pause.pause()
        pair.journal_a.raise_incident("cam-1", "fire-A")  # published; not saved: line-a plays no round
        assert wait_for(lambda: "cam-1" in pair.journal_b.running(), 30), (
            "line-a's lease aged out: line-b took cam-1"
        )
        yield pair
    finally:
        pair.pause.resume()
        pair.line_a.stop()
        pair.line_b.stop()


def test_a_paused_node_ends_the_incident_it_opened_on_a_camera_another_node_took_meanwhile(
    server: NatsServer,
) -> None:
    with _paused_pair(server, "paused") as pair:
        starts_b = pair.journal_b.starts_of("cam-1")  # more than one where a loaded box fenced it meanwhile
        assert starts_b and all(ids == [] for ids in starts_b), (
            "line-b started cam-1 without fire-A: it never saw it"
        )

        pair.pause.resume()  # line-a finds cam-1 is line-b's, then gets it back (its preferred node)

        assert wait_for(lambda: pair.journal_a.ended == [("cam-1", "fire-A")], 30), (
            "fire-A is ended, not dropped"
        )
        assert wait_for(
            lambda: pair.line_a.held() == ["cam-1", "cam-2"] and "cam-1" in pair.journal_a.running(), 30
        )
        starts = pair.journal_a.starts_of("cam-1") + pair.journal_b.starts_of("cam-1")
        assert all("fire-A" not in ids for ids in starts), "an ended incident is never carried on again"
        assert pair.journal_a.ended == [("cam-1", "fire-A")] and pair.journal_b.ended == []


def test_a_paused_node_taking_its_camera_back_carries_on_the_newer_copy_of_the_node_that_ran_it_meanwhile(
    server: NatsServer,
) -> None:
    with _paused_pair(server, "newer") as pair:
        pair.journal_b.raise_incident("cam-1", "fire-B")  # line-b never saw fire-A: it raises the fire itself
        assert wait_for(lambda: _saved_ids(server, "newer", "cam-1") == ["fire-B"], 30)
        pair.line_b.stop()  # saves fire-B and releases cam-1: line-a will take it back, not be handed it

        pair.pause.resume()

        assert wait_for(lambda: len(pair.journal_a.starts_of("cam-1")) == 2, 30), (
            "line-a stopped it, then took it back"
        )
        assert pair.journal_a.starts_of("cam-1") == [[], ["fire-B"]], (
            "line-b's copy is the newer: fire-B goes on"
        )
        assert pair.journal_a.ended == [("cam-1", "fire-A")], "fire-A is carried on by no node: ended"


def _cut_off_raising_fire_a(server: NatsServer, plant: str) -> tuple[CameraNode, NodeJournal]:
    """line-a started and holding its cameras, then cut off from NATS (``server`` killed) as it raises fire-A
    on cam-1; the caller stops it."""
    line_a = _node("line-a", server, plant)
    journal = NodeJournal()
    line_a.start(journal)
    try:
        assert wait_for(lambda: line_a.held() == CAMERAS, 30)
        server.kill()
        journal.raise_incident("cam-1", "fire-A")  # published; no save can reach the bucket now
    except BaseException:
        line_a.stop()
        raise
    return line_a, journal


def test_a_node_cut_off_from_nats_takes_its_camera_back_with_the_incident_it_opened_meanwhile(
    server: NatsServer,
) -> None:
    line_a, journal = _cut_off_raising_fire_a(server, "fenced")
    try:
        assert wait_for(lambda: journal.running() == set(), 30), "fenced before its leases expire"
        assert ("cam-1", ["fire-A"]) in journal.stopped

        server.start()

        assert wait_for(lambda: line_a.held() == CAMERAS and journal.running() == set(CAMERAS), 60)
        assert journal.starts_of("cam-1") == [[], ["fire-A"]], (
            "fire-A goes on: not raised again as a new event"
        )
        assert journal.ended == []
        assert wait_for(lambda: _saved_ids(server, "fenced", "cam-1") == ["fire-A"], 30), (
            "saved for a node that takes cam-1 next"
        )
    finally:
        line_a.stop()


def test_a_node_stopping_while_nats_is_away_keeps_the_incidents_it_could_not_save(server: NatsServer) -> None:
    line_a, journal = _cut_off_raising_fire_a(server, "stopped")
    line_a.stop()

    assert journal.running() == set()
    assert ("cam-1", ["fire-A"]) in journal.kept, (
        "kept in its journal: its next start carries it on or ends it"
    )
    assert journal.ended == []


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)


def _runner_cameras(tmp_path: Path, journal: IncidentJournal, sink: _Sink, now: float) -> RunnerCameras:
    runner: Any = SimpleNamespace(incident_journal=journal, sink=sink)
    return RunnerCameras(runner, make_config(tmp_path / "site"), clock=lambda: now)


def _entry(event: Event, key: str) -> JournalEntry:
    return {
        "camera_id": event.camera_id,
        "behaviour": event.behaviour.value,
        "key": key,
        "event": event_to_json(event),
    }


def test_runner_cameras_end_the_incidents_no_node_carries_on_at_their_next_revision(tmp_path: Path) -> None:
    journal, sink = IncidentJournal(tmp_path / "open_incidents.json"), _Sink()
    opened_here = make_event(revision=3, snapshot_jpeg=None)
    carried_on = make_event(revision=5, snapshot_jpeg=None)

    _runner_cameras(tmp_path, journal, sink, now=1_700_000_100.0).end_incidents(
        "cam-1", [_entry(opened_here, "a"), _entry(carried_on, "b")], {carried_on.id}
    )

    assert [(e.id, e.revision, e.ended_at) for e in sink.events] == [(opened_here.id, 4, 1_700_000_100.0)]
    assert journal.export("cam-1") == [] and journal.pending() == []


def test_runner_cameras_keep_incidents_for_the_next_start_of_the_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    sink = _Sink()
    fire = make_event(revision=3, snapshot_jpeg=None)

    _runner_cameras(tmp_path, IncidentJournal(path), sink, now=1_700_000_100.0).keep_incidents(
        "cam-1", [_entry(fire, "a")]
    )

    assert sink.events == []
    assert [(e.id, e.revision) for e in IncidentJournal(path).pending()] == [(fire.id, 3)]


def test_a_node_fences_by_the_lease_ttl_the_server_applies_when_another_node_set_it_shorter(
    server: NatsServer,
) -> None:
    """A node started with a longer lease_ttl_s kept its cameras past the real expiry when cut off."""
    long_lived = NODES.model_copy(update={"lease_ttl_s": 30.0})
    now = [1_000.0]
    line_a = CameraNode(
        "line-a", long_lived, plant_id="retimed", bus_url=server.url, camera_ids=CAMERAS, clock=lambda: now[0]
    )
    journal = NodeJournal()
    line_a.start(journal)
    try:
        assert wait_for(lambda: line_a.held() == CAMERAS, 30)
        assert (
            _saved_ids(server, "retimed", "cam-1") is None
        )  # ensure(ttl_s=TTL_S): another node's shorter TTL
        assert wait_for(lambda: line_a._bucket_ttl_s == pytest.approx(TTL_S), 30), "read back each round"
        server.kill()
        now[0] += TTL_S  # past the bucket's 3 s less a renew interval; far from this node's own 30 s

        assert wait_for(lambda: journal.running() == set(), 30), "fenced by the TTL the server applies"
    finally:
        line_a.stop()
