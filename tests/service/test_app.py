"""The HTTP API over a real SQLite file: events published through StoreSink, read back over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from anjian.cameras.health import CameraHealth, CameraState
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from anjian.service.config import AnjianConfig, WebhookConfig
from anjian.service.sink import StoreSink
from tests.factories import make_event, make_jpeg
from tests.service.conftest import bearer, make_config


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    client = TestClient(app)
    client.headers.update(bearer(app.state.store, "viewer"))
    return client


@pytest.fixture
def sink(client: TestClient) -> StoreSink:
    state = client.app.state  # type: ignore[attr-defined]
    return StoreSink(state.store, state.evidence)


def test_published_event_is_listed_and_readable(client: TestClient, sink: StoreSink) -> None:
    event = make_event()
    sink.store_event(event)

    listed = client.get("/events")
    assert listed.status_code == 200
    body = listed.json()
    assert body["count"] == 1
    (item,) = body["items"]
    assert item["id"] == event.id
    assert item["revision"] == 1
    assert item["state"] == "raised"
    assert item["allowed_actions"] == ["acknowledge", "false_alarm"]
    assert item["behaviour"] == "open_flame"
    assert item["severity"] == "red"
    assert item["started_at"] == "2023-11-14T22:13:20Z"
    assert item["last_seen_at"] == "2023-11-14T22:13:22.500000Z"
    assert item["ended_at"] is None
    assert item["snapshot_url"] == f"/events/{event.id}/snapshot.jpg"

    one = client.get(f"/events/{event.id}")
    assert one.status_code == 200
    assert one.json() == item


def test_snapshot_bytes_match_the_published_jpeg(client: TestClient, sink: StoreSink) -> None:
    event = make_event()
    sink.store_event(event)

    response = client.get(f"/events/{event.id}/snapshot.jpg")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == event.snapshot_jpeg


def test_new_revision_with_new_snapshot_replaces_it_and_stale_one_does_not(
    client: TestClient, sink: StoreSink
) -> None:
    event = make_event()
    newer_jpeg = make_jpeg(bgr=(255, 0, 0))
    sink.store_event(event)
    sink.store_event(make_event(id=event.id, revision=3, snapshot_jpeg=newer_jpeg, ended_at=1_700_000_030.0))
    sink.store_event(make_event(id=event.id, revision=2, snapshot_jpeg=make_jpeg(bgr=(0, 255, 0))))

    assert client.get(f"/events/{event.id}/snapshot.jpg").content == newer_jpeg
    item = client.get(f"/events/{event.id}").json()
    assert (item["revision"], item["ended_at"]) == (3, "2023-11-14T22:13:50Z")
    assert (sink.stats().published, sink.stats().stored, sink.stats().ignored) == (3, 2, 1)


def test_clip_revision_is_stored_and_served(client: TestClient, sink: StoreSink) -> None:
    event = make_event()
    clip = b"\x00\x00\x00\x18ftypisom" + bytes(range(200))
    sink.store_event(event)
    sink.store_event(make_event(id=event.id, revision=2, snapshot_jpeg=None, clip_mp4=clip))

    item = client.get(f"/events/{event.id}").json()
    assert item["clip_url"] == f"/events/{event.id}/clip.mp4"
    response = client.get(f"/events/{event.id}/clip.mp4")
    assert response.status_code == 200
    assert response.content == clip
    assert client.get(f"/events/{event.id}/snapshot.jpg").content == event.snapshot_jpeg


def test_filters_and_ordering_over_http(client: TestClient, sink: StoreSink) -> None:
    sink.store_event(make_event(id="old", started_at=1_700_000_000.0, last_seen_at=1_700_000_000.0))
    sink.store_event(
        make_event(
            id="new",
            camera_id="cam-2",
            behaviour=Behaviour.SMOKING,
            severity=RiskLevel.ORANGE,
            started_at=1_700_003_600.0,
            last_seen_at=1_700_003_600.0,
        )
    )

    def ids(**params: str | int) -> list[str]:
        response = client.get("/events", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids() == ["new", "old"]
    assert ids(camera_id="cam-2") == ["new"]
    assert ids(behaviour="open_flame") == ["old"]
    assert ids(severity="orange") == ["new"]
    assert ids(since="2023-11-14T23:00:00Z") == ["new"]
    assert ids(until="2023-11-14T23:00:00+00:00") == ["old"]
    assert ids(since=1_700_003_600) == ["new"]
    assert ids(limit=1) == ["new"]


def test_unknown_event_is_404_with_clear_detail(client: TestClient) -> None:
    response = client.get("/events/does-not-exist")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "event 'does-not-exist' not found",
        "instance": "/events/does-not-exist",
    }
    assert client.get("/events/does-not-exist/snapshot.jpg").status_code == 404


def test_event_without_snapshot_has_no_snapshot_url_and_its_snapshot_is_404(
    client: TestClient, sink: StoreSink
) -> None:
    event = make_event(snapshot_jpeg=None)
    sink.store_event(event)

    assert client.get(f"/events/{event.id}").json()["snapshot_url"] is None
    response = client.get(f"/events/{event.id}/snapshot.jpg")
    assert response.status_code == 404
    assert response.json()["detail"] == f"event {event.id!r} has no snapshot"


def test_snapshot_file_deleted_from_disk_is_404(
    client: TestClient, sink: StoreSink, config: AnjianConfig
) -> None:
    event = make_event()
    sink.store_event(event)
    (config.storage.dir / "evidence" / "cam-1" / event.id / "snapshot.jpg").unlink()

    response = client.get(f"/events/{event.id}/snapshot.jpg")

    assert response.status_code == 404
    assert "missing" in response.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "ten"},
        {"behaviour": "juggling"},
        {"severity": "purple"},
        {"since": "yesterday"},
        {"since": "2023-11-15T00:00:00Z", "until": "2023-11-14T00:00:00Z"},
    ],
    ids=["limit-0", "limit-1001", "limit-text", "behaviour", "severity", "since-text", "since-after-until"],
)
def test_bad_query_is_422(client: TestClient, params: dict[str, str | int]) -> None:
    response = client.get("/events", params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["instance"]) == (422, "/events")
    assert problem["detail"]


def test_healthz_tells_an_anonymous_caller_only_that_it_is_alive(config: AnjianConfig) -> None:
    health = CameraHealth(
        camera_id="cam-1", state=CameraState.OFFLINE, since=1_700_000_000.0, last_error="refused by 10.0.0.5"
    )
    parts = build_service_parts(config, camera_health=lambda: [health])
    app = create_app(config, parts)
    try:
        client = TestClient(app)
        anonymous = client.get("/healthz")
        pipeline = client.get("/healthz", headers=bearer(app.state.store, "pipeline"))
        viewer = client.get("/healthz", headers=bearer(app.state.store, "viewer"))
        wrong = client.get("/healthz", headers={"Authorization": "Bearer anj_wrong-0000000000000000000"})
    finally:
        parts.close()

    assert (anonymous.status_code, anonymous.json()) == (200, {"status": "ok"})
    assert pipeline.json() == {"status": "ok"}, "a token that may not read gets liveness only"
    assert viewer.json()["cameras"][0]["last_error"] == "refused by 10.0.0.5"
    assert wrong.status_code == 401


def test_healthz_reports_ok_database_and_pending_deliveries(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["is_database_ok"], body["pending_deliveries"]) == ("ok", True, 0)
    assert body["cameras"] == []


def test_healthz_lists_camera_health_when_given(config: AnjianConfig) -> None:
    health = CameraHealth(camera_id="cam-1", state=CameraState.ONLINE, since=1_700_000_000.0, fps=4.5)
    parts = build_service_parts(config, camera_health=lambda: [health])
    app = create_app(config, parts)
    try:
        client = TestClient(app)
        client.headers.update(bearer(app.state.store, "viewer"))
        (camera,) = client.get("/healthz").json()["cameras"]
        grid = client.get("/cameras", headers=bearer(app.state.store, "viewer")).json()
        metrics = client.get("/metrics").text
    finally:
        parts.close()

    assert (camera["camera_id"], camera["state"], camera["fps"]) == ("cam-1", "online", 4.5)
    assert camera["since"] == "2023-11-14T22:13:20Z"
    assert grid == [camera]
    assert 'anjian_camera_fps{camera_id="cam-1"} 4.5' in metrics
    assert 'anjian_camera_state{camera_id="cam-1",state="online"} 1.0' in metrics
    assert 'anjian_camera_up{camera_id="cam-1"} 1.0' in metrics


def test_lifespan_starts_and_stops_the_dispatcher_the_app_created(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data", [WebhookConfig(url="http://127.0.0.1:9/hook")]))

    with TestClient(app, headers=bearer(app.state.store, "viewer")) as client:
        assert client.get("/healthz").json()["is_dispatcher_running"] is True
        dispatcher = app.state.dispatcher

    assert not dispatcher.is_running


def test_app_leaves_the_parts_it_was_given_alone(config: AnjianConfig) -> None:
    parts = build_service_parts(config)
    app = create_app(config, parts)
    try:
        with TestClient(app, headers=bearer(parts.store, "viewer")) as client:
            assert client.get("/healthz").json()["is_dispatcher_running"] is False
        assert parts.store.get_event("x") is None, "a store passed in stays open after shutdown"
    finally:
        parts.close()
