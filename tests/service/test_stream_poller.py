"""The live feed's shared poller stays alive, and screens never outlive it silently.

A poll that failed outside the poller's ``try`` (the store's clock, pruning what was sent)
ended the poller task, and a ``BaseException`` ended it anywhere: the screens already
connected then got heartbeats and nothing else, and the next connection started a fresh
poller from its own time, past what they had missed (s20 review, finding 1). Serving the
app on a second event loop dropped the first loop's screens from the fan-out, and they
waited forever (finding 2).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from anjian.service.api import stream as stream_module
from anjian.service.api.stream import LiveFeed
from anjian.service.records import StoredEvent
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.conftest import bearer
from tests.service.server import ServerThread
from tests.service.test_stream import _hear, _lines_until, _resume, quick_feed  # noqa: F401 - a fixture used by name

_WAIT_S = 5.0


class _Fatal(BaseException):
    """Not an ``Exception``: what no ``except Exception`` catches."""


class _FlakyStore:
    """The real store, whose clock or change query fails the next ``failures`` times it is asked (armed)."""

    def __init__(self, store: EventStore, where: str, error: BaseException) -> None:
        self._store = store
        self.where = where
        self.error = error
        self.failures = 0

    def _maybe_fail(self, where: str) -> None:
        if self.where == where and self.failures > 0:
            self.failures -= 1
            raise self.error

    def now(self) -> float:
        self._maybe_fail("clock")
        return self._store.now()

    def changed_since(self, *args: Any, **kwargs: Any) -> list[StoredEvent]:
        self._maybe_fail("query")
        return self._store.changed_since(*args, **kwargs)


class _OpenRequest:
    """A client that stays connected."""

    async def is_disconnected(self) -> bool:
        return False


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll every 10 ms (a few failed polls take no time); the caller is not checked again (no real request)."""
    monkeypatch.setattr(stream_module, "_POLL_S", 0.01)
    monkeypatch.setattr(stream_module, "_RECHECK_S", 3600.0)


async def _open(feed: LiveFeed, store: EventStore) -> AsyncIterator[str]:
    """A connection's feed (the shared ``feed``; its replay read from ``store``), past its first message."""
    messages = stream_module._feed(cast(Any, _OpenRequest()), feed, store, 1, store.now(), store.now(), None)
    assert await anext(messages) == "retry: 2000\n: connected\n\n"
    return messages


async def _waiting(messages: AsyncIterator[str]) -> asyncio.Task[str]:
    """Read a feed in the background, once it has read its own replay (nothing) and waits for the shared poller."""
    task = asyncio.ensure_future(_next(messages))
    await asyncio.sleep(0.2)
    assert not task.done(), "nothing changed yet"
    return task


async def _next(messages: AsyncIterator[str]) -> str:
    """The feed's next message, or "ended"."""
    try:
        return await anext(messages)
    except StopAsyncIteration:
        return "ended"


async def _until(reading: asyncio.Task[str], messages: AsyncIterator[str], event_id: str) -> str:
    """Read until a message names ``event_id`` ("sent"), the feed ends ("ended") or ``_WAIT_S`` pass ("silent")."""
    try:
        async with asyncio.timeout(_WAIT_S):
            message = await reading
            while message != "ended" and f"id: {event_id}:" not in message:
                message = await _next(messages)
            return message if message == "ended" else "sent"
    except TimeoutError:
        return "silent"


@pytest.mark.usefixtures("quick_polls")
@pytest.mark.parametrize(
    ("where", "error", "why"),
    [
        ("clock", OSError("the clock cannot be read"), "a poll failed"),
        (
            "query",
            OperationalError("SELECT", {}, Exception("database is locked")),
            "the database does not answer",
        ),
    ],
    ids=["store-clock", "change-query"],
)
def test_polls_that_fail_are_logged_once_and_polling_goes_on(
    app: FastAPI, caplog: pytest.LogCaptureFixture, where: str, error: BaseException, why: str
) -> None:
    """The store's clock was read outside the poller's ``try``: one failure there ended the poller."""
    store: EventStore = app.state.store
    flaky = _FlakyStore(store, where, error)
    feed = LiveFeed(cast(EventStore, flaky))
    event = make_event(snapshot_jpeg=None)

    async def run() -> str:
        messages = await _open(feed, store)
        reading = await _waiting(messages)
        flaky.failures = 3  # three polls in a row fail
        await asyncio.sleep(0.1)
        store.upsert_event(event)
        outcome = await _until(reading, messages, event.id)
        await feed.close()
        return outcome

    with caplog.at_level(logging.INFO, logger=stream_module.__name__):
        outcome = asyncio.run(run())

    assert (outcome, flaky.failures) == ("sent", 0), "the change after the failures arrives"
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in failed] == [f"live feed: {why}; polling on"], "one line, not one per poll"
    assert failed[0].exc_info is not None and failed[0].exc_info[1] is error
    assert "live feed: polls work again after 3 failed poll(s)" in caplog.text


