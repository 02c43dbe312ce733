"""The API beyond listing events: lifecycle over HTTP, ingest, webhooks, clips, metrics, readiness, CORS."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from anjian.pipeline.event import Event
from anjian.pipeline.event_json import event_to_json
from anjian.service.api import events as events_module
from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from anjian.service.config import AnjianConfig, ServerConfig
from anjian.service.records import DeliveryStatus
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.conftest import bearer, make_config

MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 8


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def _store(client: TestClient) -> EventStore:
    return client.app.state.store  # type: ignore[attr-defined,no-any-return]


def _ingest(client: TestClient, headers: dict[str, str], **overrides: object) -> dict[str, object]:
    event = make_event(**overrides)
    response = client.post("/ingest/events", json=event_to_json(event), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_operator_works_an_alert_through_its_lifecycle_and_the_audit_trail_shows_it(
    client: TestClient,
) -> None:
    pipeline = bearer(_store(client), "pipeline")
    operator = bearer(_store(client), "operator", name="duty officer Zhang")
    event_id = str(_ingest(client, pipeline)["event_id"])

    steps = [
        ("acknowledge", {"note": "seen on camera"}, "acknowledged"),
        ("dispatch", {"assignee": "fire team 2", "note": "WO-1: bring extinguisher"}, "dispatched"),
        ("resolve", {"note": "flame put out, hot work permit checked"}, "resolved"),
        ("close", {}, "closed"),
    ]
    for action, body, state in steps:
        response = client.post(f"/events/{event_id}/{action}", json=body, headers=operator)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == state

    final = client.get(f"/events/{event_id}", headers=operator).json()
    assert (final["assignee"], final["allowed_actions"]) == ("fire team 2", [])
    trail = client.get(f"/events/{event_id}/audit", headers=operator).json()
    assert [(a["actor"], a["action"], a["to_state"]) for a in trail] == [
        ("pipeline", "raise", "raised"),
        ("duty officer Zhang", "acknowledge", "acknowledged"),
        ("duty officer Zhang", "dispatch", "dispatched"),
        ("duty officer Zhang", "resolve", "resolved"),
        ("duty officer Zhang", "close", "closed"),
    ]
    assert trail[2]["assignee"] == "fire team 2" and trail[2]["note"] == "WO-1: bring extinguisher"


def test_invalid_transition_is_409_listing_the_allowed_actions(client: TestClient) -> None:
    event_id = str(_ingest(client, bearer(_store(client), "pipeline"))["event_id"])

    response = client.post(
        f"/events/{event_id}/resolve", json={"note": "done"}, headers=bearer(_store(client), "operator")
    )

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["title"]) == (409, "Conflict")
    assert problem["state"] == "raised"
    assert problem["allowed_actions"] == ["acknowledge", "false_alarm"]
    assert "cannot resolve an alert that is raised" in problem["detail"]


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("dispatch", {"note": "x"}),
        ("dispatch", {"assignee": "   "}),
        ("dispatch", {"assignee": "\u001f"}),  # str.strip empties it; a regex \S does not (was a 500)
        ("resolve", {}),
        ("resolve", {"note": "\u001c\u001d"}),
        ("false-alarm", {"reason": ""}),
    ],
    ids=["no-assignee", "blank-assignee", "separator-assignee", "no-note", "separator-note", "empty-reason"],
)
def test_lifecycle_bodies_are_validated(client: TestClient, action: str, body: dict[str, str]) -> None:
    operator = bearer(_store(client), "operator")
    event_id = str(_ingest(client, bearer(_store(client), "pipeline"))["event_id"])
    client.post(f"/events/{event_id}/acknowledge", json={}, headers=operator)

    assert client.post(f"/events/{event_id}/{action}", json=body, headers=operator).status_code == 422


def test_lifecycle_on_unknown_event_is_404(client: TestClient) -> None:
    response = client.post("/events/nope/acknowledge", json={}, headers=bearer(_store(client), "operator"))
    assert response.status_code == 404


def test_ingest_stores_snapshot_and_deduplicates_by_id_and_revision(client: TestClient) -> None:
    pipeline = bearer(_store(client), "pipeline")
    event = make_event()
    body = event_to_json(event)

    first = client.post("/ingest/events", json=body, headers=pipeline).json()
    again = client.post("/ingest/events", json=body, headers=pipeline).json()
    newer = client.post("/ingest/events", json={**body, "revision": 2}, headers=pipeline).json()
    older = client.post("/ingest/events", json=body, headers=pipeline).json()

    assert [r["is_applied"] for r in (first, again, newer, older)] == [True, False, True, False]
    assert older["stored_revision"] == 2
    viewer = bearer(_store(client), "viewer")
    assert client.get(f"/events/{event.id}/snapshot.jpg", headers=viewer).content == event.snapshot_jpeg
    metrics = client.get("/metrics").text
    assert (
        'anjian_ingested_revisions_total{behaviour="open_flame",result="applied",severity="red"} 2.0'
        in metrics
    )
    assert (
        'anjian_ingested_revisions_total{behaviour="open_flame",result="duplicate",severity="red"} 2.0'
        in metrics
    )
    assert 'anjian_events{behaviour="open_flame",severity="red",state="raised"} 1.0' in metrics


@pytest.mark.parametrize(
    "change",
    [
        {"schema_version": 2},
        {"revision": 0},
        {"last_seen_at": 1.0},
        {"severity": "purple"},
        {"extra": 1},
        {"snapshot_jpeg_b64": "***"},
        {"id": "../etc"},
    ],
    ids=["version", "revision", "time-order", "severity", "extra-field", "bad-base64", "path-id"],
)
def test_ingest_rejects_malformed_events_with_422(client: TestClient, change: dict[str, object]) -> None:
    body = {**event_to_json(make_event()), **change}

    response = client.post("/ingest/events", json=body, headers=bearer(_store(client), "pipeline"))

    assert response.status_code == 422, response.text


def test_events_filter_by_state_and_page_with_cursor_over_http(client: TestClient) -> None:
    pipeline, operator = bearer(_store(client), "pipeline"), bearer(_store(client), "operator")
    ids = [
        str(
            _ingest(client, pipeline, started_at=1_700_000_000.0 + i, last_seen_at=1_700_000_100.0)[
                "event_id"
            ]
        )
        for i in range(5)
    ]
    client.post(f"/events/{ids[0]}/acknowledge", json={}, headers=operator)

    acked = client.get("/events", params={"state": "acknowledged"}, headers=operator).json()
    raised_or_acked = client.get(
        "/events", params=[("state", "raised"), ("state", "acknowledged")], headers=operator
    )
    pages, cursor = [], None
    while True:
        params: dict[str, object] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/events", params=params, headers=operator).json()
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [item["id"] for item in acked["items"]] == [ids[0]]
    assert raised_or_acked.json()["count"] == 5
    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert client.get("/events", params={"cursor": "garbage!"}, headers=operator).status_code == 422


def _event_with_clip(client: TestClient) -> tuple[Event, Path]:
    """An event stored with ``MP4`` as its clip, and the clip's file."""
    store = _store(client)
    event = make_event()
    store.upsert_event(event)
    evidence = client.app.state.evidence  # type: ignore[attr-defined]
    relpath = evidence.save_clip(event.camera_id, event.id, MP4)
    store.attach_clip(event.id, relpath)
    return event, evidence.resolve(relpath)


