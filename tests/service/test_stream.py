"""The live feed over a real server: changes arrive as Server-Sent Events; browsers use the session cookie."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from anjian.pipeline.event_json import event_to_json
from anjian.service.app import create_app
from tests.factories import make_event
from tests.service.conftest import make_config
from tests.service.server import ServerThread


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return create_app(make_config(tmp_path / "data"))


@pytest.fixture
def server(app: FastAPI) -> Iterator[ServerThread]:
    server = ServerThread(app).start()
    yield server
    server.stop()


def _messages(lines: Iterator[str]) -> Iterator[dict[str, object]]:
    """Parse ``event: event`` SSE messages into their JSON data."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name == "event":
            yield json.loads(line.removeprefix("data: "))


def test_new_and_acknowledged_event_arrive_on_the_live_feed(app: FastAPI, server: ServerThread) -> None:
    store = app.state.store
    viewer = {"Authorization": f"Bearer {store.tokens.create('wall screen', 'viewer')[1]}"}
    pipeline = {"Authorization": f"Bearer {store.tokens.create('p', 'pipeline')[1]}"}
    operator = {"Authorization": f"Bearer {store.tokens.create('o', 'operator')[1]}"}
    event = make_event()

    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        client.post("/auth/session", headers=viewer).raise_for_status()  # the cookie EventSource sends
        with client.stream("GET", "/stream") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert next(lines) == "retry: 2000"
            client.post("/ingest/events", json=event_to_json(event), headers=pipeline).raise_for_status()
            messages = _messages(lines)
            first = next(messages)
            assert (first["id"], first["state"], first["version"]) == (event.id, "raised", 1)
            client.post(f"/events/{event.id}/acknowledge", json={}, headers=operator).raise_for_status()
            second = next(messages)
            assert (second["id"], second["state"], second["version"]) == (event.id, "acknowledged", 2)


@pytest.mark.parametrize(
    ("params", "cookies"),
    [
        ({}, {}),
        ({}, {"anjian_session": "1.99999999999.forged"}),
        ({"access_token": "TOKEN"}, {}),
    ],
    ids=["none", "forged-cookie", "token-in-url"],
)
def test_live_feed_needs_a_bearer_token_or_a_genuine_session(
    app: FastAPI, server: ServerThread, params: dict[str, str], cookies: dict[str, str]
) -> None:
    viewer = app.state.store.tokens.create("wall screen", "viewer")[1]
    params = {k: v.replace("TOKEN", viewer) for k, v in params.items()}

    response = httpx.get(f"{server.base_url}/stream", params=params, cookies=cookies, timeout=5)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_a_burst_of_more_changes_than_a_page_and_the_alert_after_it_all_arrive(
    app: FastAPI, server: ServerThread
) -> None:
    """A replayed backlog stores hundreds of revisions within a second: the feed read the same first
    500 on every poll and showed nothing after them again (its heartbeat kept the browser connected)."""
    store = app.state.store
    viewer = {"Authorization": f"Bearer {store.tokens.create('wall screen', 'viewer')[1]}"}
    burst = [make_event(snapshot_jpeg=None) for _ in range(700)]
    fire = make_event(camera_id="cam-2", snapshot_jpeg=None)

    with (
        httpx.Client(base_url=server.base_url, timeout=30) as client,
        client.stream("GET", "/stream", headers=viewer) as response,
    ):
        lines = response.iter_lines()
        assert next(lines) == "retry: 2000"
        for start in range(0, len(burst), 256):  # the ingest writer's batches
            store.upsert_events([(event, None) for event in burst[start : start + 256]])
        store.upsert_event(fire)
        seen: set[object] = set()
        pings = 0
        name = ""
        for line in lines:  # until the alert after the burst, or three heartbeats (45 s) without it
            pings += line.startswith(": ping")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name == "event":
                seen.add(json.loads(line.removeprefix("data: "))["id"])
            if fire.id in seen or pings == 3:
                break

    assert seen == {event.id for event in burst} | {fire.id}
