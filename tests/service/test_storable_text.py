"""A NUL character (U+0000) anywhere a client sends text is a 422 naming it, never a 500 or 503.

PostgreSQL refuses U+0000 in a text column (SQLite stores it), so each test runs on
both: on PostgreSQL these requests used to answer 500 (or 503 for ingest, which the
pipeline retried forever), on SQLite they stored the NUL.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from anjian.pipeline.event_json import event_to_json
from anjian.service.api.routing import loads_strict_json
from anjian.service.app import create_app
from anjian.service.storable_text import check_storable_text, unstorable_reason
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.conftest import bearer, make_config

EVENT_ID = "evt-1"


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    app = create_app(make_config(tmp_path / "data", database_url=database_url))
    app.state.store.upsert_event(make_event(id=EVENT_ID))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.store.close()


def _headers(client: TestClient, role: str) -> dict[str, str]:
    return bearer(client.app.state.store, role)  # type: ignore[attr-defined]


def _cursor(started_at: float, event_id: str) -> str:
    raw = json.dumps([started_at, event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/events/%00", "event_id"),
        ("/events/a%00/audit", "event_id"),
        ("/events?camera_id=%00", "camera_id"),
        ("/events?site_id=cam%00", "site_id"),
        ("/webhooks/deliveries?event_id=%00", "event_id"),
        (f"/events?cursor={_cursor(0, chr(0))}", "cursor"),
    ],
    ids=["event", "audit", "camera-filter", "site-filter", "deliveries-filter", "cursor"],
)
def test_a_nul_in_an_id_of_the_path_or_query_is_a_422(client: TestClient, path: str, where: str) -> None:
    response = client.get(path, headers=_headers(client, "admin"))

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert where in response.text


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("acknowledge", {"note": "seen\u0000"}, "note"),
        ("dispatch", {"assignee": "team\u0000a"}, "assignee"),
    ],
    ids=["note", "assignee"],
)
def test_a_nul_in_a_lifecycle_note_is_a_422_and_changes_nothing(
    client: TestClient, action: str, body: dict[str, str], field: str
) -> None:
    operator = _headers(client, "operator")
    if action == "dispatch":
        assert client.post(f"/events/{EVENT_ID}/acknowledge", json={}, headers=operator).status_code == 200

    response = client.post(f"/events/{EVENT_ID}/{action}", json=body, headers=operator)

    assert response.status_code == 422, response.text
    assert f"body.{field}" in response.json()["detail"] and "NUL" in response.json()["detail"]
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    assert len(store.audit_trail(EVENT_ID)) == (2 if action == "dispatch" else 1)


@pytest.mark.parametrize("field", ["message", "model_version"])
def test_a_nul_in_an_ingested_event_is_a_422_naming_it_and_the_next_event_is_stored(
    client: TestClient, field: str
) -> None:
    pipeline = _headers(client, "pipeline")
    bad, good = make_event(**{field: "fire\u0000here"}), make_event()

    refused = client.post("/ingest/events", json=event_to_json(bad), headers=pipeline)
    refused_batch = client.post("/ingest/batch", json={"events": [event_to_json(bad)]}, headers=pipeline)
    taken = client.post("/ingest/events", json=event_to_json(good), headers=pipeline)

    assert refused.status_code == 422, refused.text  # not 503: the pipeline sets it aside
    assert f"body.{field}" in refused.json()["detail"] and "NUL" in refused.json()["detail"]
    assert refused_batch.status_code == 422, refused_batch.text
    assert f"body.events[0].{field}" in refused_batch.json()["detail"]
    assert taken.status_code == 200, taken.text
    store: EventStore = client.app.state.store  # type: ignore[attr-defined]
    assert store.get_event(bad.id) is None and store.get_event(good.id) is not None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a\x00b", "holds a NUL character (U+0000)"),
        ("\ud800", "holds an unpaired UTF-16 surrogate"),
        ("fire \U0001f525", None),
        ("", None),
    ],
    ids=["nul", "surrogate", "emoji", "empty"],
)
def test_unstorable_reason_names_what_the_database_cannot_store(text: str, reason: str | None) -> None:
    assert unstorable_reason(text) == reason
    if reason is None:
        assert check_storable_text(text) == text
    else:
        with pytest.raises(ValueError, match=re.escape(reason)):
            check_storable_text(text)


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"a": ["ok", "x\u0000"]}, "body.a[1]"),
        ({"a\u0000": 1}, "body (a member name)"),
    ],
    ids=["nested", "member-name"],
)
def test_loads_strict_json_refuses_a_nul_naming_where(document: Any, path: str) -> None:
    with pytest.raises(json.JSONDecodeError, match="NUL") as info:
        loads_strict_json(json.dumps(document).encode())
    assert path in str(info.value)