def test_clip_is_served_whole_and_by_range(client: TestClient) -> None:
    store = _store(client)
    event, _ = _event_with_clip(client)
    viewer = bearer(store, "viewer")

    whole = client.get(f"/events/{event.id}/clip.mp4", headers=viewer)
    part = client.get(f"/events/{event.id}/clip.mp4", headers={**viewer, "Range": "bytes=100-199"})
    beyond = client.get(
        f"/events/{event.id}/clip.mp4", headers={**viewer, "Range": f"bytes={len(MP4) + 10}-"}
    )

    assert (whole.status_code, whole.headers["content-type"], whole.content) == (200, "video/mp4", MP4)
    assert whole.headers["accept-ranges"] == "bytes"
    assert (part.status_code, part.content) == (206, MP4[100:200])
    assert part.headers["content-range"] == f"bytes 100-199/{len(MP4)}"
    assert beyond.status_code == 416
    assert (
        client.get(f"/events/{event.id}", headers=viewer).json()["clip_url"] == f"/events/{event.id}/clip.mp4"
    )
    token = viewer["Authorization"].removeprefix("Bearer ")
    assert client.get(f"/events/{event.id}/clip.mp4?access_token={token}").status_code == 401
    assert client.post("/auth/session", headers=viewer).status_code == 200
    assert client.get(f"/events/{event.id}/clip.mp4").content == MP4, "the session cookie serves media"


