"""``GET /events?updated_after=``: what changed since a time, page by page (the dashboard after a reconnect).

A dashboard whose live feed was down fetched each alert settled meanwhile with its own
``GET /events/{id}``, one after another (1,000 settled: 1,000 requests). It now asks the list for
the events changed after the newest change it heard, with the list's paging and caps.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from anjian.service.config import AnjianConfig
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.conftest import FakeClock, bearer

T0 = 1_800_000_000.0


@pytest.fixture
def served(config: AnjianConfig, clock: FakeClock) -> Iterator[tuple[TestClient, EventStore]]:
    """A viewer's client of a service whose store runs on ``clock``, and that store."""
    parts = build_service_parts(config, camera_health=list, clock=clock)
    client = TestClient(create_app(config, parts))
    client.headers.update(bearer(parts.store, "viewer"))
    yield client, parts.store
    parts.close()


def _listed(client: TestClient, **params: str | float) -> tuple[list[str], list[int]]:
    """The ids of every page of ``GET /events`` with ``params``, and the size of each page."""
    ids: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        response = client.get("/events", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        sizes.append(page["count"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, sizes


def test_updated_after_lists_only_the_events_changed_since_page_by_page(
    served: tuple[TestClient, EventStore], clock: FakeClock
) -> None:
    client, store = served
    clock.now = T0
    events = [
        make_event(started_at=1_700_000_000.0 + i, last_seen_at=1_700_000_001.0 + i, snapshot_jpeg=None)
        for i in range(7)
    ]
    store.upsert_events([(event, None) for event in events])
    clock.now = T0 + 60  # while a dashboard's feed was down: four alerts acted on, one resolved, one new
    for event in events[1:5]:
        store.transition(event.id, "acknowledge", actor="other screen")
    store.transition(events[1].id, "resolve", actor="other screen", note="put out")
    new = make_event(
        camera_id="cam-2", started_at=1_700_000_100.0, last_seen_at=1_700_000_101.0, snapshot_jpeg=None
    )
    store.upsert_event(new)

    ids, sizes = _listed(client, updated_after="2027-01-15T08:00:30Z", limit=2)  # T0 + 30 s

    assert ids == [new.id, events[4].id, events[3].id, events[2].id, events[1].id], "newest started first"
    assert sizes == [2, 2, 1]
    assert _listed(client, updated_after=T0 + 30, state="acknowledged")[0] == [e.id for e in events[4:1:-1]]
    assert _listed(client, updated_after=T0 + 60)[0] == [], "strictly after: nothing changed after T0 + 60"
    assert len(_listed(client, updated_after=T0 - 1)[0]) == 8


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2027-13-01T00:00:00Z", ""],
    ids=["text", "month-13", "empty"],
)
def test_a_bad_updated_after_is_a_422_naming_the_parameter(
    served: tuple[TestClient, EventStore], value: str
) -> None:
    client, _ = served

    response = client.get("/events", params={"updated_after": value})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["instance"]) == (422, "/events")
    assert problem["detail"].startswith("query.updated_after: Input should be a valid datetime")
