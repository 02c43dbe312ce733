"""One pipeline node of a plant with several (``anjian run --node NAME``): it runs the cameras it leases.

Every ``renew_interval_s`` a node (``CameraNode``) plays one round against the plant's
lease bucket (``anjian.service.bus.leases``):

1. it announces itself and reads every camera's lease and which nodes are alive;
2. it renews the leases it holds (compare-and-set on the revision it holds);
3. it hands back a camera it holds for a preferred node that is alive again:
   it stops the camera first, then releases the lease, so the two never both run it;
4. it takes a free camera (never leased, released, or expired because its node died)
   when it is the camera's preferred node, or when the preferred node is not alive;
   ``create`` fails for all but one of the nodes that try, so one node wins.

A node stops a camera whose lease it has not renewed for ``lease_ttl_s -
renew_interval_s`` (counted from when it sent the last write that succeeded, on its own
monotonic clock), before the server lets the lease age out: a node cut off from NATS
stops its cameras before another node can take them. A node that stops gracefully
stops its cameras and releases their leases, so the others take them at their next round.

The pipeline runs only what the node holds: ``RunnerCameras`` adds and removes the
runner's cameras (as the camera reload does), and after the first round closes the
journal's incidents of cameras this node no longer runs (another node raised its own).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from anjian.service.bus.connection import BusConnection
from anjian.service.bus.errors import BusError
from anjian.service.bus.leases import Lease, LeaseBucket

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from anjian.pipeline.runner import CameraAssignment, PipelineRunner
    from anjian.service.config import AnjianConfig
    from anjian.service.node_config import NodesConfig

__all__ = ["CameraHost", "CameraNode", "LeasePlan", "RunnerCameras", "plan_round"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CameraHost(Protocol):
    """What a node starts and stops: the cameras of its pipeline."""

    def start_camera(self, camera_id: str) -> None:
        """Start analysing a camera."""
        ...

    def stop_camera(self, camera_id: str) -> None:
        """Stop analysing a camera (its open incidents end)."""
        ...

    def settle(self) -> None:
        """Called once, after the node's first round: the cameras it does not hold now are not its own."""
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
        them), and free cameras to try to take.
    """
    plan = LeasePlan()
    running_now = set(running)
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
        if lease is None and (owner == node or owner not in alive):
            plan.acquire.append(camera_id)
    return plan


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
        self._nodes = nodes
        self._plant_id = plant_id
        self._preferred = {c: n for c, n in nodes.preferred_nodes().items() if c in wanted}
        self._clock = clock
        self._bus = BusConnection(bus_url, name=f"anjian-node-{name}")
        self._bucket: LeaseBucket | None = None
        self._held: dict[str, Lease] = {}
        self._written_at: dict[str, float] = {}  # monotonic time the write now holding each lease was sent
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
        for lease in held:
            self._stop_camera(lease.camera_id, "the node stops")
        if release and self._bucket is not None and self._bus.is_connected:
            try:
                self._on_bucket(partial(_release_all, leases=held, node=self.name))
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
            except (BusError, OSError, TimeoutError) as exc:
                logger.warning("node %s: lease round failed: %s", self.name, exc)
            except Exception:
                logger.exception("node %s: lease round failed", self.name)
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
        for camera_id in plan.lost:
            self._forget(camera_id)
            self._stop_camera(camera_id, "its lease was lost")
        for lease in plan.hand_back:
            self._forget(lease.camera_id)
            self._stop_camera(lease.camera_id, f"handed back to node {self._preferred[lease.camera_id]}")
            self._on_bucket(partial(LeaseBucket.release, lease=lease))
        for lease in plan.renew:
            renewed = self._on_bucket(partial(LeaseBucket.renew, lease=lease))
            if renewed is None:
                self._forget(lease.camera_id)
                self._stop_camera(lease.camera_id, "its lease was lost")
            else:
                self._hold(renewed, sent)
        for camera_id in plan.acquire:
            acquire_sent = self._clock()
            taken = self._on_bucket(partial(LeaseBucket.acquire, camera_id=camera_id, node=self.name))
            if taken is not None:
                owner = self._preferred[camera_id]
                why = "its preferred node" if owner == self.name else f"node {owner} is not alive"
                logger.info("node %s: took camera %s (%s)", self.name, camera_id, why)
                self._hold(taken, acquire_sent)
        if not self._is_settled and self._host is not None:
            self._is_settled = True
            self._host.settle()
        return plan

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

    def _hold(self, lease: Lease, sent: float) -> None:
        """Record a lease written at ``sent``; start its camera when it is new to this node."""
        with self._lock:
            is_new = lease.camera_id not in self._held
            self._held[lease.camera_id] = lease
            self._written_at[lease.camera_id] = sent
        if is_new and self._host is not None:
            self._host.start_camera(lease.camera_id)

    def _forget(self, camera_id: str) -> None:
        with self._lock:
            self._held.pop(camera_id, None)
            self._written_at.pop(camera_id, None)

    def _stop_camera(self, camera_id: str, why: str) -> None:
        logger.info("node %s: stops camera %s (%s)", self.name, camera_id, why)
        if self._host is not None:
            self._host.stop_camera(camera_id)

    def _fence(self) -> None:
        """Stop the cameras whose lease may expire before this node can renew it."""
        deadline_s = self._nodes.lease_ttl_s - self._nodes.renew_interval_s
        now = self._clock()
        with self._lock:
            stale = [c for c, sent in self._written_at.items() if now - sent > deadline_s]
        for camera_id in stale:
            self._forget(camera_id)
            self._stop_camera(camera_id, "its lease could not be renewed in time")


async def _release_all(bucket: LeaseBucket, leases: list[Lease], node: str) -> None:
    """Release ``leases`` and withdraw ``node``."""
    for lease in leases:
        await bucket.release(lease)
    await bucket.withdraw(node)


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

    def start_camera(self, camera_id: str) -> None:
        """Add the camera to the runner (nothing when it runs already)."""
        if camera_id not in self._runner.camera_ids():
            self._runner.add_camera(self._assignments[camera_id])

    def stop_camera(self, camera_id: str) -> None:
        """Remove the camera from the runner; its open incidents end."""
        self._runner.remove_camera(camera_id)

    def settle(self) -> None:
        """End the journal's open incidents of cameras this node does not run (their new node raises its own)."""
        journal = self._runner.incident_journal
        if journal is None:
            return
        for event in journal.close_unclaimed(self._clock()):
            self._runner.sink.publish(event)
