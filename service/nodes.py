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

A node that stops a camera without saving its incidents first (its lease was lost or
taken over, could not be renewed, or ran out while NATS was away) keeps that newest copy
("unsaved") until a later round settles it: when it takes the camera again it carries
its own copy on, unless another node wrote the camera's incidents since its last save
(then that node's copy is newer); when another process holds the camera now, it ends
the incidents that process does not carry on (those it did not find saved), as
``settle`` does, so that each gets an end instead of staying open forever. It does not
save them for that process: a node reads a camera's incidents once, when it starts it,
and the new holder may have started it already. A node stopping without saving its
cameras' incidents (NATS away) leaves them in its journal, for its next start to carry
on or end.
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

    from anjian.pipeline.incident_journal import IncidentJournal, JournalEntry
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

    def end_incidents(self, camera_id: str, incidents: list[JournalEntry], carried_on: set[str]) -> None:
        """End the open incidents of a camera stopped here and run by another node now, but those it carries on.

        Args:
            camera_id: The camera (no longer run by this node).
            incidents: Its open incidents, as ``stop_camera`` returned them.
            carried_on: Ids of the incidents the other node carries on: forgotten here, not ended.
        """
        ...

    def keep_incidents(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        """Keep the open incidents of a camera stopped here for the node's next start, as a restart keeps them.

        That start carries them on when it runs the camera again, and ends them (``settle``)
        when another node runs it without them.
        """
        ...


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """What one node does in one round, by camera id."""

    renew: list[Lease] = field(default_factory=list)
    hand_back: list[Lease] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    acquire: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Unsaved:
    """The open incidents of a camera this process stopped, newer than the copy in the bucket.

    ``incidents`` is what the camera's journal held when it stopped; ``saved`` is what this
    process last saved for it (JSON, as ``_dump`` writes them): the copy the camera's next
    node starts with, unless that node finds another one written since.
    """

    incidents: bytes
    saved: bytes


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
        self._saved: dict[str, bytes] = {}  # the open incidents in the bucket for each camera held
        self._bucket_ttl_s: float | None = None  # the leases' TTL the server applies, read each round
        self._unsaved: dict[str, _Unsaved] = {}  # cameras stopped whose newest incidents are not settled yet
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

        The open incidents not saved for the cameras' next nodes (NATS away, ``release``
        false, or cameras stopped earlier and not settled yet) stay in the node's journal
        (``keep_incidents``): its next start carries them on or ends them.

        Args:
            release: Save their open incidents, release their leases and withdraw, so that
                other nodes take the cameras at their next round. ``False`` leaves the
                leases to expire, as a crash does (the node gets them back if it returns
                within ``lease_ttl_s``).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._call_timeout_s() + 5)
        with self._lock:
            held, self._held = list(self._held.values()), {}
        incidents = {lease.camera_id: self._stop_camera(lease.camera_id, "the node stops") for lease in held}
        is_saved = False
        if release and self._bucket is not None and self._bus.is_connected:
            try:
                self._on_bucket(partial(_release_all, leases=held, node=self.name, incidents=incidents))
                is_saved = True
            except Exception as exc:  # noqa: BLE001 - the leases then age out
                logger.warning("node %s: leases not released (%s); they expire on their own", self.name, exc)
        if not is_saved:
            for camera_id, entries in incidents.items():
                self._unsaved[camera_id] = _Unsaved(_dump(entries), self._saved.get(camera_id, _dump([])))
        unsaved, self._unsaved = self._unsaved, {}
        for camera_id, kept in unsaved.items():
            entries = _load(kept.incidents)
            if entries and self._host is not None:
                logger.info(
                    "node %s: keeps %d open incident(s) of camera %s for its next start (not saved)",
                    self.name,
                    len(entries),
                    camera_id,
                )
                self._host.keep_incidents(camera_id, entries)
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
        for camera_id in plan.lost:  # its newest incidents are settled below, or when it takes it again
            self._give_up(camera_id, "its lease was lost")
        for lease in plan.hand_back:  # stopped, its incidents saved, then released: never run twice
            camera_id = lease.camera_id
            if camera_id in running and not self._still_held(lease):
                continue  # another process of this node holds it now: it hands it back
            if camera_id in running:
                self._give_up(camera_id, f"handed back to node {self._preferred[camera_id]}")
            if camera_id in self._unsaved:  # kept until saved: a failed round retries the save
                # The lease is still this process's: no other node started the camera since.
                self._on_bucket(
                    partial(
                        LeaseBucket.save_incidents,
                        camera_id=camera_id,
                        incidents=self._unsaved[camera_id].incidents,
                    )
                )
                del self._unsaved[camera_id]
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
                    self._give_up(camera_id, "its lease was lost")
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
        self._end_unsaved(leases)
        self._save_incidents()
        if not self._is_settled and self._host is not None:
            with self._lock:
                others = [c for c in self._preferred if c not in self._held]
            saved = self._on_bucket(partial(LeaseBucket.load_incidents, camera_ids=others))
            self._host.settle({event_id for data in saved.values() for event_id in _ids(data)})
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

    def _end_unsaved(self, leases: dict[str, Lease]) -> None:
        """Settle the unsaved incidents of the cameras another process holds now (``leases``, read this round).

        That process started the camera, or will, with the incidents found in the bucket;
        of this process's newer copy it carries on only those: the others are ended here
        (``_end_not_carried_on``). A camera that is free is left for a later round: this
        process may take it again and carry its own copy on.
        """
        others = [
            camera_id
            for camera_id in self._unsaved
            if (lease := leases.get(camera_id)) is not None
            and (lease.node, lease.instance) != (self.name, self.instance)
        ]
        if not others:
            return
        saved = self._on_bucket(partial(LeaseBucket.load_incidents, camera_ids=others))
        for camera_id in others:
            self._end_not_carried_on(camera_id, self._unsaved.pop(camera_id), saved.get(camera_id))

    def _end_not_carried_on(self, camera_id: str, unsaved: _Unsaved, saved: bytes | None) -> None:
        """End those of ``unsaved``'s incidents that no node carries on.

        Another node carries on what it found in the bucket when it started the camera:
        this process's last save (``unsaved.saved``), or ``saved`` (read now) when a node
        wrote it since. An incident in neither was opened here after the last save: it was
        published, yet no node has it.
        """
        incidents = _load(unsaved.incidents)
        carried_on = _ids(unsaved.saved) | _ids(saved or _dump([]))
        ended = [event_id for event_id in _ids(unsaved.incidents) if event_id not in carried_on]
        if not ended or self._host is None:
            return
        logger.warning(
            "node %s: camera %s runs elsewhere without %d incident(s) opened here since its last save "
            "(%s): ends them",
            self.name,
            camera_id,
            len(ended),
            ", ".join(sorted(ended)),
        )
        self._host.end_incidents(camera_id, incidents, carried_on)

    async def _read_bucket(self, js: JetStreamContext) -> tuple[dict[str, Lease], set[str]]:
        """Announce this node; the cameras' leases and the live nodes."""
        if self._bucket is None:
            self._bucket = await LeaseBucket.ensure(js, self._plant_id, ttl_s=self._nodes.lease_ttl_s)
        await self._bucket.announce(self.name)
        self._bucket_ttl_s = await self._bucket.ttl_s()
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
        self._give_up(lease.camera_id, "another process of its node took its lease")
        return False

    def _start_held(self, lease: Lease, sent: float) -> None:
        """Start the camera of a lease new to this process, with the open incidents saved for it.

        A camera this process stopped without saving its newest incidents (``_unsaved``:
        a hand-back whose save failed, a lease lost or fenced) starts with that copy of
        its own when the bucket still holds what it last saved (or nothing, or that very
        copy): no node wrote the camera's incidents since, so its copy is the newest. When
        another node wrote them since, that node's copy is the newest: the camera starts
        with it, and the incidents of its own copy that this node did not carry on are
        ended. When the saved incidents cannot be read the camera is not started: the
        lease is kept (this process's instance is in it) and the next round tries again.
        """
        camera_id = lease.camera_id
        try:
            found = self._on_bucket(partial(LeaseBucket.load_incidents, camera_ids=[camera_id]))
        except (BusError, NatsError, OSError, TimeoutError) as exc:
            logger.warning(
                "node %s: camera %s not started: its open incidents could not be read (%s); "
                "next round tries again",
                self.name,
                camera_id,
                exc,
            )
            return
        saved = found.get(camera_id)
        incidents = _load(saved or _dump([]))
        unsaved = self._unsaved.pop(camera_id, None)
        if unsaved is not None:
            own = _load(unsaved.incidents)
            if saved is None or incidents in (_load(unsaved.saved), own):
                incidents = own
            else:
                self._end_not_carried_on(camera_id, unsaved, saved)
        self._hold(lease, sent, incidents, saved=saved or _dump([]))

    def _hold(
        self, lease: Lease, sent: float, incidents: list[JournalEntry], *, saved: bytes | None = None
    ) -> None:
        """Record a lease written at ``sent``; start its camera, with ``incidents``, when it is new to this node.

        ``saved`` is what the bucket holds for the camera (default: ``incidents``): when it
        differs, the next round saves the camera's incidents.
        """
        with self._lock:
            is_new = lease.camera_id not in self._held
            self._held[lease.camera_id] = lease
            self._written_at[lease.camera_id] = sent
        if is_new:
            self._ever_held.add(lease.camera_id)
            self._saved[lease.camera_id] = _dump(incidents) if saved is None else saved
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

    def _give_up(self, camera_id: str, why: str) -> None:
        """Stop a camera this process no longer holds (or hands back); its incidents are kept until settled.

        The bucket holds them as last saved, up to a round old (older after a partition):
        the newer copy is kept (``_unsaved``) until it is saved (a hand-back), carried on
        (``_start_held``) or ended (``_end_unsaved``), never dropped.
        """
        saved = self._saved.get(camera_id, _dump([]))
        self._forget(camera_id)
        incidents = self._stop_camera(camera_id, why)
        self._unsaved[camera_id] = _Unsaved(_dump(incidents), saved)

    def _fence(self) -> None:
        """Stop the cameras whose lease may expire before this node can renew it.

        The lease lasts the bucket's TTL as the server applies it, read each round: another
        node started with a shorter ``lease_ttl_s`` (a rolling change of the site YAML) sets
        it for every node, and fencing by this node's own longer one kept its cameras running
        past the real expiry while another node took them.
        """
        ttl_s = self._nodes.lease_ttl_s
        if self._bucket_ttl_s is not None and self._bucket_ttl_s > 0:
            ttl_s = min(ttl_s, self._bucket_ttl_s)
        deadline_s = ttl_s - self._nodes.renew_interval_s
        now = self._clock()
        with self._lock:
            stale = [c for c, sent in self._written_at.items() if now - sent > deadline_s]
        for camera_id in stale:
            self._give_up(camera_id, "its lease could not be renewed in time")


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


