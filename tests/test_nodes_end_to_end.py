"""Two pipeline nodes of one plant as real processes: kill -9 one, the other takes its camera within a minute
and carries its open incident on (no second alert); the service's camera list shows the dead node's camera
stale, then on the live node.

``node-a`` runs the alert service and its camera in one process (``anjian run --node node-a``);
``node-b`` runs its camera alone and sends its events to that service over HTTP
(``anjian run --node node-b --service-url ...``). Their leases live in a real nats-server.
The cameras point at a closed port, so each raises a "camera offline" fault: an event that
shows which node runs the camera, without decoding video. node-b reports its camera's health to the
service (``POST /ingest/health``), so ``GET /cameras`` lists both cameras with their nodes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from nats.js import JetStreamContext

from anjian.service.benchmarks.service_process import create_token
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.leases import LeaseBucket
from tests.support.nats import nats_server_available, start_jetstream_server
from tests.support.receiver import unused_port
from tests.support.waiting import seconds_until, wait_for

ROOT = Path(__file__).parents[1]
LEASE_TTL_S = 6.0
RENEW_S = 2.0


def _site(tmp_path: Path, nats_url: str) -> Path:
    def camera(camera_id: str) -> dict[str, object]:
        return {
            "id": camera_id,
            "url": f"rtsp://127.0.0.1:9/{camera_id}",
            "faults": {"offline_after_s": 1, "update_interval_s": 2},
        }

    config = {
        "site": {
            "id": "plant-n",
            "workshops": [{"id": "ws-1", "cameras": [camera("cam-a"), camera("cam-b")]}],
        },
        "model": {"path": "builtin:anjian-demo"},
        "storage": {"dir": str(tmp_path / "data")},
        "bus": {"url": nats_url},
        "nodes": {
            "lease_ttl_s": LEASE_TTL_S,
            "renew_interval_s": RENEW_S,
            "members": [{"name": "node-a", "cameras": ["cam-a"]}, {"name": "node-b", "cameras": ["cam-b"]}],
        },
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _anjian(*args: str, env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    with (log or Path(os.devnull)).open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "anjian.service", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.mark.slow
def test_killed_nodes_camera_is_taken_by_the_live_node_which_carries_its_incident_on(tmp_path: Path) -> None:
    if not nats_server_available():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    nats = start_jetstream_server(tmp_path / "nats")
    site = _site(tmp_path, nats.url)
    port = unused_port()
    env = {**os.environ, "ANJIAN_PORT": str(port), "PYTHONUNBUFFERED": "1", "YOLO_OFFLINE": "1"}
    auth = {"Authorization": f"Bearer {create_token(site, 'viewer')}"}
    pipeline_token = create_token(site, "pipeline")
    base = f"http://127.0.0.1:{port}"
    bus = BusConnection(nats.url, name="e2e-test")
    bus.start()

    def events_of(camera_id: str) -> dict[str, int]:
        """The camera's incidents in the service, with their latest revisions."""
        query = {"camera_id": camera_id}
        try:
            listed = httpx.get(f"{base}/events", params=query, headers=auth, timeout=5).json()
        except httpx.HTTPError:
            return {}
        return {item["id"]: item["revision"] for item in listed.get("items", [])}

    def cameras() -> dict[str, tuple[str, str]]:
        """Every camera of the plant in the service's list: its node and state."""
        try:
            health = httpx.get(f"{base}/cameras", headers=auth, timeout=5).json()
        except httpx.HTTPError:
            return {}
        return {c["camera_id"]: (c["node"], c["state"]) for c in health} if isinstance(health, list) else {}

    def cameras_of_node_a() -> list[str]:
        return sorted(camera_id for camera_id, (node, _) in cameras().items() if node == "node-a")

    def saved_incidents(camera_id: str) -> set[str]:
        """Ids of the camera's open incidents its node saved on the bus, for a node taking it over."""

        async def load(js: JetStreamContext) -> dict[str, bytes]:
            bucket = await LeaseBucket.ensure(js, "plant-n", ttl_s=LEASE_TTL_S)
            return await bucket.load_incidents([camera_id])

        saved = bus.call(load, timeout_s=10)
        return {entry["event"]["id"] for entry in json.loads(saved.get(camera_id, b"[]"))}

    def log_of(node: str) -> str:
        return (tmp_path / f"{node}.log").read_text(errors="replace")

    node_a = _anjian("run", "--config", str(site), "--node", "node-a", env=env, log=tmp_path / "node-a.log")
    node_b = _anjian(
        "run", "--config", str(site), "--node", "node-b", "--service-url", base, "--token", pipeline_token,
        env={**env, "ANJIAN_PORT": str(unused_port())},
        log=tmp_path / "node-b.log",
    )  # fmt: skip
    try:
        assert wait_for(lambda: cameras_of_node_a() == ["cam-a"], timeout_s=90), log_of("node-a")
        assert wait_for(lambda: len(events_of("cam-b")) == 1, timeout_s=90), log_of("node-b")
        # node-a may hold cam-b (and raise its fault) until node-b is alive; then it hands it back
        assert wait_for(lambda: cameras_of_node_a() == ["cam-a"], timeout_s=60), (
            "node-a runs only its own camera while node-b lives"
        )
        (fault_id,) = events_of("cam-b")  # node-b's "camera offline", sent over HTTP
        assert wait_for(lambda: cameras().get("cam-b", ("", ""))[0] == "node-b"), "node-b reports its camera"
        assert wait_for(lambda: saved_incidents("cam-b") == {fault_id})

        node_b.kill()  # kill -9: its lease is left to expire
        node_b.wait()
        revision_at_kill = events_of("cam-b")[fault_id]
        assert wait_for(lambda: cameras().get("cam-b") == ("node-b", "stale"), timeout_s=30), cameras()
        take_over_s = seconds_until(lambda: cameras_of_node_a() == ["cam-a", "cam-b"], timeout_s=60)

        assert take_over_s is not None, log_of("node-a")[-3000:]
        print(f"node-b killed: node-a runs cam-b after {take_over_s:.1f} s (lease TTL {LEASE_TTL_S:g} s)")
        assert "node node-a: took camera cam-b (node node-b is not alive)" in log_of("node-a")
        carried_on = wait_for(lambda: events_of("cam-b").get(fault_id, 0) > revision_at_kill, timeout_s=30)
        assert carried_on, log_of("node-a")[-3000:]
        assert list(events_of("cam-b")) == [fault_id], "the fault goes on: it is not raised a second time"
    finally:
        _stop(node_b)
        exit_code = _stop(node_a)
        bus.stop()
        nats.kill()
    assert exit_code == 0, log_of("node-a")[-3000:]
