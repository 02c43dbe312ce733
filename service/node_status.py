"""Which node runs which camera of a plant now, read from the plant's lease bucket (``anjian nodes``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anjian.cameras.url import mask_url
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.errors import BusUnavailableError
from anjian.service.bus.leases import Lease, LeaseBucket

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from anjian.service.config import AnjianConfig

__all__ = ["CameraPlacement", "NodeStatus", "format_node_status", "read_node_status"]


@dataclass(frozen=True, slots=True)
class CameraPlacement:
    """A camera, its preferred node and the node holding its lease now (``None``: no node runs it)."""

    camera_id: str
    preferred: str
    lease: Lease | None


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """The plant's nodes that are alive and where each camera runs."""

    nodes: list[str]
    alive: set[str]
    cameras: list[CameraPlacement]


def read_node_status(config: AnjianConfig, *, timeout_s: float = 5.0) -> NodeStatus:
    """Read the plant's lease bucket.

    Raises:
        ValueError: The site has no ``nodes:`` section.
        BusUnavailableError: The plant's nats-server cannot be reached within ``timeout_s``.
    """
    if config.nodes is None or config.bus is None:
        raise ValueError("the site YAML has no nodes: section: one node runs every camera")
    nodes = config.nodes
    plant_id = config.bus.plant_id or config.site.id
    preferred = {
        camera.id: nodes.preferred_nodes()[camera.id] for _, camera in config.cameras() if camera.enabled
    }
    names = [node.name for node in nodes.members]

    async def read(js: JetStreamContext) -> tuple[dict[str, Lease], set[str]]:
        bucket = await LeaseBucket.existing(
            js, plant_id
        )  # read only: never re-times the running nodes' leases
        if bucket is None:  # no node has run yet
            return {}, set()
        return await bucket.leases(preferred), await bucket.alive_nodes(names)

    bus = BusConnection(config.bus.url, name="anjian-nodes-status")
    bus.start()
    try:
        if not bus.wait_connected(timeout_s):
            raise BusUnavailableError(
                f"cannot reach the plant's NATS at {mask_url(config.bus.url)} within {timeout_s:g}s"
            )
        leases, alive = bus.call(read, timeout_s=timeout_s)
    finally:
        bus.stop()
    return NodeStatus(
        nodes=names,
        alive=alive,
        cameras=[CameraPlacement(c, node, leases.get(c)) for c, node in preferred.items()],
    )


def format_node_status(status: NodeStatus, clock: Callable[[], float] = time.time) -> str:
    """One line per node (alive or not), then one per camera: where it runs, when its lease was renewed, by which process."""
    lines = [f"node {name}: {'alive' if name in status.alive else 'not alive'}" for name in status.nodes]
    now = clock()
    for placement in status.cameras:
        lease = placement.lease
        if lease is None:
            where = "not running (no lease)"
        else:
            moved = "" if lease.node == placement.preferred else f", away from {placement.preferred}"
            instance = f", instance {lease.instance[:8]}" if lease.instance else ""
            where = f"on {lease.node}{moved} (renewed {max(0.0, now - lease.renewed_at):.0f}s ago{instance})"
        lines.append(f"camera {placement.camera_id}: {where}")
    return "\n".join(lines)
