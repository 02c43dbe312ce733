"""POST /ingest/events: only the site's own cameras, acknowledged once committed, 503 while the writer is full."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

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
