"""``anjian nodes``: which node runs which camera, read from the plant's lease bucket on a real nats-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError
from typer.testing import CliRunner

from anjian.service.benchmarks.nodes import IdleCameras
from anjian.service.bus.config import BusConfig
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.errors import BusUnavailableError
from anjian.service.bus.leases import lease_bucket_name
from anjian.service.cli import app
from anjian.service.config import AnjianConfig
from anjian.service.node_config import NodeConfig, NodesConfig
from anjian.service.node_status import format_node_status, read_node_status
from anjian.service.nodes import CameraNode
from tests.service.conftest import make_config
from tests.support.nats import NatsServer, running_jetstream_server
from tests.support.receiver import unused_port
from tests.support.waiting import wait_for

NODES = NodesConfig(
    lease_ttl_s=3.0,
    renew_interval_s=1.0,
    members=[
        NodeConfig(name="line-a", cameras=["cam-1", "cam-2"]),
        NodeConfig(name="line-b", cameras=["cam-3"]),
    ],
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with running_jetstream_server(tmp_path / "nats") as nats:
        yield nats


def _config(tmp_path: Path, nats_url: str) -> AnjianConfig:
    return make_config(
        tmp_path / "data", camera_ids=("cam-1", "cam-2", "cam-3"), bus=BusConfig(url=nats_url), nodes=NODES
    )


def test_status_shows_live_nodes_and_a_camera_running_away_from_its_dead_preferred_node(
    tmp_path: Path, server: NatsServer
) -> None:
    config = _config(tmp_path, server.url)
    line_a = CameraNode.from_config(config, "line-a")
    line_a.start(IdleCameras())
    try:
        assert wait_for(lambda: line_a.held() == ["cam-1", "cam-2", "cam-3"])  # line-b never started

        status = read_node_status(config)
    finally:
        line_a.stop()

    text = format_node_status(status)
    assert "node line-a: alive" in text and "node line-b: not alive" in text
    assert "camera cam-1: on line-a (renewed" in text
    assert "camera cam-3: on line-a, away from line-b (renewed" in text
    assert f"ago, instance {line_a.instance[:8]})" in text  # which process of the node holds it
    after_stop = format_node_status(read_node_status(config))
    assert "node line-a: not alive" in after_stop and "camera cam-1: not running (no lease)" in after_stop


def _lease_ttl_s(server: NatsServer, plant_id: str) -> float | None:
    """The lease bucket's TTL as the server has it (``None``: no bucket)."""

    async def read(js: JetStreamContext) -> float | None:
        try:
            kv = await js.key_value(lease_bucket_name(plant_id))
        except BucketNotFoundError:
            return None
        return (await kv.status()).ttl

    bus = BusConnection(server.url, name="ttl-check")
    bus.start()
    try:
        assert bus.wait_connected(10)
        return bus.call(read, timeout_s=10)
    finally:
        bus.stop()


def test_status_reads_the_leases_without_changing_the_bucket(tmp_path: Path, server: NatsServer) -> None:
    """``anjian nodes`` with an older site YAML (another lease_ttl_s) re-timed the running nodes' leases."""
    config = _config(tmp_path, server.url)
    other_ttl = config.model_copy(update={"nodes": NODES.model_copy(update={"lease_ttl_s": 30.0})})
    assert format_node_status(read_node_status(other_ttl)).count("not running (no lease)") == 3
    assert _lease_ttl_s(server, config.site.id) is None, "reading created no bucket"
    line_a = CameraNode.from_config(config, "line-a")
    line_a.start(IdleCameras())
    try:
        assert wait_for(lambda: line_a.held() == ["cam-1", "cam-2", "cam-3"])

        text = format_node_status(read_node_status(other_ttl))
    finally:
        line_a.stop()

    assert "camera cam-1: on line-a (renewed" in text
    assert _lease_ttl_s(server, config.site.id) == pytest.approx(NODES.lease_ttl_s)


def test_status_of_an_unreachable_bus_or_a_site_without_nodes_says_so(tmp_path: Path) -> None:
    unreachable = _config(tmp_path, f"nats://127.0.0.1:{unused_port()}")
    with pytest.raises(
        BusUnavailableError, match=r"cannot reach the plant's NATS at nats://127\.0\.0\.1:\d+ within 1s"
    ):
        read_node_status(unreachable, timeout_s=1.0)
    with pytest.raises(ValueError, match="the site YAML has no nodes: section"):
        read_node_status(make_config(tmp_path / "data"))


def test_anjian_nodes_prints_the_placement_or_a_clear_error(tmp_path: Path, server: NatsServer) -> None:
    site = tmp_path / "site.yaml"
    cameras = [{"id": c, "url": f"rtsp://127.0.0.1:9/{c}"} for c in ("cam-1", "cam-2", "cam-3")]
    document = {
        "site": {"id": "plant-1", "workshops": [{"id": "ws-1", "cameras": cameras}]},
        "bus": {"url": server.url},
        "nodes": NODES.model_dump(),
    }
    site.write_text(yaml.safe_dump(document))

    shown = CliRunner().invoke(app, ["nodes", "--config", str(site)])
    unreachable = CliRunner().invoke(
        app,
        ["nodes", "--config", str(_with_bus(site, f"nats://127.0.0.1:{unused_port()}")), "--timeout-s", "1"],
    )

    assert shown.exit_code == 0, shown.output
    assert "node line-a: not alive" in shown.output and "camera cam-3: not running (no lease)" in shown.output
    assert unreachable.exit_code == 2 and "cannot reach the plant's NATS" in unreachable.output
    assert "Traceback" not in unreachable.output


def _with_bus(site: Path, url: str) -> Path:
    document = yaml.safe_load(site.read_text())
    document["bus"] = {"url": url}
    other = site.with_name("other.yaml")
    other.write_text(yaml.safe_dump(document))
    return other
