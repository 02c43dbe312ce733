"""The live feed's fan-out: many screens cost one poll and one encoding per change, not one per screen.

Twenty wall screens each polled the store and encoded every change themselves: a burst of
1,000 changes took 7 s of server CPU and operators' requests waited up to 2.2 s (s19 scale
review, finding 2). A screen that falls too far behind is ended (it reconnects and reloads),
and nothing is left running once the screens leave or the app stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from anjian.service.api import stream as stream_module
from anjian.service.api.stream import LiveFeed
from anjian.service.records import StoredEvent
from anjian.service.schemas import EventOut
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.server import ServerThread
from tests.support.receiver import wait_until

SCREENS = 6
BURST = 60


class _Counted:
    """Calls of the store's change query and of the feed's encoding, from the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.queries = 0
        self.encoded = 0

    def add(self, *, queries: int = 0, encoded: int = 0) -> None:
        with self._lock:
            self.queries += queries
            self.encoded += encoded


@pytest.fixture
def counted(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> _Counted:
    counted = _Counted()
    store = app.state.store
    changed_since = store.changed_since

    def counting_changed_since(*args: Any, **kwargs: Any) -> list[StoredEvent]:
        counted.add(queries=1)
        return cast(list[StoredEvent], changed_since(*args, **kwargs))

    class CountingEventOut:
        @staticmethod
        def from_stored(event: StoredEvent) -> EventOut:
            counted.add(encoded=1)
            return EventOut.from_stored(event)

    monkeypatch.setattr(store, "changed_since", counting_changed_since)
    monkeypatch.setattr(stream_module, "EventOut", CountingEventOut)
    return counted


def _event_ids(lines: Iterator[str], wanted: int) -> set[str]:
    """The ids of the next ``wanted`` events the feed sends, each once."""
    seen: list[str] = []
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name == "event":
            seen.append(str(json.loads(line.removeprefix("data: "))["id"]))
            if len(set(seen)) == wanted:
                break
    assert len(seen) == len(set(seen)), "no change is sent twice"
    return set(seen)


def _open_screens(stack: ExitStack, client: httpx.Client, viewer: dict[str, str]) -> list[Iterator[str]]:
    """``SCREENS`` open feeds, each past its first line."""
    feeds = []
    for _ in range(SCREENS):
        response = stack.enter_context(client.stream("GET", "/stream", headers=viewer))
        lines = response.iter_lines()
        assert next(lines) == "retry: 2000"
        feeds.append(lines)
    return feeds


def test_a_burst_reaches_every_screen_but_each_change_is_read_and_encoded_once(
    app: FastAPI, server: ServerThread, counted: _Counted
) -> None:
    store = app.state.store
    viewer = {"Authorization": f"Bearer {store.tokens.create('wall screen', 'viewer')[1]}"}
    marker = make_event(camera_id="cam-2", snapshot_jpeg=None)
    burst = [make_event(snapshot_jpeg=None) for _ in range(BURST)]

    with ExitStack() as stack:
        client = stack.enter_context(httpx.Client(base_url=server.base_url, timeout=30))
        feeds = _open_screens(stack, client, viewer)
        store.upsert_event(marker)
        for lines in feeds:  # every screen is past its own look-back, fed by the shared poller
            assert _event_ids(lines, 1) == {marker.id}
        feed: LiveFeed = app.state.live_feed
        polls, queries, encoded = feed.polls, counted.queries, counted.encoded
        store.upsert_events([(event, None) for event in burst])
        for lines in feeds:
            assert _event_ids(lines, BURST) == {event.id for event in burst}
        polls = feed.polls - polls
        queries, encoded = counted.queries - queries, counted.encoded - encoded

    assert encoded == BURST, f"each change encoded once for {SCREENS} screens (was once per screen)"
    assert queries <= polls, f"one change query per poll ({polls} polls), not one per screen and poll"


def test_screens_that_leave_stop_the_poller_and_the_app_stops_it_too(
    app: FastAPI, server: ServerThread
) -> None:
    store = app.state.store
    viewer = {"Authorization": f"Bearer {store.tokens.create('wall screen', 'viewer')[1]}"}

    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        with ExitStack() as stack:
            feeds = _open_screens(stack, client, viewer)  # an iterator dropped closes its connection
            feed: LiveFeed = app.state.live_feed
            assert (feed.subscribers, feed.is_polling) == (SCREENS, True)
            del feeds
        wait_until(lambda: feed.subscribers == 0 and not feed.is_polling)

        with client.stream("GET", "/stream", headers=viewer) as response:
            lines = response.iter_lines()
            assert next(lines) == "retry: 2000"
            assert feed.is_polling, "a screen coming back starts the poller again"
            server.stop()  # the app's lifespan ends with a screen still connected
            assert (feed.subscribers, feed.is_polling) == (0, False)


class _QuietStore:
    """A store in which nothing changes."""

    def now(self) -> float:
        return 1_700_000_000.0

    def changed_since(self, *_args: object, **_kwargs: object) -> list[StoredEvent]:
        return []


class _OpenRequest:
    """A client that stays connected."""

    async def is_disconnected(self) -> bool:
        return False


def test_a_screen_too_far_behind_is_ended_with_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A stalled screen held every change of every burst in its queue; now it is ended and reconnects."""
    monkeypatch.setattr(stream_module, "_BEHIND_MAX", 3)
    store = cast(EventStore, _QuietStore())
    feed = LiveFeed(store)
    changes = [
        stream_module._Change(f"e{i}", 1, 1_700_000_000.0, f"event: event\ndata: {i}\n\n") for i in range(4)
    ]

    async def run() -> list[str]:
        request = cast(Any, _OpenRequest())
        messages = stream_module._feed(request, feed, store, 1, store.now(), store.now(), None)
        first = await anext(messages)
        assert feed.subscribers == 1
        feed._fan_out(changes)  # four changes for a screen that has read none
        rest = [message async for message in messages]  # the feed ends
        await feed.close()
        return [first, *rest]

    with caplog.at_level(logging.WARNING, logger=stream_module.__name__):
        sent = asyncio.run(run())

    assert sent == ["retry: 2000\n: connected\n\n"], "what it held is stale: it reloads after reconnecting"
    assert feed.subscribers == 0
    assert "fell 3 changes behind; ending its feed" in caplog.text
