"""The live feed over a real server: changes arrive as Server-Sent Events; browsers use the session cookie.

A reconnecting client resumes where it left off, and a feed ends once its token is revoked or its session expires.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from anjian.pipeline.event import Event
from anjian.pipeline.event_json import event_to_json
from anjian.service.api import stream as stream_module
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.conftest import bearer
from tests.service.server import ServerThread


def _messages(lines: Iterator[str]) -> Iterator[dict[str, object]]:
    """Parse ``event: event`` SSE messages into their JSON data."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name == "event":
            yield json.loads(line.removeprefix("data: "))


@pytest.fixture
def viewer(app: FastAPI) -> dict[str, str]:
    """Headers carrying a wall screen's viewer token."""
    return bearer(app.state.store, "viewer", "wall screen")


def test_new_and_acknowledged_event_arrive_on_the_live_feed(
    app: FastAPI, server: ServerThread, viewer: dict[str, str]
) -> None:
    store = app.state.store
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
    app: FastAPI, server: ServerThread, viewer: dict[str, str]
) -> None:
    """A replayed backlog stores hundreds of revisions within a second: the feed read the same first
    500 on every poll and showed nothing after them again (its heartbeat kept the browser connected)."""
    store = app.state.store
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


def _lines_until(lines: Iterator[str], wanted: str, *, max_pings: int) -> tuple[list[str], list[str], bool]:
    """The ids and event ids of the messages read until one names ``wanted`` (or ``max_pings`` heartbeats),
    and whether the stream ended first."""
    ids: list[str] = []
    seen: list[str] = []
    pings = 0
    name = ""
    for line in lines:
        pings += line.startswith(": ping")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("id: "):
            ids.append(line.removeprefix("id: "))
        elif line.startswith("data: ") and name == "event":
            seen.append(str(json.loads(line.removeprefix("data: "))["id"]))
        if wanted in seen or pings >= max_pings:
            return ids, seen, False
    return ids, seen, True


@pytest.fixture
def quick_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Heartbeats and credential checks every fraction of a second, and no look-back: a change made
    before a connection opened reaches it only by a resume."""
    monkeypatch.setattr(stream_module, "_HEARTBEAT_S", 0.2)
    monkeypatch.setattr(stream_module, "_RECHECK_S", 0.1)
    monkeypatch.setattr(stream_module, "_OVERLAP_S", 0.0)


def _hear(lines: Iterator[str], store: EventStore, event: Event) -> str:
    """Store ``event`` and read the open feed until it arrives: the id of its message, to resume from."""
    store.upsert_event(event)
    ids, _, _ = _lines_until(lines, event.id, max_pings=50)
    assert ids == [f"{event.id}:1"]
    return ids[-1]


def _resume(
    client: httpx.Client, headers: dict[str, str], last_event_id: str, wanted: str
) -> tuple[list[str], bool]:
    """Reconnect after ``last_event_id``: the event ids sent until ``wanted`` (or ten heartbeats), and whether
    the feed ended first."""
    with client.stream("GET", "/stream", headers={**headers, "Last-Event-ID": last_event_id}) as response:
        _, seen, has_ended = _lines_until(response.iter_lines(), wanted, max_pings=10)
    return seen, has_ended


@pytest.mark.usefixtures("quick_feed")
def test_a_reconnecting_client_gets_the_changes_made_while_it_was_away(
    app: FastAPI, server: ServerThread, viewer: dict[str, str]
) -> None:
    """``EventSource`` reconnects with ``Last-Event-ID``: what changed in between was lost for good when
    the gap was longer than the feed's look-back (a restart, a network drop)."""
    store = app.state.store
    heard = make_event(snapshot_jpeg=None)
    missed = make_event(camera_id="cam-2", snapshot_jpeg=None)

    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        with client.stream("GET", "/stream", headers=viewer) as response:
            last_event_id = _hear(response.iter_lines(), store, heard)
        store.upsert_event(missed)  # while the client is away
        seen, _ = _resume(client, viewer, last_event_id, missed.id)

    assert seen == [missed.id], "the missed change is replayed; the revision the client has is not sent again"