@pytest.mark.parametrize(
    ("range_", "status", "expected"),
    [
        ("bytes=abc", 400, "range must be requested"),
        ("bytes=10-5", 400, "start must be less than end"),
        ("pages=1-2", 400, "Only support bytes range"),
        ("bytes=999999-", 416, "must start within them"),
    ],
    ids=["not-numbers", "backwards", "other-unit", "beyond-the-end"],
)
def test_a_bad_clip_range_is_a_problem_naming_the_header(
    client: TestClient, range_: str, status: int, expected: str
) -> None:
    store = _store(client)
    event, _ = _event_with_clip(client)

    response = client.get(
        f"/events/{event.id}/clip.mp4", headers={**bearer(store, "viewer"), "Range": range_}
    )

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert "Range header" in response.json()["detail"] and expected in response.json()["detail"]
    if status == 416:
        assert response.headers["content-range"] == f"bytes */{len(MP4)}"


def test_event_without_clip_answers_404(client: TestClient) -> None:
    event = make_event()
    _store(client).upsert_event(event)

    response = client.get(f"/events/{event.id}/clip.mp4", headers=bearer(_store(client), "viewer"))

    assert response.status_code == 404


@pytest.mark.parametrize("range_", [None, "bytes=0-9"], ids=["whole", "range"])
def test_a_clip_deleted_just_after_it_was_found_answers_404_not_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, range_: str | None
) -> None:
    """Evidence retention deletes clips: one gone between the route's check and its reading was a 500."""
    store = _store(client)
    event, path = _event_with_clip(client)
    found = events_module._evidence_path_or_404

    def found_then_deleted(*args: object) -> str:
        located = found(*args)  # type: ignore[arg-type]
        path.unlink()
        return located

    monkeypatch.setattr(events_module, "_evidence_path_or_404", found_then_deleted)
    headers = bearer(store, "viewer") | ({"Range": range_} if range_ else {})

    response = client.get(f"/events/{event.id}/clip.mp4", headers=headers)

    assert response.status_code == 404 and "missing" in response.json()["detail"]


