"""One pipeline node of a plant with several (``anjian run --node NAME``): it runs the cameras it leases.

Every ``renew_interval_s`` a node (``CameraNode``) plays one round against the plant's
lease bucket (``anjian.service.bus.leases``):

1. it announces itself and reads every camera's lease and which nodes are alive;
2. it renews the leases it holds (compare-and-set on the revision it wrote last); a lease of
   its node that another process wrote since (a second process started under the same node
   name) is lost: the camera is stopped, with a warning;
3. it hands back a camera it holds for a preferred node that is alive again:
   it stops the camera first, then releases the lease, so the two never both run it;
4. it takes a free camera (never leased, released, or expired because its node died)
   when it is the camera's preferred node, or when the preferred node is not alive and
   the camera falls to it in the even share of such cameras among the live nodes;
   ``create`` fails for all but one of the nodes that try, so one node wins.

Each process has its own instance id, written in its leases. A lease of its node that a
process does not hold yet (one left by the process it replaces after a quick restart) is
taken over by compare-and-set on the revision read, once per camera: of two processes
under one node name, the one that took a camera over keeps it and the other stops it.
A camera new to the process starts with the open incidents saved for it, read from the
bucket first; when they cannot be read the lease is kept and the camera started at a
later round.

A node stops a camera whose lease it has not renewed for ``lease_ttl_s -
renew_interval_s`` (counted from when it sent the last write that succeeded, on its own
monotonic clock), before the server lets the lease age out: a node cut off from NATS
stops its cameras before another node can take them. A node that stops gracefully
stops its cameras and releases their leases, so the others take them at their next round.

The pipeline runs only what the node holds: ``RunnerCameras`` adds and removes the
runner's cameras (as the camera reload does). An incident outlives a change of node:
the node running a camera saves its open incidents in the plant's incident bucket when
they change (at most one round old), and on every hand-over; the node taking the
camera adopts them into its journal before adding it, so its rules carry the same
incidents on (same event id, next revision) instead of raising them again. After its
first round a node ends the incidents left in its own journal for cameras it no longer
runs, except those another node carries on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from nats.errors import Error as NatsError

from anjian.service.bus.connection import BusConnection
from anjian.service.bus.errors import BusError
from anjian.service.bus.leases import Lease, LeaseBucket

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from anjian.pipeline.incident_journal import JournalEntry
    from anjian.pipeline.runner import CameraAssignment, PipelineRunner
    from anjian.service.config import AnjianConfig
    from anjian.service.node_config import NodesConfig

__all__ = ["CameraHost", "CameraNode", "LeasePlan", "RunnerCameras", "plan_round", "share_orphans"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_REVISIONS_SKIPPED = 10
"""Revisions an adopted incident skips: a dead node may have published a few after its last save
(one round's worth), and the service ignores a revision not above the one it holds."""


class CameraHost(Protocol):
    """What a node starts and stops: the cameras of its pipeline, with their open incidents."""

    def start_camera(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        """Start analysing a camera, carrying on with the open incidents its previous node left."""
        ...

    def stop_camera(self, camera_id: str) -> list[JournalEntry]:
        """Stop analysing a camera that goes to another node; its open incidents, kept open for that node."""
        ...

    def open_incidents(self, camera_id: str) -> list[JournalEntry]:
        """The camera's open incidents now."""
        ...

    def settle(self, continued: set[str]) -> None:
        """Called once, after the node's first round, with the ids of the incidents other nodes carry on.

        The node's own incidents of cameras it does not hold now, and that no other node
        carries on, are ended.
        """
        ...


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """What one node does in one round, by camera id."""

    renew: list[Lease] = field(default_factory=list)
    hand_back: list[Lease] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    acquire: list[str] = field(default_factory=list)


def plan_round(
    node: str,
    preferred: dict[str, str],
    leases: dict[str, Lease],
    alive: set[str],
    running: Iterable[str],
) -> LeasePlan:
    """Decide a node's round from the bucket's state.

    Args:
        node: This node.
        preferred: Each camera's preferred node.
        leases: The cameras' live leases (a free camera has none).
        alive: The nodes that announced themselves within the lease TTL.
        running: The cameras this node runs now.

    Returns:
        Leases to renew (its own, found in the bucket: after a quick restart too), to hand
        back (a live preferred node wants them), cameras it runs but no longer holds (stop
        them), and free cameras to try to take: its own, and its share of the cameras
        whose preferred node is not alive (``share_orphans``).
    """
    plan = LeasePlan()
    running_now = set(running)
    orphans: list[str] = []
    for camera_id, owner in preferred.items():
        lease = leases.get(camera_id)
        if lease is not None and lease.node == node:
            if owner != node and owner in alive:
                plan.hand_back.append(lease)
            else:
                plan.renew.append(lease)
            continue
        if camera_id in running_now:
            plan.lost.append(camera_id)
        if lease is None and owner == node:
            plan.acquire.append(camera_id)
        elif lease is None and owner not in alive:
            orphans.append(camera_id)
    shares = share_orphans(orphans, preferred, leases, alive | {node})
    plan.acquire.extend(camera_id for camera_id in orphans if shares[camera_id] == node)
    return plan


def share_orphans(
    orphans: list[str], preferred: dict[str, str], leases: dict[str, Lease], alive: set[str]
) -> dict[str, str]:
    """Share the cameras of dead nodes among the live ones, each to the least loaded (then by name).

    A node's load is the cameras it holds plus the free ones it prefers (it takes them
    this round). Every node computes the same shares from the same bucket; when their
    views differ, ``create`` still lets only one node take a camera, and a camera left
    free is shared again at the next round.
    """
    load = dict.fromkeys(alive, 0)
    free_orphans = set(orphans)
    for camera_id, owner in preferred.items():
        lease = leases.get(camera_id)
        holder = lease.node if lease is not None else owner
        if holder in load and camera_id not in free_orphans:
            load[holder] += 1
    shares: dict[str, str] = {}
    for camera_id in sorted(orphans):
        taker = min(load, key=lambda name: (load[name], name))
        shares[camera_id] = taker
        load[taker] += 1
    return shares


class CameraNode:
    """A pipeline node that leases its cameras on the plant's bus and runs only those (see the module doc).

    Args:
        name: This node (one of ``nodes.members``).
        nodes: The plant's nodes and lease timing.
        plant_id: The plant on the bus (the bucket's name).
        bus_url: The plant's nats-server.
        camera_ids: The cameras to lease (the site's enabled cameras).
        clock: Monotonic seconds, for the node's own lease deadlines.

    Example:
        >>> node = CameraNode.from_config(config, "line-a")
        >>> node.start(RunnerCameras(runner, config))
        >>> node.held()  # ['cam-1', 'cam-2']
        >>> node.stop()  # cameras stopped, leases released
    """

    def __init__(
        self,
        name: str,
        nodes: NodesConfig,
        *,
        plant_id: str,
        bus_url: str,
        camera_ids: Iterable[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        nodes.node(name)  # KeyError naming the nodes that exist
        wanted = set(camera_ids)
        self.name = name
        self.instance = uuid.uuid4().hex  # this process: two processes run under one name apart
        self._nodes = nodes
        self._plant_id = plant_id
        self._preferred = {c: n for c, n in nodes.preferred_nodes().items() if c in wanted}
        self._clock = clock
        self._bus = BusConnection(bus_url, name=f"anjian-node-{name}")
        self._bucket: LeaseBucket | None = None
        self._held: dict[str, Lease] = {}  # as this process last wrote them
        self._ever_held: set[str] = set()  # cameras this process ran: never taken over from another again
        self._written_at: dict[str, float] = {}  # monotonic time the write now holding each lease was sent
        self._saved: dict[str, bytes] = {}  # the open incidents last saved for each camera held
        self._handing_back: dict[
            str, bytes
        ] = {}  # incidents of cameras stopped for their preferred node, not yet saved
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._host: CameraHost | None = None
        self._is_settled = False

    @classmethod
    def from_config(cls, config: AnjianConfig, name: str) -> CameraNode:
        """The node ``name`` of the site.

        Raises:
            ValueError: The site has no ``nodes:`` (or no ``bus:``), or no node of that name.
        """
        if config.nodes is None or config.bus is None:
            raise ValueError(f"--node {name}: the site YAML has no nodes: section (and bus:) to run nodes")
        try:
            config.nodes.node(name)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        return cls(
            name,
            config.nodes,
            plant_id=config.bus.plant_id or config.site.id,
            bus_url=config.bus.url,
            camera_ids=(camera.id for _, camera in config.cameras() if camera.enabled),
        )

    def held(self) -> list[str]:
        """The cameras this node holds and runs now, sorted."""
        with self._lock:
            return sorted(self._held)

    def start(self, host: CameraHost) -> None:
        """Connect to the plant's bus and play a round every ``renew_interval_s`` in a thread."""
        self._host = host
        self._bus.start()
        self._thread = threading.Thread(target=self._loop, name=f"node-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop playing rounds and stop the cameras held; safe to call twice.

        Args:
            release: Release their leases and withdraw, so that other nodes take the
                cameras at their next round. ``False`` leaves the leases to expire, as a
                crash does (the node gets them back if it returns within ``lease_ttl_s``).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._call_timeout_s() + 5)
        with self._lock:
            held, self._held = list(self._held.values()), {}
        incidents = {lease.camera_id: self._stop_camera(lease.camera_id, "the node stops") for lease in held}
        if release and self._bucket is not None and self._bus.is_connected:
            try:
                self._on_bucket(partial(_release_all, leases=held, node=self.name, incidents=incidents))
            except Exception as exc:  # noqa: BLE001 - the leases then age out
                logger.warning("node %s: leases not released (%s); they expire on their own", self.name, exc)
        self._bus.stop()

    def _call_timeout_s(self) -> float:
        return max(self._nodes.renew_interval_s, 2.0)

    def _loop(self) -> None:
        """Rounds until stopped; a failing round (NATS away) is logged and the next one retries."""
        self._bus.wait_connected(self._nodes.renew_interval_s)
        while not self._stop.is_set():
            try:
                self.play_round()
            except (BusError, NatsError, OSError, TimeoutError) as exc:
                logger.warning("node %s: lease round failed: %s", self.name, exc)
                self._bucket = None  # opened again next round: the server may have lost its store
            except Exception:
                logger.exception("node %s: lease round failed", self.name)
                self._bucket = None
            self._fence()
            self._stop.wait(self._nodes.renew_interval_s)

    def play_round(self) -> LeasePlan:
        """Play one round (see the module doc) and return what it decided.

        Raises:
            BusUnavailableError: NATS is not connected or did not answer in time.
        """
        sent = self._clock()
        leases, alive = self._bus.call(self._read_bucket, timeout_s=self._call_timeout_s())
        with self._lock:
            running = list(self._held)
        plan = plan_round(self.name, self._preferred, leases, alive, running)
        for camera_id in plan.lost:  # its new node carries on with the incidents last saved
            self._forget(camera_id)
            self._stop_camera(camera_id, "its lease was lost")
        for lease in plan.hand_back:  # stopped, its incidents saved, then released: never run twice
            camera_id = lease.camera_id
            if camera_id in running and not self._still_held(lease):
                continue  # another process of this node holds it now: it hands it back
            if camera_id in running:
                self._forget(camera_id)
                incidents = self._stop_camera(camera_id, f"handed back to node {self._preferred[camera_id]}")
                self._handing_back[camera_id] = _dump(incidents)
            if camera_id in self._handing_back:  # kept until saved: a failed round retries the save
                self._on_bucket(
                    partial(
                        LeaseBucket.save_incidents,
                        camera_id=camera_id,
                        incidents=self._handing_back[camera_id],
                    )
                )
                del self._handing_back[camera_id]
            if lease.instance == self.instance:  # another process's lease is left to it (or to expire)
                self._on_bucket(partial(LeaseBucket.release, lease=lease))
        for lease in plan.renew:
            camera_id = lease.camera_id
            with self._lock:
                held = self._held.get(camera_id)
            if held is not None:
                if not self._still_held(lease):
                    continue
                renewed = self._on_bucket(partial(LeaseBucket.renew, lease=held))
                if renewed is None:
                    self._forget(camera_id)
                    self._stop_camera(camera_id, "its lease was lost")
                else:
                    self._hold(renewed, sent, [])
                continue
            if lease.instance != self.instance:
                if camera_id in self._ever_held:
                    continue  # it lost the camera to that process: it does not take it back
                logger.warning(
                    "node %s: instance %s takes over camera %s from instance %s of the same node "
                    "(a quick restart; or a second process runs with this node name, which then stops it)",
                    self.name,
                    self.instance,
                    camera_id,
                    lease.instance or "(none)",
                )
            # after a quick restart, a failed hand-back, or a take-over whose start failed (on a later round)
            taken = self._on_bucket(partial(LeaseBucket.renew, lease=replace(lease, instance=self.instance)))
            if taken is not None:
                self._start_held(taken, sent)
        for camera_id in plan.acquire:
            acquire_sent = self._clock()
            taken = self._on_bucket(
                partial(LeaseBucket.acquire, camera_id=camera_id, node=self.name, instance=self.instance)
            )
            if taken is not None:
                owner = self._preferred[camera_id]
                why = "its preferred node" if owner == self.name else f"node {owner} is not alive"
                logger.info("node %s: took camera %s (%s)", self.name, camera_id, why)
                self._start_held(taken, acquire_sent)
        self._save_incidents()
        if not self._is_settled and self._host is not None:
            with self._lock:
                others = [c for c in self._preferred if c not in self._held]
            saved = self._on_bucket(partial(LeaseBucket.load_incidents, camera_ids=others))
            self._host.settle({str(entry["event"]["id"]) for data in saved.values() for entry in _load(data)})
            self._is_settled = True
        return plan

    def _save_incidents(self) -> None:
        """Save the open incidents of the cameras held that changed since last saved (for a node taking one over)."""
        if self._host is None:
            return
        for camera_id in self.held():
            data = _dump(self._host.open_incidents(camera_id))
            if self._saved.get(camera_id) != data:
                self._on_bucket(partial(LeaseBucket.save_incidents, camera_id=camera_id, incidents=data))
                self._saved[camera_id] = data

    async def _read_bucket(self, js: JetStreamContext) -> tuple[dict[str, Lease], set[str]]:
        """Announce this node; the cameras' leases and the live nodes."""
        if self._bucket is None:
            self._bucket = await LeaseBucket.ensure(js, self._plant_id, ttl_s=self._nodes.lease_ttl_s)
        await self._bucket.announce(self.name)
        leases = await self._bucket.leases(self._preferred)
        alive = await self._bucket.alive_nodes(node.name for node in self._nodes.members)
        return leases, alive

    def _on_bucket(self, work: Callable[[LeaseBucket], Awaitable[T]]) -> T:
        """Run ``work(bucket)`` on the bus's loop and wait for it (at most a round's timeout)."""
        bucket = self._bucket
        if bucket is None:
            raise BusError("the lease bucket is not open yet")
        return self._bus.call(lambda _js: work(bucket), timeout_s=self._call_timeout_s())

    def _still_held(self, lease: Lease) -> bool:
        """Whether the bucket's ``lease`` of a camera this process holds is the one it wrote last.

        When not, another process wrote it (one started under this node's name): the camera is
        lost, stopped here, and this process does not take it back.
        """
        with self._lock:
            held = self._held.get(lease.camera_id)
        if held is None or (lease.revision, lease.instance) == (held.revision, held.instance):
            return held is not None
        logger.warning(
            "node %s: camera %s was taken over by instance %s of the same node (this is instance %s, "
            "which wrote revision %d; the bucket has %d): two processes run as node %s; this one stops it",
            self.name,
            lease.camera_id,
            lease.instance or "(none)",
            self.instance,
            held.revision,
            lease.revision,
            self.name,
        )
        self._forget(lease.camera_id)
        self._stop_camera(lease.camera_id, "another process of its node took its lease")
        return False

    def _start_held(self, lease: Lease, sent: float) -> None:
        """Start the camera of a lease new to this process, with the open incidents saved for it.

        A hand-back whose save failed has its own newer copy. When the saved incidents
        cannot be read the camera is not started: the lease is kept (this process's
        instance is in it) and the next round tries again.
        """
        camera_id = lease.camera_id
        if camera_id in self._handing_back:
            incidents = _load(self._handing_back.pop(camera_id))
        else:
            try:
                saved = self._on_bucket(partial(LeaseBucket.load_incidents, camera_ids=[camera_id]))
            except (BusError, NatsError, OSError, TimeoutError) as exc:
                logger.warning(
                    "node %s: camera %s not started: its open incidents could not be read (%s); "
                    "next round tries again",
                    self.name,
                    camera_id,
                    exc,
                )
                return
            incidents = _load(saved.get(camera_id, b"[]"))
        self._hold(lease, sent, incidents)

    def _hold(self, lease: Lease, sent: float, incidents: list[JournalEntry]) -> None:
        """Record a lease written at ``sent``; start its camera, with ``incidents``, when it is new to this node."""
        with self._lock:
            is_new = lease.camera_id not in self._held
            self._held[lease.camera_id] = lease
            self._written_at[lease.camera_id] = sent
        if is_new:
            self._ever_held.add(lease.camera_id)
            self._saved[lease.camera_id] = _dump(incidents)
            if self._host is not None:
                self._host.start_camera(lease.camera_id, incidents)

    def _forget(self, camera_id: str) -> None:
        with self._lock:
            self._held.pop(camera_id, None)
            self._written_at.pop(camera_id, None)
        self._saved.pop(camera_id, None)

    def _stop_camera(self, camera_id: str, why: str) -> list[JournalEntry]:
        """Stop a camera going to another node; its open incidents, kept open."""
        logger.info("node %s: stops camera %s (%s)", self.name, camera_id, why)
        return [] if self._host is None else self._host.stop_camera(camera_id)

    def _fence(self) -> None:
        """Stop the cameras whose lease may expire before this node can renew it."""
        deadline_s = self._nodes.lease_ttl_s - self._nodes.renew_interval_s
        now = self._clock()
        with self._lock:
            stale = [c for c, sent in self._written_at.items() if now - sent > deadline_s]
        for camera_id in stale:
            self._forget(camera_id)
            self._stop_camera(camera_id, "its lease could not be renewed in time")


async def _release_all(
    bucket: LeaseBucket, leases: list[Lease], node: str, incidents: dict[str, list[JournalEntry]]
) -> None:
    """Save the cameras' open incidents, release their ``leases`` and withdraw ``node``."""
    for lease in leases:
        await bucket.save_incidents(lease.camera_id, _dump(incidents.get(lease.camera_id, [])))
        await bucket.release(lease)
    await bucket.withdraw(node)


def _dump(incidents: list[JournalEntry]) -> bytes:
    return json.dumps(incidents, sort_keys=True, separators=(",", ":")).encode()


def _load(data: bytes) -> list[JournalEntry]:
    """Saved incidents back as journal entries; none when unreadable (the node then raises them anew)."""
    try:
        incidents = json.loads(data)
    except ValueError:
        logger.warning("unreadable open incidents in the bucket; the camera starts without them")
        return []
    return incidents if isinstance(incidents, list) else []


class RunnerCameras:
    """``CameraHost`` over a ``PipelineRunner``: the site's cameras, added and removed by id.

    Args:
        runner: The node's runner, started with no cameras.
        config: The site (its cameras and their workshops).
        clock: Epoch seconds, for the journal's incidents closed at ``settle``.
    """

    def __init__(
        self, runner: PipelineRunner, config: AnjianConfig, clock: Callable[[], float] = time.time
    ) -> None:
        from anjian.pipeline.runner import CameraAssignment  # the runner is loaded by now: no cost

        self._runner = runner
        self._clock = clock
        self._assignments: dict[str, CameraAssignment] = {
            camera.id: CameraAssignment(workshop.id, camera) for workshop, camera in config.cameras()
        }

    def start_camera(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        """Add the camera to the runner (nothing when it runs already), carrying on with ``incidents``.

        Those no rule of the camera claims (its config changed meanwhile) are ended.
        """
        if camera_id in self._runner.camera_ids():
            return
        journal = self._runner.incident_journal
        if journal is not None and incidents:
            try:
                journal.adopt(camera_id, incidents, skip_revisions=_REVISIONS_SKIPPED)
            except ValueError as exc:
                logger.warning("%s; it starts without them", exc)
        self._runner.add_camera(self._assignments[camera_id])
        if journal is not None and incidents:
            for event in journal.close_unclaimed(self._clock(), camera_id=camera_id):
                self._runner.sink.publish(event)

    def stop_camera(self, camera_id: str) -> list[JournalEntry]:
        """Remove the camera from the runner, its open incidents kept open (and returned) for its next node."""
        journal = self._runner.incident_journal
        if journal is None:
            self._runner.remove_camera(camera_id)
            return []
        journal.hand_over(camera_id)
        self._runner.remove_camera(camera_id)
        incidents = journal.export(camera_id)
        journal.drop(camera_id)
        return incidents

    def open_incidents(self, camera_id: str) -> list[JournalEntry]:
        """The camera's open incidents in the runner's journal."""
        journal = self._runner.incident_journal
        return [] if journal is None else journal.export(camera_id)

    def settle(self, continued: set[str]) -> None:
        """End the journal's open incidents of cameras this node does not run, unless another node carries them on."""
        journal = self._runner.incident_journal
        if journal is None:
            return
        for event in journal.close_unclaimed(self._clock(), carried_on=continued):
            self._runner.sink.publish(event)