@pytest.mark.usefixtures("quick_feed")
def test_a_replay_the_database_cuts_short_is_tried_again_on_the_same_connection(
    app: FastAPI,
    server: ServerThread,
    viewer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The replay ran once: a database error cut it short for good and the gap was never sent on that
    connection (only the dashboard's own reload covered it; s19 diff review, finding 2)."""
    store = app.state.store
    heard = make_event(snapshot_jpeg=None)
    missed = make_event(camera_id="cam-2", snapshot_jpeg=None)
    store.upsert_event(heard)
    store.upsert_event(missed)  # while the client is away
    heard_at = store.get_event(heard.id).updated_at
    changed_since = store.changed_since
    failures = [2]  # the replay's first two reads fail (the poller reads from later on)

    def flaky(since: float, **kwargs: object) -> object:
        if since <= heard_at and failures[0] > 0:
            failures[0] -= 1
            raise OperationalError("SELECT", {}, Exception("database is locked"))
        return changed_since(since, **kwargs)

    monkeypatch.setattr(store, "changed_since", flaky)
    with (
        caplog.at_level(logging.INFO, logger="anjian.service.api.stream"),
        httpx.Client(base_url=server.base_url, timeout=15) as client,
    ):
        seen, has_ended = _resume(client, viewer, f"{heard.id}:1", missed.id)

    assert (seen, has_ended) == ([missed.id], False), "the missed change comes once the database answers"
    assert failures == [0], "the replay met the errors"
    # (the shared poller may meet one of the two errors first, when its look-back reaches that far on a slow box)
    assert any("the replay got through after" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "version",
    [b"\xb2", b"\xd9\xa3", b"", b"-1", b"1x"],
    ids=["superscript-two", "arabic-three", "empty", "negative", "junk"],
)
def test_a_malformed_last_event_id_is_ignored_rather_than_a_500(
    app: FastAPI, server: ServerThread, viewer: dict[str, str], version: bytes
) -> None:
    """``"²".isdigit()`` holds and ``int("²")`` raises: such an id (a real event's, at version ``²``) was a 500."""
    store = app.state.store
    heard = make_event(snapshot_jpeg=None)
    store.upsert_event(heard)

    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        last_event_id = heard.id.encode() + b":" + version  # bytes as a client may send them
        with client.stream("GET", "/stream", headers={**viewer, "Last-Event-ID": last_event_id}) as response:
            assert response.status_code == 200
            assert next(response.iter_lines()) == "retry: 2000"


@pytest.mark.usefixtures("quick_feed")
def test_a_client_whose_last_event_changed_since_resumes_from_the_time_it_passes(
    app: FastAPI, server: ServerThread, viewer: dict[str, str]
) -> None:
    store = app.state.store
    heard = make_event(snapshot_jpeg=None)
    store.upsert_event(heard)
    away_since = time.time()
    store.transition(heard.id, "acknowledge", actor="night shift")  # version 2: its id no longer says when
    missed = make_event(camera_id="cam-2", snapshot_jpeg=None)
    store.upsert_event(missed)

    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        stale = {**viewer, "Last-Event-ID": f"{heard.id}:1"}
        with client.stream("GET", "/stream", headers=stale) as response:
            _, without_since, _ = _lines_until(response.iter_lines(), missed.id, max_pings=5)
        with client.stream("GET", "/stream", headers=stale, params={"since": away_since}) as response:
            _, with_since, _ = _lines_until(response.iter_lines(), missed.id, max_pings=10)

    assert without_since == [], "from now on: the client must reload (the dashboard does)"
    assert set(with_since) == {heard.id, missed.id}


@pytest.mark.usefixtures("quick_feed")
@pytest.mark.parametrize("by_cookie", [True, False], ids=["session-cookie", "bearer"])
def test_revoking_the_token_ends_its_open_live_feed(
    app: FastAPI, server: ServerThread, by_cookie: bool
) -> None:
    """A revoked screen (a lost laptop, a former employee) kept receiving every alert over the open feed."""
    store = app.state.store
    token, secret = store.tokens.create("wall screen", "viewer")
    token_headers = {"Authorization": f"Bearer {secret}"}
    before = make_event(snapshot_jpeg=None)

    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        if by_cookie:
            client.post("/auth/session", headers=token_headers).raise_for_status()
        with client.stream("GET", "/stream", headers={} if by_cookie else token_headers) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            store.upsert_event(before)
            _, seen, _ = _lines_until(lines, before.id, max_pings=50)
            assert seen == [before.id], (
                "the feed checks its caller again and goes on while the token is valid"
            )
            store.tokens.revoke(token.id)
            _, _, has_ended = _lines_until(lines, "-", max_pings=50)
        again = client.get("/stream", headers={} if by_cookie else token_headers)

    assert has_ended, "the feed ended once its token was revoked"
    assert again.status_code == 401


@pytest.mark.usefixtures("quick_feed")
def test_the_live_feed_ends_when_its_session_expires(
    app: FastAPI, server: ServerThread, viewer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        client.post("/auth/session", headers=viewer).raise_for_status()
        with client.stream("GET", "/stream") as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines) == "retry: 2000"
            later = time.time() + app.state.sessions.ttl_s + 1
            monkeypatch.setattr(app.state.sessions, "_clock", lambda: later)
            _, _, has_ended = _lines_until(lines, "-", max_pings=50)

    assert has_ended, (
        "the cookie the feed was opened with has expired: the browser reconnects with its renewed one"
    )


@pytest.mark.usefixtures("quick_feed")
def test_changes_after_the_clock_steps_back_still_arrive(
    app: FastAPI, server: ServerThread, viewer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """NTP stepping back a clock that ran ahead: what was stored next was stamped before what the feed had
    sent, and the open feed showed nothing new (no alert, no tone) until the clock caught up."""
    store = app.state.store
    before = make_event(snapshot_jpeg=None)
    after = make_event(camera_id="cam-2", snapshot_jpeg=None)

    with (
        httpx.Client(base_url=server.base_url, timeout=15) as client,
        client.stream("GET", "/stream", headers=viewer) as response,
    ):
        lines = response.iter_lines()
        store.upsert_event(before)
        _, seen, _ = _lines_until(lines, before.id, max_pings=50)
        assert seen == [before.id]
        monkeypatch.setattr(
            store, "_clock", lambda: time.time() - 120.0
        )  # the store stamps 2 minutes earlier
        store.upsert_event(after)
        _, seen, _ = _lines_until(lines, after.id, max_pings=50)

    assert seen == [after.id], "the change after the step arrives; the one before it is not sent again"
