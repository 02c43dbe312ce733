"""POST /ingest/health: a node running elsewhere reports its cameras; GET /cameras lists them with its name,
stale once it falls silent, and on the node that takes them over after that."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from anjian.cameras.health import CameraHealth, CameraState
from anjian.pipeline.health_wire import HealthReportWire
from anjian.pipeline.http_sink import HttpEventSink
from anjian.service.app import create_app
from anjian.service.bus.config import BusConfig
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import AnjianConfig
from anjian.service.node_config import NodeConfig, NodesConfig
from tests.service.conftest import FakeClock, bearer, make_config
from tests.service.server import ServerThread


@pytest.fixture
def config(tmp_path: Path) -> AnjianConfig:
    """A plant of two nodes: node-a (this process) prefers cam-1, node-b (elsewhere) cam-2."""
    nodes = NodesConfig(
        members=[NodeConfig(name="node-a", cameras=["cam-1"]), NodeConfig(name="node-b", cameras=["cam-2"])]
    )
    return make_config(tmp_path / "data", bus=BusConfig(url="nats://127.0.0.1:9"), nodes=nodes)


@pytest.fixture
def local() -> list[CameraHealth]:
    """The cameras node-a's own pipeline reads."""
    return [CameraHealth(camera_id="cam-1", state=CameraState.ONLINE, since=1_000.0, fps=5.0)]


@pytest.fixture
def parts(config: AnjianConfig, local: list[CameraHealth], clock: FakeClock) -> Iterator[ServiceParts]:
    parts = build_service_parts(config, camera_health=lambda: local, camera_node="node-a", clock=clock)
    yield parts
    parts.close()


@pytest.fixture
def client(config: AnjianConfig, parts: ServiceParts) -> TestClient:
    return TestClient(create_app(config, parts))


def _report(node: str | None = "node-b", **camera: Any) -> dict[str, Any]:
    health = {"camera_id": "cam-2", "state": "online", "since": 1_000.0, "fps": 4.0, **camera}
    return {"node": node, "interval_s": 2.0, "cameras": [health]}


def _cameras(client: TestClient | httpx.Client, headers: dict[str, str]) -> list[tuple[str, str | None, str]]:
    response = client.get("/cameras", headers=headers)
    assert response.status_code == 200, response.text
    return [(c["camera_id"], c["node"], c["state"]) for c in response.json()]


def test_a_nodes_report_is_listed_with_its_name_then_stale_once_it_falls_silent(
    client: TestClient, parts: ServiceParts, clock: FakeClock
) -> None:
    viewer = bearer(parts.store, "viewer")

    response = client.post("/ingest/health", json=_report(), headers=bearer(parts.store, "pipeline"))

    assert response.status_code == 200, response.text
    assert response.json() == {"cameras": 1, "stale_after_s": 6.0}
    assert _cameras(client, viewer) == [("cam-1", "node-a", "online"), ("cam-2", "node-b", "online")]
    clock.now += 6.5
    assert _cameras(client, viewer) == [("cam-1", "node-a", "online"), ("cam-2", "node-b", "stale")]
    (healthz_cam_2,) = [
        c for c in client.get("/healthz", headers=viewer).json()["cameras"] if c["node"] == "node-b"
    ]
    assert healthz_cam_2["state"] == "stale" and "has not reported it since" in healthz_cam_2["last_error"]
    assert 'anjian_camera_state{camera_id="cam-2",state="stale"} 1.0' in client.get("/metrics").text