def test_admin_manages_subscriptions_and_redelivers_dead_letters(client: TestClient) -> None:
    store = _store(client)
    admin = bearer(store, "admin")
    created = client.post(
        "/webhooks/subscriptions",
        json={
            "url": "http://127.0.0.1:9/cr",
            "secret": "0123456789abcdef",
            "kinds": ["event.created"],
            "camera_ids": ["cam-1"],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    sub = created.json()
    assert (sub["has_secret"], sub["source"], sub["kinds"]) == (True, "api", ["event.created"])
    assert "secret" not in sub
    store.upsert_event(make_event())
    (delivery,) = store.outbox.list()
    store.outbox.mark_attempt_failed(delivery.id, error="down", status_code=None, retry_at=None, now=0.0)

    dead = client.get("/webhooks/deliveries", params={"status": "failed"}, headers=admin).json()
    redelivered = client.post(f"/webhooks/deliveries/{delivery.id}/redeliver", headers=admin)
    deleted = client.delete(f"/webhooks/subscriptions/{sub['id']}", headers=admin)

    assert [d["id"] for d in dead["items"]] == [delivery.id]
    assert redelivered.status_code == 200 and redelivered.json()["status"] == "pending"
    assert deleted.json()["is_active"] is False
    assert client.get("/webhooks/subscriptions", headers=admin).json() == []
    assert client.post(f"/webhooks/deliveries/{delivery.id}/redeliver", headers=admin).status_code == 409
    assert store.outbox.get(delivery.id).status is DeliveryStatus.PENDING  # type: ignore[union-attr]


def test_config_webhooks_are_listed_but_cannot_be_deleted_through_the_api(tmp_path: Path) -> None:
    from anjian.service.config import WebhookConfig

    app = create_app(make_config(tmp_path / "data", [WebhookConfig(url="http://127.0.0.1:9/hook")]))
    try:
        client = TestClient(app)
        admin = bearer(app.state.store, "admin")
        (sub,) = client.get("/webhooks/subscriptions", headers=admin).json()
        response = client.delete(f"/webhooks/subscriptions/{sub['id']}", headers=admin)
    finally:
        app.state.store.close()

    assert sub["source"] == "config"
    assert response.status_code == 409


def test_admin_creates_and_revokes_tokens_over_the_api(client: TestClient) -> None:
    admin = bearer(_store(client), "admin")

    created = client.post("/tokens", json={"name": "night shift", "role": "viewer"}, headers=admin).json()
    viewer = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/events", headers=viewer).status_code == 200
    client.delete(f"/tokens/{created['info']['id']}", headers=admin)

    assert client.get("/events", headers=viewer).status_code == 401
    listed = client.get("/tokens", headers=admin).json()
    assert any(t["name"] == "night shift" and t["revoked_at"] for t in listed)
    assert all("token" not in t for t in listed)


def test_token_name_blank_after_trimming_is_a_422_not_a_500(client: TestClient) -> None:
    admin = bearer(_store(client), "admin")
    response = client.post("/tokens", json={"name": "\x1f\x1e", "role": "viewer"}, headers=admin)
    assert response.status_code == 422
    assert "body.name" in response.json()["detail"] and "blank" in response.json()["detail"]


def test_tokens_are_stored_only_as_hashes(client: TestClient) -> None:
    from sqlalchemy import text

    store = _store(client)
    _info, secret = store.tokens.create("x", "viewer")

    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT token_hash FROM api_tokens")).scalars().all()

    assert secret.startswith("anj_") and len(secret) >= 40
    assert secret not in rows and all(len(r) == 64 for r in rows)


def test_readyz_reports_each_check(config: AnjianConfig) -> None:
    app = create_app(config)
    try:
        not_started = TestClient(app).get("/readyz")
        with TestClient(app) as running:
            ready = running.get("/readyz")
    finally:
        app.state.store.close()

    assert not_started.status_code == 503
    assert not_started.json()["checks"] == {
        "database": True,
        "schema": True,
        "dispatcher": False,
        "disk_space": True,
    }
    assert not_started.json()["problems"] == ["the webhook dispatcher is not running"]
    assert ready.status_code == 200 and ready.json()["is_ready"] is True


def test_cors_is_off_by_default_and_on_for_configured_origins(tmp_path: Path) -> None:
    headers = {"Origin": "http://cr.example", "Access-Control-Request-Method": "GET"}
    closed = create_app(make_config(tmp_path / "a"))
    opened = create_app(make_config(tmp_path / "b", server=ServerConfig(cors_origins=["http://cr.example"])))
    try:
        off = TestClient(closed).options("/events", headers=headers)
        on = TestClient(opened).options("/events", headers=headers)
    finally:
        closed.state.store.close()
        opened.state.store.close()

    assert "access-control-allow-origin" not in off.headers
    assert on.headers["access-control-allow-origin"] == "http://cr.example"


def test_dashboard_is_served_offline_without_a_token(client: TestClient) -> None:
    page = client.get("/")
    script = client.get("/dashboard/app.js")

    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert script.status_code == 200
    for text in (page.text, script.text, client.get("/dashboard/style.css").text):
        assert "http://" not in text and "https://" not in text, "no CDN: everything is served locally"


def test_escalation_worker_escalates_through_the_app_and_counts_it(tmp_path: Path) -> None:
    from anjian.service.config import SlaConfig
    from tests.service.conftest import FakeClock

    clock = FakeClock()
    config = make_config(tmp_path / "data", sla=SlaConfig(red_s=60))
    parts = build_service_parts(config, clock=clock)
    store = parts.store
    app = create_app(config, parts)
    try:
        store.upsert_event(make_event())
        clock.now += 61
        escalated = app.state.escalator.run_once()
        metrics = TestClient(app).get("/metrics").text
    finally:
        parts.close()

    assert len(escalated) == 1
    assert "anjian_escalations_total 1.0" in metrics