@pytest.mark.usefixtures("quick_polls")
def test_a_poller_that_stops_ends_every_open_feed_and_the_next_connection_starts_a_new_one(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Left open without a poller, a screen looked alive (heartbeats) and showed nothing new for good."""
    store: EventStore = app.state.store
    flaky = _FlakyStore(store, "query", _Fatal("not an Exception"))
    feed = LiveFeed(cast(EventStore, flaky))
    missed = make_event(snapshot_jpeg=None)
    later = make_event(camera_id="cam-2", snapshot_jpeg=None)

    async def run() -> tuple[list[str], int, bool, str]:
        screens = [await _open(feed, store), await _open(feed, store)]
        readings = [await _waiting(messages) for messages in screens]
        flaky.failures = 1
        store.upsert_event(missed)  # what the poller would have sent
        outcomes = [await _until(r, m, missed.id) for r, m in zip(readings, screens, strict=True)]
        subscribers, is_polling = feed.subscribers, feed.is_polling
        messages = await _open(feed, store)  # a screen reconnecting (its replay brings ``missed``)
        assert feed.is_polling, "the next connection starts a new poller"
        reading = asyncio.ensure_future(_next(messages))
        store.upsert_event(later)
        outcome = await _until(reading, messages, later.id)
        await feed.close()
        return outcomes, subscribers, is_polling, outcome

    with caplog.at_level(logging.ERROR, logger=stream_module.__name__):
        outcomes, subscribers, is_polling, outcome = asyncio.run(run())

    assert outcomes == ["ended", "ended"], (
        "every open feed ends: the browsers reconnect and are replayed the gap"
    )
    assert (subscribers, is_polling) == (0, False)
    assert outcome == "sent"
    assert "live feed: the poller stopped; ending every open feed" in caplog.text
    assert "the poller stopped with 2 feed(s) open; ending them" in caplog.text


@pytest.mark.usefixtures("quick_feed")
def test_a_screen_whose_poller_stopped_reconnects_and_is_replayed_what_it_missed(
    app: FastAPI, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: EventStore = app.state.store
    viewer = bearer(store, "viewer", "wall screen")
    heard = make_event(snapshot_jpeg=None)
    missed = make_event(camera_id="cam-2", snapshot_jpeg=None)
    changed_since = store.changed_since
    failures = [1]

    def fatal_once(*args: Any, **kwargs: Any) -> list[StoredEvent]:
        if failures[0] > 0:
            failures[0] -= 1
            raise _Fatal("not an Exception")
        return changed_since(*args, **kwargs)

    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        with client.stream("GET", "/stream", headers=viewer) as response:
            lines = response.iter_lines()
            last_event_id = _hear(lines, store, heard)
            monkeypatch.setattr(store, "changed_since", fatal_once)  # the poller is the one reader now
            _, seen, has_ended = _lines_until(lines, "-", max_pings=50)
        assert (seen, has_ended, failures) == ([], True, [0]), "the feed ends with its poller"
        store.upsert_event(missed)
        seen, _ = _resume(client, viewer, last_event_id, missed.id)

    assert seen == [missed.id]


def test_a_connection_on_a_second_event_loop_is_refused_while_the_first_feeds_its_own() -> None:
    """A second loop's connection restarted the fan-out there, and the first loop's screens waited forever."""
    store = cast(EventStore, _QuietStore())
    feed = LiveFeed(store)
    first_is_fed = threading.Event()
    first_may_leave = threading.Event()
    held: list[tuple[int, bool]] = []

    async def first_loop() -> None:
        subscriber = feed.subscribe(store.now())
        first_is_fed.set()
        while not first_may_leave.is_set():
            await asyncio.sleep(0.01)
        held.append((feed.subscribers, feed.is_polling))
        feed.unsubscribe(subscriber)
        while feed.is_polling:  # the poller stops after the last connection
            await asyncio.sleep(0.01)

    async def second_loop() -> None:
        with pytest.raises(RuntimeError, match="serves connections on another event loop"):
            feed.subscribe(store.now())

    async def second_loop_later() -> tuple[int, bool]:
        subscriber = feed.subscribe(store.now())
        serving = (feed.subscribers, feed.is_polling)
        feed.unsubscribe(subscriber)
        await feed.close()
        return serving

    thread = threading.Thread(target=asyncio.run, args=(first_loop(),))
    thread.start()
    try:
        assert first_is_fed.wait(_WAIT_S)
        asyncio.run(second_loop())
    finally:
        first_may_leave.set()
        thread.join(_WAIT_S)

    assert held == [(1, True)], "the first loop's screen is still fed"
    assert asyncio.run(second_loop_later()) == (1, True), (
        "once the first loop serves no one, another takes over"
    )


@pytest.mark.usefixtures("quick_feed")
def test_a_second_server_of_one_app_refuses_the_live_feed_while_the_first_serves_it(
    app: FastAPI, server: ServerThread
) -> None:
    store: EventStore = app.state.store
    viewer = bearer(store, "viewer", "wall screen")
    event = make_event(snapshot_jpeg=None)
    second = _second_server(app)
    second.start()
    try:
        with (
            httpx.Client(timeout=15) as client,
            client.stream("GET", f"{server.base_url}/stream", headers=viewer) as response,
        ):
            lines = response.iter_lines()
            assert next(lines) == "retry: 2000"
            with client.stream("GET", f"{second.base_url}/stream", headers=viewer) as other:
                status, content_type = other.status_code, other.headers["content-type"]
                detail = other.read().decode() if status == 503 else ""
            store.upsert_event(event)
            _, seen, _ = _lines_until(lines, event.id, max_pings=50)
    finally:
        second.stop()

    assert (status, content_type) == (503, "application/problem+json")
    assert "served on another event loop" in detail
    assert seen == [event.id], "the first server's screen is still fed"


def _second_server(app: FastAPI) -> ServerThread:
    """Another uvicorn server (another event loop) over ``app``, without its lifespan: the first runs it."""
    second = ServerThread(app)
    second._server.config.lifespan = "off"  # its parts (the webhook dispatcher, ...) run once
    return second


class _QuietStore:
    """A store in which nothing changes."""

    def now(self) -> float:
        return 1_700_000_000.0

    def changed_since(self, *_args: object, **_kwargs: object) -> list[StoredEvent]:
        return []