@pytest.mark.parametrize("role", [None, "viewer", "operator"], ids=["no-token", "viewer", "operator"])
def test_only_a_pipeline_token_may_report(client: TestClient, parts: ServiceParts, role: str | None) -> None:
    headers = {} if role is None else bearer(parts.store, role)

    response = client.post("/ingest/health", json=_report(), headers=headers)

    assert response.status_code == (401 if role is None else 403)
    assert _cameras(client, bearer(parts.store, "viewer")) == [("cam-1", "node-a", "online")]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (_report(state="stale"), "'stale' is set by the service"),
        (_report(state="sleeping"), "cameras.0.state"),
        (_report(fps="4"), "cameras.0.fps"),
        (_report(frames_decoded=-1), "cameras.0.frames_decoded"),
        (_report(colour="red"), "cameras.0.colour"),
        ({**_report(), "interval_s": 0}, "interval_s"),
        ({"node": "node-b", "interval_s": 2.0}, "cameras"),
        (_report(camera_id="cam-9"), "cameras[0].camera_id: 'cam-9' is not a camera of site 'site-1'"),
        (_report(node="node-z"), "node: 'node-z' is not a node of site 'site-1' (its nodes: node-a, node-b)"),
        (_report(node="../x"), "node"),
    ],
    ids=["stale", "bad-state", "string-fps", "negative-count", "unknown-field", "zero-interval",
         "no-cameras", "unknown-camera", "unknown-node", "bad-node-name"],
)  # fmt: skip
def test_a_bad_report_is_a_422_naming_the_field(
    client: TestClient, parts: ServiceParts, body: dict[str, Any], named: str
) -> None:
    response = client.post("/ingest/health", json=body, headers=bearer(parts.store, "pipeline"))

    assert response.status_code == 422, response.text
    assert named in response.text
    assert _cameras(client, bearer(parts.store, "viewer")) == [("cam-1", "node-a", "online")]


def test_the_http_sink_reports_over_real_http_and_the_node_taking_the_camera_over_wins(
    tmp_path: Path, config: AnjianConfig, parts: ServiceParts, local: list[CameraHealth], clock: FakeClock
) -> None:
    server = ServerThread(create_app(config, parts)).start()
    pipeline_token = bearer(parts.store, "pipeline")["Authorization"].removeprefix("Bearer ")
    sink = HttpEventSink(server.base_url, pipeline_token, tmp_path / "spool", is_fsync=False)
    cam_2 = CameraHealth(camera_id="cam-2", state=CameraState.OFFLINE, since=1_000.0, reconnects=3)
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            viewer = bearer(parts.store, "viewer")

            assert sink.report_health(HealthReportWire.from_health([cam_2], node="node-b", interval_s=2.0))

            assert _cameras(http, viewer) == [("cam-1", "node-a", "online"), ("cam-2", "node-b", "offline")]
            clock.now += 10.0  # node-b died
            assert _cameras(http, viewer) == [("cam-1", "node-a", "online"), ("cam-2", "node-b", "stale")]
            local.append(CameraHealth(camera_id="cam-2", state=CameraState.CONNECTING, since=clock.now))
            assert _cameras(http, viewer) == [
                ("cam-1", "node-a", "online"),
                ("cam-2", "node-a", "connecting"),
            ]
    finally:
        sink.stop()
        server.stop()


def test_the_http_sink_stops_reporting_to_a_service_without_the_route(tmp_path: Path) -> None:
    calls: list[str] = []

    def older_service(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(404, json={"detail": "Not Found"})

    sink = HttpEventSink(
        "http://service.test", "token", tmp_path / "spool", transport=httpx.MockTransport(older_service)
    )
    report = HealthReportWire.from_health([], node=None, interval_s=5.0)

    assert [sink.report_health(report) for _ in range(3)] == [False, False, False]
    assert calls == ["/ingest/health"]
    sink.stop()


def test_the_http_sink_asks_a_service_without_the_route_again_later_and_reports_once_it_has_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline upgraded before its service never reported camera health again, until its restart."""
    from anjian.pipeline import http_sink

    monkeypatch.setattr(http_sink, "_HEALTH_ROUTE_RETRY_S", 0.0)  # ask again at once: the service is upgraded
    answers = [404, 200]

    def upgraded_service(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0), json={})

    sink = HttpEventSink(
        "http://service.test", "token", tmp_path / "spool", transport=httpx.MockTransport(upgraded_service)
    )
    report = HealthReportWire.from_health([], node=None, interval_s=5.0)

    assert [sink.report_health(report) for _ in range(2)] == [False, True]
    sink.stop()
