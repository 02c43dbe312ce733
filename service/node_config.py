"""The ``nodes:`` section of a site YAML: the plant's pipeline nodes, the cameras each prefers, and their leases.

A plant whose cameras are more than one machine can analyse runs several pipeline
nodes (``anjian run --node NAME``). Each camera has one preferred node; a node leases
the cameras it runs in the plant's NATS JetStream key-value bucket
(``anjian.service.bus.leases``) and renews the leases while it lives. When a node dies,
its leases expire after ``lease_ttl_s`` and a live node takes its cameras at its next
round (every ``renew_interval_s``): a dead node's cameras run again within
``lease_ttl_s + renew_interval_s`` (about 20 s with the defaults). When the preferred
node is back, the node running its cameras stops them and hands them back.

Example (site YAML)::

    bus:
      url: nats://127.0.0.1:4222
    nodes:
      members:
        - name: line-a
          cameras: [cam-1, cam-2]
        - name: line-b
          cameras: [cam-3]
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["NodeConfig", "NodesConfig", "check_node_cameras"]

NODE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
"""A node name: one token of a key in the lease bucket (no dots, no spaces)."""


class NodeConfig(BaseModel):
    """One pipeline node and the cameras it runs while it lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=NODE_NAME_PATTERN,
        description="The node's name, given to `anjian run --node NAME` (letters, digits, '_', '-').",
    )
    cameras: list[str] = Field(
        default_factory=list,
        description="Ids of the cameras this node prefers: it runs them whenever it is alive.",
    )

    @model_validator(mode="after")
    def _has_cameras(self) -> NodeConfig:
        if not self.cameras:
            raise ValueError(f"node {self.name!r} has no cameras: list the ids of the cameras it prefers")
        twice = sorted({camera for camera in self.cameras if self.cameras.count(camera) > 1})
        if twice:
            raise ValueError(f"node {self.name!r} lists camera(s) {twice} more than once")
        return self


class NodesConfig(BaseModel):
    """The plant's pipeline nodes and how their camera leases are timed.

    A dead node's cameras are taken over within ``lease_ttl_s + renew_interval_s``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lease_ttl_s: float = Field(
        15.0,
        ge=1.0,
        le=300.0,
        description="How long a camera lease lives without renewal: a dead node's cameras wait this long.",
    )
    renew_interval_s: float = Field(
        3.0,
        gt=0.0,
        le=100.0,
        description="How often a node renews its leases and looks for cameras without a live node.",
    )
    members: list[NodeConfig] = Field(
        ..., min_length=1, description="The nodes, each with the cameras it prefers."
    )

    @model_validator(mode="after")
    def _consistent(self) -> NodesConfig:
        if self.renew_interval_s * 3 > self.lease_ttl_s:
            raise ValueError(
                f"nodes.renew_interval_s ({self.renew_interval_s:g}) must be at most a third of "
                f"nodes.lease_ttl_s ({self.lease_ttl_s:g}), so that a live node never loses its leases"
            )
        names: set[str] = set()
        owners: dict[str, str] = {}
        for node in self.members:
            if node.name in names:
                raise ValueError(f"node name {node.name!r} appears twice in nodes.members")
            names.add(node.name)
            for camera in node.cameras:
                if camera in owners:
                    raise ValueError(
                        f"camera {camera!r} is in nodes {owners[camera]!r} and {node.name!r}: "
                        "a camera has one preferred node"
                    )
                owners[camera] = node.name
        return self

    def node(self, name: str) -> NodeConfig:
        """The node called ``name``.

        Raises:
            KeyError: No node has that name (the message lists those that exist).
        """
        for node in self.members:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in nodes.members; the nodes are {[n.name for n in self.members]}")

    def preferred_nodes(self) -> dict[str, str]:
        """Each camera id's preferred node."""
        return {camera: node.name for node in self.members for camera in node.cameras}


def check_node_cameras(nodes: NodesConfig, camera_ids: Iterable[str]) -> None:
    """Check that the nodes name exactly the site's cameras.

    Raises:
        ValueError: A node names a camera the site lacks, or a camera is in no node.
    """
    site = list(camera_ids)
    preferred = nodes.preferred_nodes()
    for node in nodes.members:
        unknown = [camera for camera in node.cameras if camera not in site]
        if unknown:
            raise ValueError(f"node {node.name!r}: camera(s) {unknown} are not cameras of the site")
    orphans = [camera for camera in site if camera not in preferred]
    if orphans:
        raise ValueError(
            f"camera(s) {orphans} are in no node of nodes.members: give every camera a preferred node"
        )
