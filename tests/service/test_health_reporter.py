"""HealthReporter: a pipeline apart from its service reports its cameras every interval, and once more when it stops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from anjian.cameras.health import CameraHealth, CameraState
from anjian.pipeline.http_sink import HttpEventSink
from anjian.service.bus.config import BusConfig
from anjian.service.health_reporter import LONE_PIPELINE_INTERVAL_S, HealthReporter, health_interval_s
from anjian.service.node_config import NodeConfig, NodesConfig
from tests.service.conftest import make_config
from tests.support.waiting import wait_for


def test_a_node_reports_twice_per_lease_round_and_a_lone_pipeline_every_five_seconds(tmp_path: Path) -> None:
    nodes = NodesConfig(renew_interval_s=3.0, members=[NodeConfig(name="line-a", cameras=["cam-1"])])
    config = make_config(
        tmp_path / "data", camera_ids=("cam-1",), bus=BusConfig(url="nats://127.0.0.1:9"), nodes=nodes
    )

    assert health_interval_s(config, "line-a") == 1.5
    assert health_interval_s(config, None) == LONE_PIPELINE_INTERVAL_S


def test_reports_go_every_interval_and_the_last_one_when_stopped_lists_what_runs_then(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    def service(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/ingest/health"
        assert request.headers["Authorization"] == "Bearer secret"
        received.append(json.loads(request.content))
        return httpx.Response(200, json={"cameras": 1, "stale_after_s": 0.15})

    sink = HttpEventSink(
        "http://service.test", "secret", tmp_path / "spool", transport=httpx.MockTransport(service)
    )
    running = [CameraHealth(camera_id="cam-1", state=CameraState.ONLINE, since=1_000.0, fps=5.0)]
    reporter = HealthReporter(sink, lambda: running, node="line-a", interval_s=0.05)
    reporter.start()
    try:
        assert wait_for(lambda: len(received) >= 2, timeout_s=10)
    finally:
        running.clear()  # the node handed its cameras back
        reporter.stop()
        sink.stop()

    first = received[0]
    assert (first["node"], first["interval_s"]) == ("line-a", 0.05)
    assert [(c["camera_id"], c["state"], c["fps"]) for c in first["cameras"]] == [("cam-1", "online", 5.0)]
    assert received[-1]["cameras"] == []