def _ids(data: bytes) -> set[str]:
    """The event ids of saved incidents; an entry of another shape (a damaged value) has none.

    Adopting such an entry fails by name when its camera starts (``IncidentJournal.adopt``);
    here it must not fail the whole round, which would stop every camera of the node.
    """
    return {
        str(entry["event"]["id"])
        for entry in _load(data)
        if isinstance(entry, dict) and isinstance(entry.get("event"), dict) and "id" in entry["event"]
    }


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

    def end_incidents(self, camera_id: str, incidents: list[JournalEntry], carried_on: set[str]) -> None:
        """End a stopped camera's ``incidents`` that another node does not carry on (next revision, ``ended_at`` now).

        They are taken back into the journal and closed as ``settle`` closes them: those in
        ``carried_on`` are forgotten, the others published ended.
        """
        journal = self._adopted(camera_id, incidents, "they cannot be ended")
        if journal is None:
            return
        for event in journal.close_unclaimed(self._clock(), camera_id=camera_id, carried_on=carried_on):
            self._runner.sink.publish(event)

    def keep_incidents(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        """Keep a stopped camera's ``incidents`` in the journal's file, as a stopping pipeline keeps its own.

        The next start loads them: its books carry them on when the node runs the camera
        again, and ``settle`` ends those no other node carries on.
        """
        self._adopted(camera_id, incidents, "they are not kept")

    def _adopted(
        self, camera_id: str, incidents: list[JournalEntry], otherwise: str
    ) -> IncidentJournal | None:
        """The runner's journal with ``incidents`` taken back into it; ``None`` (logged) without one or when refused."""
        journal = self._runner.incident_journal
        if journal is None:
            return None
        try:
            journal.adopt(camera_id, incidents)
        except ValueError as exc:
            logger.warning("%s; %s", exc, otherwise)
            return None
        return journal
