"""POST /ingest/events: only the site's own cameras, acknowledged once committed, 503 while the writer is full."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError

from anjian.pipeline.event import Event
from anjian.pipeline.event_json import event_to_json
from anjian.service.app import create_app
from anjian.service.sink import StoreSink
from anjian.service.store import EventStore, UpsertResult
from tests.factories import make_event
from tests.service.conftest import bearer, make_config
from tests.support.receiver import wait_until


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_config(tmp_path / "data", camera_ids=("cam-1",)))
    client = TestClient(app)
    client.headers.update(bearer(app.state.store, "pipeline"))
    yield client
    app.state.sink.stop()
    app.state.store.close()


def test_an_acknowledged_revision_is_already_stored(client: TestClient) -> None:
    event = make_event()

    response = client.post("/ingest/events", json=event_to_json(event))

    assert response.status_code == 200
    assert response.json()["is_applied"] is True
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    stored = store.get_event(event.id)
    assert stored is not None and stored.snapshot_path is not None


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"camera_id": "cam-9"}, "camera 'cam-9' is not a camera of site 'site-1'"),
        ({"site_id": "other-site"}, "site 'other-site' is not this service's site ('site-1')"),
        ({"workshop_id": "freezing-2"}, "camera 'cam-1' belongs to workshop 'polishing-1', not 'freezing-2'"),
    ],
    ids=["unknown-camera", "other-site", "wrong-workshop"],
)
def test_events_of_cameras_the_site_does_not_have_are_refused(
    client: TestClient, overrides: dict[str, Any], detail: str
) -> None:
    event = make_event(**overrides)

    response = client.post("/ingest/events", json=event_to_json(event))

    assert response.status_code == 422
    assert detail in response.json()["detail"]
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    assert store.get_event(event.id) is None


def test_a_full_writer_answers_503_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path / "data")
    app = create_app(config)
    store: EventStore = app.state.store
    gate, waiting = threading.Event(), threading.Event()
    upsert = store.upsert_events

    def gated(items: Sequence[tuple[Event, str | None]]) -> list[UpsertResult]:
        waiting.set()
        gate.wait(30)
        return upsert(items)

    monkeypatch.setattr(store, "upsert_events", gated)
    sink = StoreSink(store, app.state.evidence, max_backlog=1)
    app.state.sink = sink
    client = TestClient(app, headers=bearer(store, "pipeline"))
    first = make_event()
    answers: list[int] = []
    sender = threading.Thread(
        target=lambda: answers.append(client.post("/ingest/events", json=event_to_json(first)).status_code)
    )
    sender.start()
    try:
        assert waiting.wait(10)
        refused = client.post("/ingest/events", json=event_to_json(make_event()))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "waiting to be stored" in refused.json()["detail"]
    finally:
        gate.set()
        sender.join(30)
        sink.stop()
        store.close()
    wait_until(lambda: answers == [200])


def test_a_batch_is_stored_whole_and_answered_in_order(client: TestClient) -> None:
    events = [make_event() for _ in range(5)]
    duplicate = events[1]

    response = client.post("/ingest/batch", json={"events": [event_to_json(e) for e in [*events, duplicate]]})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["event_id"] for r in results] == [e.id for e in [*events, duplicate]]
    assert [r["is_applied"] for r in results] == [True] * 5 + [False]
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    for event in events:
        stored = store.get_event(event.id)
        assert stored is not None and stored.snapshot_path is not None


def test_one_refused_event_refuses_the_batch_naming_it_and_stores_nothing(client: TestClient) -> None:
    good, bad = make_event(), make_event(camera_id="cam-9")

    response = client.post("/ingest/batch", json={"events": [event_to_json(good), event_to_json(bad)]})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("events[1]: camera 'cam-9' is not a camera")
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    assert store.get_event(good.id) is None


@pytest.mark.parametrize("events", [[], None], ids=["empty", "missing"])
def test_an_empty_or_missing_batch_is_refused(client: TestClient, events: list[Any] | None) -> None:
    response = client.post("/ingest/batch", json={} if events is None else {"events": events})

    assert response.status_code == 422


@pytest.fixture
def two_camera_client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_config(tmp_path / "data", camera_ids=("cam-1", "cam-2")))
    client = TestClient(app)
    client.headers.update(bearer(app.state.store, "pipeline"))
    yield client
    app.state.sink.stop()
    app.state.store.close()


@pytest.mark.parametrize(
    ("field", "value"), [("camera_id", "cam-2"), ("behaviour", "smoking")], ids=["camera", "behaviour"]
)
def test_a_revision_that_moves_its_incident_is_a_422_naming_the_field_and_both_values(
    two_camera_client: TestClient, field: str, value: str
) -> None:
    client = two_camera_client
    first = make_event()
    assert client.post("/ingest/events", json=event_to_json(first)).status_code == 200
    moved = {**event_to_json(first), "revision": 3, field: value}

    response = client.post("/ingest/events", json=moved)

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert f"{field} is {value!r}" in detail and repr(str(getattr(first, field))) in detail
    assert first.id in detail
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    stored = store.get_event(first.id)
    assert stored is not None and (stored.revision, stored.camera_id, stored.behaviour) == (
        1,
        "cam-1",
        "open_flame",
    )


def test_a_batch_refuses_only_the_revision_that_moves_its_incident_naming_its_index(
    two_camera_client: TestClient,
) -> None:
    client = two_camera_client
    first, other = make_event(), make_event()
    assert client.post("/ingest/events", json=event_to_json(first)).status_code == 200
    moved = {**event_to_json(first), "revision": 2, "camera_id": "cam-2"}

    response = client.post("/ingest/batch", json={"events": [event_to_json(other), moved]})

    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"events[1]: revision 2 of event {first.id!r} is refused")
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    assert store.get_event(other.id) is not None, "the rest of the batch is stored"
    resent = client.post("/ingest/events", json=event_to_json(other))
    assert resent.status_code == 200 and resent.json()["is_applied"] is False


def test_a_revision_the_database_refuses_is_a_422_naming_it_not_a_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A value the database cannot hold (PostgreSQL raises DataError, e.g. for a NUL) is no outage:
    # a 503 made the pipeline send it again forever.
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    upsert = store.upsert_events

    def refusing(items: Sequence[tuple[Event, str | None]]) -> list[UpsertResult]:
        if any(event.model_version == "refused" for event, _ in items):
            raise DataError("INSERT INTO events …", {}, ValueError("value out of range for type real"))
        return upsert(items)

    monkeypatch.setattr(store, "upsert_events", refusing)
    bad, good = make_event(model_version="refused"), make_event()

    single = client.post("/ingest/events", json=event_to_json(bad))
    batch = client.post("/ingest/batch", json={"events": [event_to_json(good), event_to_json(bad)]})

    assert single.status_code == 422, single.text
    assert bad.id in single.json()["detail"] and "value out of range" in single.json()["detail"]
    assert batch.status_code == 422, batch.text
    assert batch.json()["detail"].startswith(f"events[1]: revision 1 of event {bad.id!r} is refused")
    assert store.get_event(good.id) is not None and store.get_event(bad.id) is None


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("snapshot_jpeg_b64", "aGVsbG8=", "expected JPEG bytes"),  # "hello"
        ("snapshot_jpeg_b64", "", "expected JPEG bytes"),
        ("clip_mp4_b64", "AAAAGG1vb3Zpc29t", "expected MP4 bytes"),  # a box, but no ftyp
    ],
    ids=["text-as-snapshot", "empty-snapshot", "clip-without-ftyp"],
)
def test_evidence_that_is_not_what_its_field_says_is_a_422_naming_the_field(
    client: TestClient, field: str, value: str, expected: str
) -> None:
    event = make_event()

    response = client.post("/ingest/events", json={**event_to_json(event), field: value})

    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == ["body", field] and expected in error["msg"]
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    assert store.get_event(event.id) is None
