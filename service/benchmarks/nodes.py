"""Measure how long a killed pipeline node's cameras wait for a live node (``anjian bench nodes``).

A real nats-server (JetStream) holds the plant's lease bucket. Each round a node runs in
a child process (``python -m anjian.service.benchmarks.nodes NATS_URL PLANT ...``) and
another in this process; once each holds its own cameras the child is killed with
SIGKILL, at a different point of the renew cycle each round, and the seconds from the
kill to the live node holding every camera are recorded. The nodes lease cameras only
(no video is decoded): the figure is the lease take-over, which bounds when a camera's
analysis resumes, against the bound ``lease_ttl_s + renew_interval_s``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anjian.service.benchmarks.nats_servers import NatsServer, nats_server_available
from anjian.service.benchmarks.ports import free_port
from anjian.service.node_config import NodeConfig, NodesConfig
from anjian.service.nodes import CameraNode

if TYPE_CHECKING:
    from anjian.pipeline.incident_journal import JournalEntry

__all__ = ["IdleCameras", "TakeOverRound", "format_takeover_report", "run_takeover_bench"]

_DEADLINE_S = 120.0


@dataclass(frozen=True, slots=True)
class TakeOverRound:
    """One kill: seconds from SIGKILL to the live node holding every camera (``None``: not within 120 s)."""

    killed_after_renew_s: float
    taken_after_s: float | None


class IdleCameras:
    """A ``CameraHost`` that decodes nothing: the bench measures the leases, not the video."""

    def start_camera(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        """Nothing to start."""

    def stop_camera(self, camera_id: str) -> list[JournalEntry]:
        """Nothing was running."""
        return []

    def open_incidents(self, camera_id: str) -> list[JournalEntry]:
        """No incidents."""
        return []

    def settle(self, continued: set[str]) -> None:
        """Nothing to end."""

    def end_incidents(self, camera_id: str, incidents: list[JournalEntry], carried_on: set[str]) -> None:
        """Nothing to end."""

    def keep_incidents(self, camera_id: str, incidents: list[JournalEntry]) -> None:
        """Nothing to keep."""


def _nodes(cameras: int, lease_ttl_s: float, renew_interval_s: float) -> NodesConfig:
    """Two nodes, ``victim`` and ``survivor``, each preferring half of ``cameras``."""
    ids = [f"cam-{i}" for i in range(cameras)]
    return NodesConfig(
        lease_ttl_s=lease_ttl_s,
        renew_interval_s=renew_interval_s,
        members=[
            NodeConfig(name="victim", cameras=ids[: cameras // 2]),
            NodeConfig(name="survivor", cameras=ids[cameras // 2 :]),
        ],
    )


def run_takeover_bench(
    *,
    rounds: int = 3,
    cameras: int = 8,
    lease_ttl_s: float = 15.0,
    renew_interval_s: float = 3.0,
    progress: Callable[[str], None] | None = None,
) -> list[TakeOverRound]:
    """Kill a node ``rounds`` times and time how long its cameras wait for the live node.

    Raises:
        RuntimeError: nats-server is not installed, or a node did not take its cameras.
        ValueError: ``cameras`` below 2, or timings ``nodes:`` would refuse.
    """
    if cameras < 2:
        raise ValueError(f"cameras must be at least 2 (one per node), got {cameras}")
    nodes = _nodes(cameras, lease_ttl_s, renew_interval_s)
    if not nats_server_available():
        raise RuntimeError("nats-server is not installed (apt install nats-server)")
    ids = sorted(nodes.preferred_nodes())
    results: list[TakeOverRound] = []
    with tempfile.TemporaryDirectory(prefix="anjian-bench-nodes-") as folder:
        port = free_port()
        config = f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{Path(folder) / "jetstream"}" }}\n'
        server = NatsServer(Path(folder), config, port)
        server.start()
        try:
            for index in range(rounds):
                plant = f"bench{index}"
                offset_s = renew_interval_s * index / max(rounds, 1)  # kill at another point of the cycle
                child = subprocess.Popen(
                    [sys.executable, "-m", __name__, server.url, plant, str(cameras), str(lease_ttl_s),
                     str(renew_interval_s)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                survivor = CameraNode("survivor", nodes, plant_id=plant, bus_url=server.url, camera_ids=ids)
                survivor.start(IdleCameras())
                try:
                    results.append(_kill_and_time(child, survivor, nodes, offset_s))
                finally:
                    survivor.stop()
                    child.kill()
                    child.wait()
                if progress is not None:
                    progress(f"round {index + 1}/{rounds}: {_seconds(results[-1].taken_after_s)}")
        finally:
            server.kill()
    return results


def _kill_and_time(
    child: subprocess.Popen[bytes], survivor: CameraNode, nodes: NodesConfig, offset_s: float
) -> TakeOverRound:
    """Wait until the child node holds its cameras, kill it, time the survivor taking them."""
    own = sorted(nodes.node("survivor").cameras)
    deadline = time.monotonic() + _DEADLINE_S
    while survivor.held() != own:  # the victim announces itself and the survivor leaves its cameras alone
        if time.monotonic() > deadline or child.poll() is not None:
            raise RuntimeError("the nodes did not settle on their own cameras within 120 s")
        time.sleep(0.05)
    time.sleep(nodes.lease_ttl_s / 2 + offset_s)  # several renewals by the victim, then a kill mid-cycle
    child.kill()
    killed_at = time.monotonic()
    everything = sorted(nodes.preferred_nodes())
    while survivor.held() != everything:
        if time.monotonic() - killed_at > _DEADLINE_S:
            return TakeOverRound(offset_s, None)
        time.sleep(0.05)
    return TakeOverRound(offset_s, time.monotonic() - killed_at)


def _seconds(value: float | None) -> str:
    return "not taken within 120 s" if value is None else f"{value:.1f} s"


def format_takeover_report(
    rounds: list[TakeOverRound], *, lease_ttl_s: float, renew_interval_s: float
) -> str:
    """The rounds, their median and maximum, against the bound ``lease_ttl_s + renew_interval_s``."""
    taken = [r.taken_after_s for r in rounds if r.taken_after_s is not None]
    bound_s = lease_ttl_s + renew_interval_s
    timing = f"lease_ttl_s {lease_ttl_s:g}, renew_interval_s {renew_interval_s:g} (bound {bound_s:g} s)"
    lines = [f"node killed (SIGKILL) -> its cameras on the live node, {timing}:"]
    lines += [f"  round {i + 1}: {_seconds(r.taken_after_s)}" for i, r in enumerate(rounds)]
    if taken:
        lines.append(f"  {statistics.median(taken):.1f} s (median), {max(taken):.1f} s (max)")
    missed = len(rounds) - len(taken)
    if missed:
        lines.append(f"  {missed} round(s) not taken over within {_DEADLINE_S:g} s")
    return "\n".join(lines)


def _child(argv: list[str]) -> None:
    """The victim node: hold its cameras until killed."""
    parser = argparse.ArgumentParser(description="a pipeline node for anjian bench nodes (killed by it)")
    parser.add_argument("url")
    parser.add_argument("plant")
    parser.add_argument("cameras", type=int)
    parser.add_argument("lease_ttl_s", type=float)
    parser.add_argument("renew_interval_s", type=float)
    args = parser.parse_args(argv)
    nodes = _nodes(args.cameras, args.lease_ttl_s, args.renew_interval_s)
    node = CameraNode(
        "victim", nodes, plant_id=args.plant, bus_url=args.url, camera_ids=nodes.preferred_nodes()
    )
    node.start(IdleCameras())
    threading.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    _child(sys.argv[1:])
