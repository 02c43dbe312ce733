"""One event model: ingest takes the pipeline's wire model as it is, and what it carries is stored and shown.

``track_id`` is the witness: the rules set it and the wire carried it, but no column,
record, API field or webhook did.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from anjian.pipeline.event import Event, IncidentFacts
from anjian.pipeline.event_json import event_to_json
from anjian.pipeline.event_wire import EventBoxWire, EventWire
from anjian.service.app import create_app
from anjian.service.config import WebhookConfig
from anjian.service.records import StoredEvent
from anjian.service.schemas import BoxOut, EventOut
from tests.factories import make_event
from tests.service.conftest import bearer, make_config
from tests.support.receiver import Receiver


def test_track_id_travels_from_ingest_to_the_store_the_api_and_the_webhook_body(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = make_config(tmp_path / "data", [WebhookConfig(url=receiver.url)], camera_ids=("cam-1",))
    event = make_event(track_id=4_000_000_123)  # beyond 32 bits: the column is a BIGINT
    other = make_event(track_id=None)

    with TestClient(create_app(config)) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        pipeline, viewer = bearer(store, "pipeline"), bearer(store, "viewer")
        for each in (event, other):
            assert (
                client.post("/ingest/events", json=event_to_json(each), headers=pipeline).status_code == 200
            )
        stored = store.get_event(event.id)
        shown = client.get(f"/events/{event.id}", headers=viewer).json()
        listed = {
            item["id"]: item["track_id"] for item in client.get("/events", headers=viewer).json()["items"]
        }
        hits = receiver.wait_for_requests(2)

    assert stored is not None and stored.track_id == 4_000_000_123
    assert shown["track_id"] == 4_000_000_123
    assert listed == {event.id: 4_000_000_123, other.id: None}
    bodies = {body["event"]["id"]: body for body in (json.loads(hit.body) for hit in hits)}
    assert bodies[event.id]["event"]["track_id"] == 4_000_000_123
    assert bodies[event.id]["kind"] == "event.created"
    assert bodies[other.id]["event"]["track_id"] is None


def test_the_ingest_routes_take_the_pipelines_wire_model_as_their_body(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data"))
    try:
        schema = TestClient(app).get("/openapi.json").json()
    finally:
        app.state.sink.stop()
        app.state.store.close()

    def body_ref(path: str) -> str:
        content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        return str(content["schema"]["$ref"])

    components = schema["components"]["schemas"]
    assert body_ref("/ingest/events") == "#/components/schemas/EventWire"
    batch = components[body_ref("/ingest/batch").rsplit("/", 1)[1]]
    assert batch["properties"]["events"]["items"] == {"$ref": "#/components/schemas/EventWire"}
    assert not [name for name in components if name.startswith(("IngestEvent", "IngestBox"))]
    wire = components["EventWire"]["properties"]
    assert wire["snapshot_jpeg_b64"]["anyOf"][0]["contentEncoding"] == "base64"
    assert wire["track_id"]["anyOf"][0]["type"] == "integer"


def test_a_malformed_event_is_refused_by_the_body_model_naming_the_field(tmp_path: Path) -> None:
    """Every rule of the wire is the model's: the time order too (it used to be a second, hand-written check)."""
    app = create_app(make_config(tmp_path / "data"))
    body = {**event_to_json(make_event()), "last_seen_at": 1.0}
    try:
        response = TestClient(app).post(
            "/ingest/events", json=body, headers=bearer(app.state.store, "pipeline")
        )
    finally:
        app.state.sink.stop()
        app.state.store.close()

    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["loc"], error["type"]) == (["body", "last_seen_at"], "time_order")
    assert "must not precede started_at" in error["msg"]


def _description(model: Any, name: str) -> str | None:
    description: str | None = model.model_fields[name].description
    return description


def test_the_api_shows_the_facts_of_an_event_with_the_wire_models_definitions() -> None:
    # Alike in name, different in meaning: the API's colour is the escalated one, its times are UTC.
    different = {"severity", "started_at", "last_seen_at", "ended_at"}
    shared = (set(EventOut.model_fields) & set(EventWire.model_fields)) - different

    assert len(shared) == 13 and {"track_id", "sensor"} <= shared
    for name in shared:
        assert _description(EventOut, name) == _description(EventWire, name), name
        assert _description(EventOut, name), name
    assert _description(EventOut, "detected_severity") == _description(EventWire, "severity")
    for name in ("class_name", "confidence", "xyxy_norm"):
        assert _description(BoxOut, name) == _description(EventBoxWire, name), name


def test_the_stored_record_keeps_every_field_of_the_pipelines_event_but_the_evidence_bytes() -> None:
    def names(record: type[Any]) -> set[str]:
        return {field.name for field in dataclasses.fields(record)}

    assert issubclass(Event, IncidentFacts) and issubclass(StoredEvent, IncidentFacts)
    assert names(Event) - names(StoredEvent) == {"snapshot_jpeg", "clip_mp4"}  # kept as files: *_path
