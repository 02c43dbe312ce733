"""The live feed: every change to an event (new, updated, acted on, escalated) as Server-Sent Events.

``GET /stream`` answers ``text/event-stream``; each message is ``event: event`` with
the ``EventOut`` JSON as data and ``id: <event id>:<version>``, sent when the event
changes (its ``version`` grows). Changes are found by polling the store's
``updated_at`` index twice a second, so the feed also shows changes written by other
processes sharing the database. One poller per process (:class:`LiveFeed`, started with
the first connection and stopped with the last or with the app) reads each poll's changes
once and renders each change's message once for every connection, through a bounded
queue per connection; one that falls ``_BEHIND_MAX`` changes behind is ended (it
reconnects, is replayed what it missed, and the dashboard reloads). A comment line goes
out every 15 s so proxies keep the connection open. Browsers authenticate with the dashboard session cookie
(``EventSource`` cannot send headers; ``POST /auth/session``).

Where a connection starts. A new one sends what changed from its opening on (looking
back 5 s: commits land out of ``updated_at`` order; that look-back and any replay are read
for the connection alone, once, then it is fed from the shared poller). A reconnecting ``EventSource``
sends the id of the last message it got as ``Last-Event-ID``; while that event is
still at that version, its ``updated_at`` is when the client last heard, and the feed
replays every change since then (minus the same 5 s), so nothing changed while the
connection was down is lost. The feed never looks for changes later than the store's
clock: when that clock steps back (NTP correcting a clock that ran ahead), what is
stored next is stamped before what was sent, and a feed that kept its place blinded
the control room until the clock caught up. An id whose event has changed since no longer says when
that was (the store keeps no past revisions): the feed then starts at ``since``
(ISO-8601 or epoch seconds, a time the client passes) when given, else from now, and
the client must reload what it shows (``GET /events``; the dashboard reloads after
every reconnect in any case). A replay reaches back an hour at most: a client away
longer reloads.

When a connection ends. The caller is checked again every few seconds, as a new
request would be: the feed ends once its token is revoked or the session cookie it
came with expires. A browser then reconnects with its current cookie (the dashboard
renews it) and gets 401 if its token was revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, cast

from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from anjian.pipeline.event_wire import ID_PATTERN
from anjian.pipeline.log_throttle import LogThrottle
from anjian.service.api.deps import AUTH_RESPONSES, StoreDep, ViewerByCookie
from anjian.service.api.routing import GuardedRoute
from anjian.service.api.sessions import still_admitted
from anjian.service.records import StoredEvent
from anjian.service.schemas import EventOut, datetime_to_epoch
from anjian.service.store import EventStore

__all__ = ["LiveFeed", "router"]

logger = logging.getLogger(__name__)

_POLL_S = 0.5
_HEARTBEAT_S = 15.0
_OVERLAP_S = 5.0  # look back this far each poll: commits land out of updated_at order
_PAGE = 500  # events read at once; a poll reads every page (a replayed backlog changes thousands at once)
_RECHECK_S = 5.0  # how often the caller's token (and session) are checked again
_MAX_REPLAY_S = 3600.0  # the furthest back a resumed connection replays
_BEHIND_MAX = 10_000  # changes waiting for one connection before it is dropped (a burst of 5,000 fits)
_FAILURE_LOG_S = 60.0  # a poll failure that goes on is logged again this often, with the polls between
_EVENT_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class _Change:
    """One revision of an event, its SSE message rendered once for every connection."""

    event_id: str
    version: int
    updated_at: float
    message: str


@dataclass(frozen=True, slots=True)
class _Page:
    """A page of changes: the revisions not sent yet (rendered), and where the next page starts."""

    changes: list[_Change]
    newest_at: float | None  # the latest ``updated_at`` read, sent before or not
    next_from: (
        tuple[float, str] | None
    )  # ``(updated_at, id)`` after which the next page starts; None: last page


def _is_sent(sent: dict[str, tuple[int, float]], event_id: str, version: int) -> bool:
    """Whether this revision (or a later one) of the event went out already."""
    had = sent.get(event_id)
    return had is not None and had[0] >= version


def _read_page(
    store: EventStore, since: float, after_id: str | None, sent: dict[str, tuple[int, float]]
) -> _Page:
    """One page of the events changed at or after ``since``, the unsent revisions rendered (in a worker thread)."""
    events = store.changed_since(since, after_id=after_id, limit=_PAGE)
    changes = [
        _Change(
            event.id,
            event.version,
            event.updated_at,
            f"event: event\nid: {event.id}:{event.version}\n"
            f"data: {EventOut.from_stored(event).model_dump_json()}\n\n",
        )
        for event in events
        if not _is_sent(sent, event.id, event.version)
    ]
    last = events[-1] if events else None
    return _Page(
        changes,
        None if last is None else max(e.updated_at for e in events),
        None if last is None or len(events) < _PAGE else (last.updated_at, last.id),
    )


async def _changes_since(
    store: EventStore, since: float, sent: dict[str, tuple[int, float]]
) -> AsyncIterator[_Page]:
    """Every event changed at or after ``since``, page by page (a burst can exceed a page); ``sent`` are skipped."""
    page = await run_in_threadpool(_read_page, store, since, None, sent)
    yield page
    while page.next_from is not None:
        at, after_id = page.next_from
        page = await run_in_threadpool(_read_page, store, at, after_id, sent)
        yield page


class _Subscriber:
    """One connection's place in the fan-out: the changes waiting for it, and whether it fell too far behind."""

    __slots__ = ("is_behind", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Change] = asyncio.Queue(maxsize=_BEHIND_MAX)
        self.is_behind = False


class LiveFeed:
    """The one poller of a process: reads each poll's changes once, renders each once, hands them to every connection.

    Twenty wall screens each polling the store and encoding every change took 7 s of CPU
    for a burst of 1,000 changes (finding 2 of the s19 scale review), and operators' requests
    waited up to 2.2 s behind it. Here one task polls (``_POLL_S``) while at least one
    connection is open, and stops with the last one (or with the app: :meth:`close`). Each
    connection gets the shared messages through its own queue of at most ``_BEHIND_MAX``;
    one that falls further behind (a stalled screen, a slow link) is dropped from the fan-out
    and its feed ends: the browser reconnects with ``Last-Event-ID``, is replayed what it
    missed from the store, and the dashboard reloads after every reconnect.

    The poller outlives a failing poll (logged once a minute while it goes on, with the count
    between). Should it end anyway (a ``BaseException``), every feed still open is ended too:
    a screen left connected without a poller got heartbeats and nothing else, and the next
    connection's fresh poller started from its own time, past the gap that screen had missed.
    Ended, the screens reconnect and are replayed their gap; the next connection starts a
    new poller.

    One event loop serves the feed at a time (uvicorn runs one). A connection on another loop
    while the first still feeds connections is refused (:meth:`serves_another_loop`): one poller
    cannot feed another loop's queues, and starting over there silently stopped feeding the
    first loop's screens. Once the first loop has no connection left (or has ended), the next
    loop takes over (the app served again).

    Args:
        store: The event store whose ``changed_since`` is polled.
    """

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sent: dict[str, tuple[int, float]] = {}  # event id -> (version sent, its updated_at)
        self._watermark = 0.0
        self._last_look = time.monotonic()  # when the poller last looked at the store
        self._is_closed = False
        self._failure_log = LogThrottle(_FAILURE_LOG_S)
        self._failing_with: type[Exception] | None = None  # what the last poll failed with; None: it worked
        self._failed_polls = 0  # polls in a row that failed
        self.polls = 0  # looks at the store so far (one change query per page of changes each)

    @property
    def horizon(self) -> float:
        """Revisions stamped before this are never read again: a connection may forget having sent them."""
        return self._watermark - 2 * _OVERLAP_S

    @property
    def subscribers(self) -> int:
        """Connections fed now."""
        return len(self._subscribers)

    @property
    def is_polling(self) -> bool:
        """Whether the poller runs (only while a connection is open)."""
        return self._task is not None and not self._task.done()

    def serves_another_loop(self) -> bool:
        """Whether another event loop than the running one still feeds connections (see the class)."""
        loop = self._loop
        if loop is None or loop is asyncio.get_running_loop() or loop.is_closed() or not loop.is_running():
            return False  # (a loop stopped or closed serves no one: what it held is gone)
        return bool(self._subscribers) or self.is_polling

    def subscribe(self, opened_at: float) -> _Subscriber:
        """Feed one more connection (the poller starts with the first); call from the event loop.

        Args:
            opened_at: The store's time when the request came. A poller started now reads from
                then on: a change stamped after it and committed while the connection read its
                replay is not lost.

        Returns:
            The connection's place in the fan-out; pass it to :meth:`unsubscribe` when it ends.

        Raises:
            RuntimeError: Another event loop still feeds connections (:meth:`serves_another_loop`).
        """
        loop = asyncio.get_running_loop()
        if self.serves_another_loop():
            raise RuntimeError(
                "the live feed serves connections on another event loop; one process serves it on one loop "
                "(two servers of one app each need their own app)"
            )
        if self._loop is not loop:  # a new event loop (the app served again): what the old one held is gone
            self._loop, self._task = loop, None
            self._subscribers.clear()
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        if not self.is_polling:
            self._is_closed = False
            self._sent.clear()
            self._watermark = min(self._store.now(), opened_at)
            self._last_look = time.monotonic()
            self._task = loop.create_task(self._poll(), name="anjian-live-feed")
            self._task.add_done_callback(_retrieve_outcome)
        return subscriber

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        """Stop feeding a connection (it ended); the poller stops after the last."""
        self._subscribers.discard(subscriber)

    async def close(self) -> None:
        """Stop the poller and end every feed (the app shuts down)."""
        self._is_closed = True
        for subscriber in self._subscribers:
            subscriber.is_behind = True  # its feed ends at its next look
        self._subscribers.clear()
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        """Poll the store while anyone listens; if the poller ends any other way than by :meth:`close`, end every feed."""
        me = asyncio.current_task()
        try:
            while self._task is me and self._subscribers and not self._is_closed:
                try:
                    await self._poll_once()
                except Exception as error:  # noqa: BLE001 - the poller outlives a bad poll, or every screen goes quiet
                    self._poll_failed(error)
                else:
                    self._poll_worked()
                await asyncio.sleep(_POLL_S)
        except BaseException as error:
            if not isinstance(error, asyncio.CancelledError):
                logger.critical("live feed: the poller stopped; ending every open feed", exc_info=error)
            raise
        finally:
            self._poller_ended()

    async def _poll_once(self) -> None:
        """One look at the store: hand every revision not sent yet to every connection, and move the watermark."""
        now = self._store.now()
        # the clock stepped back: new changes are stamped before the last
        if now < self._watermark - _OVERLAP_S:
            logger.warning(
                "live feed: the clock went back %.0f s; looking for changes from the new time",
                self._watermark - now,
            )
            # it stepped after the last look: all since
            self._watermark = now - (time.monotonic() - self._last_look)
        self._last_look = time.monotonic()
        self.polls += 1
        newest: float | None = None
        try:
            async for page in _changes_since(self._store, self._watermark - _OVERLAP_S, self._sent):
                self._fan_out(page.changes)
                for change in page.changes:  # marked once handed out: a failure before then sends them again
                    self._sent[change.event_id] = (change.version, change.updated_at)
                if page.newest_at is not None:
                    newest = page.newest_at if newest is None else max(newest, page.newest_at)
        finally:  # the pages read before a failure count (a later page failing every poll does not hold them up)
            if newest is not None:
                # never past the clock: changes stamped ahead of it (before a step back) are read again, not sent again
                self._watermark = max(self._watermark, min(now, newest))
                horizon = self.horizon
                self._sent = {k: v for k, v in self._sent.items() if v[1] >= horizon}

    def _poll_failed(self, error: Exception) -> None:
        """Log a failed poll: the first at once, then once per ``_FAILURE_LOG_S`` with the count between."""
        self._failed_polls += 1
        is_news = type(error) is not self._failing_with  # it fails differently: said at once
        self._failing_with = type(error)
        admitted = self._failure_log.admit(is_news=is_news)
        if admitted is None:
            return
        why = "the database does not answer" if isinstance(error, SQLAlchemyError) else "a poll failed"
        between = f" ({admitted.held_back} failed poll(s) since the last line)" if admitted.held_back else ""
        logger.error("live feed: %s; polling on%s", why, between, exc_info=error)

    def _poll_worked(self) -> None:
        """Say when polls work again after failing."""
        if self._failing_with is None:
            return
        logger.info("live feed: polls work again after %d failed poll(s)", self._failed_polls)
        self._failing_with, self._failed_polls = None, 0
        self._failure_log.forget()

    def _poller_ended(self) -> None:
        """The poller task ends: every feed still open is ended (it reconnects and is replayed its gap)."""
        if self._task is not asyncio.current_task():
            return  # stopped by :meth:`close` (which ended every feed), or no longer the poller
        self._task = None  # the next connection starts a new poller
        left = list(self._subscribers)
        if not left:
            return  # the last connection left, or :meth:`close` ended them all
        self._subscribers.clear()
        for subscriber in left:
            subscriber.is_behind = True  # its feed ends at its next look
        logger.error(
            "live feed: the poller stopped with %d feed(s) open; ending them (the browsers reconnect and "
            "are replayed what they missed)",
            len(left),
        )

    def _fan_out(self, changes: list[_Change]) -> None:
        """Queue the changes for every connection; one that has ``_BEHIND_MAX`` waiting already is dropped."""
        if not changes:
            return
        for subscriber in list(self._subscribers):
            try:
                for change in changes:
                    subscriber.queue.put_nowait(change)
            except asyncio.QueueFull:
                subscriber.is_behind = True
                self._subscribers.discard(subscriber)
                logger.warning(
                    "live feed: a connection fell %d changes behind; ending its feed (the browser reconnects "
                    "and the dashboard reloads)",
                    _BEHIND_MAX,
                )


def _retrieve_outcome(task: asyncio.Task[None]) -> None:
    """Take a finished poller's exception (logged already), so asyncio does not log it again."""
    if not task.cancelled():
        task.exception()


def _live_feed(app: FastAPI) -> LiveFeed:
    """The app's fan-out, made at its first use (an app served without its lifespan has none before)."""
    feed = getattr(app.state, "live_feed", None)
    if feed is None:
        feed = app.state.live_feed = LiveFeed(app.state.store)
    return cast(LiveFeed, feed)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The fan-out lives with the app: its poller is stopped when the app shuts down."""
    feed = _live_feed(app)
    try:
        yield
    finally:
        await feed.close()


router = APIRouter(tags=["events"], responses=AUTH_RESPONSES, route_class=GuardedRoute, lifespan=_lifespan)


def _last_heard(store: EventStore, last_event_id: str | None) -> StoredEvent | None:
    """The event of ``Last-Event-ID`` (``<event id>:<version>``) if it is still at that version, else ``None``."""
    if not last_event_id:
        return None
    event_id, _, version = last_event_id.strip().rpartition(":")
    if len(event_id) > 64 or not _EVENT_ID.match(event_id) or not (version.isascii() and version.isdigit()):
        return None  # "²".isdigit() holds too, and int() refuses it
    try:
        stored = store.get_event(event_id)
    except SQLAlchemyError:
        logger.exception("live feed: the database does not answer; resuming from now")
        return None
    return stored if stored is not None and stored.version == int(version) else None


async def _feed(
    request: Request,
    feed: LiveFeed,
    store: EventStore,
    token_id: int,
    opened_at: float,
    start: float,
    heard: StoredEvent | None,
) -> AsyncIterator[str]:
    """Yield SSE messages for every change from ``start`` on, until the client leaves or may no longer read.

    The connection joins the fan-out first, then reads what changed since ``start`` (its
    replay, and the look-back) once on its own; a revision both bring is sent once.
    """
    subscriber = feed.subscribe(opened_at)
    try:
        yield "retry: 2000\n: connected\n\n"
        # the revisions sent from the replay (what the fan-out brings again is skipped); the client has ``heard``
        sent: dict[str, tuple[int, float]] = {}
        if heard is not None:
            sent[heard.id] = (heard.version, heard.updated_at)
        # A replay the database cuts short is tried again here until it gets through (after 0.5 s,
        # doubling to 5 s; ``sent`` skips what went out), not left to a reconnect: a client reconnecting
        # while the database is still away could not have its Last-Event-ID looked up (``_last_heard``)
        # and would resume from now, losing the gap. Cut short for good, it was never sent at all.
        # Meanwhile the fan-out queues the live changes (too far behind, the feed ends as always).
        failures = 0
        while True:
            try:
                async for page in _changes_since(store, start - _OVERLAP_S, sent):
                    if (
                        failures
                    ):  # said as its first page comes (one always does), before the client may leave
                        logger.info("live feed: the replay got through after %d failed attempt(s)", failures)
                        failures = 0
                    for change in page.changes:
                        sent[change.event_id] = (change.version, change.updated_at)
                    if page.changes:
                        yield "".join(change.message for change in page.changes)
                break
            except SQLAlchemyError:
                failures += 1
                if failures == 1:
                    logger.exception("live feed: the database does not answer; the replay is tried again")
            if await request.is_disconnected() or subscriber.is_behind:
                return
            yield ": replay waits for the database\n\n"  # a comment: keeps proxies from closing an idle link
            await asyncio.sleep(min(_POLL_S * 2 ** min(failures - 1, 4), _RECHECK_S))
        last_beat = last_check = time.monotonic()
        while not await request.is_disconnected():
            if time.monotonic() - last_check >= _RECHECK_S:
                last_check = time.monotonic()
                try:
                    is_admitted = await run_in_threadpool(still_admitted, request, token_id)
                except SQLAlchemyError:
                    logger.exception("live feed: the database does not answer; the caller is checked later")
                    is_admitted = True
                if not is_admitted:
                    logger.info(
                        "live feed: token %d was revoked or its session expired; ending its feed", token_id
                    )
                    return
                if sent:
                    horizon = feed.horizon
                    sent = {k: v for k, v in sent.items() if v[1] >= horizon}
            if subscriber.is_behind:
                return
            wait_s = min(_POLL_S, max(0.0, last_beat + _HEARTBEAT_S - time.monotonic()))
            messages = await _next_messages(subscriber.queue, wait_s, sent)
            if subscriber.is_behind:  # what it holds is stale: it reconnects and reloads
                return
            if messages:
                yield messages
            if time.monotonic() - last_beat >= _HEARTBEAT_S:
                last_beat = time.monotonic()
                yield f": ping {json.dumps(time.time())}\n\n"
    finally:
        feed.unsubscribe(subscriber)


async def _next_messages(
    queue: asyncio.Queue[_Change], wait_s: float, sent: dict[str, tuple[int, float]]
) -> str:
    """The messages waiting (up to ``_PAGE``), after waiting up to ``wait_s`` for the first; revisions sent are left out."""
    try:
        changes = [await asyncio.wait_for(queue.get(), timeout=wait_s)] if queue.empty() else []
    except TimeoutError:
        return ""
    while len(changes) < _PAGE and not queue.empty():
        changes.append(queue.get_nowait())
    return "".join(c.message for c in changes if not _is_sent(sent, c.event_id, c.version))


@router.get(
    "/stream",
    response_class=StreamingResponse,
    response_model=None,
    summary="Live feed of event changes (Server-Sent Events)",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "One message per change."},
        503: {
            "description": "Another event loop of this process serves the live feed (two servers, one app)."
        },
    },
)
async def stream(
    request: Request,
    store: StoreDep,
    token: ViewerByCookie,
    last_event_id: Annotated[
        str | None,
        Header(
            max_length=200,
            description="`<event id>:<version>` of the last message received (EventSource sends it when it "
            "reconnects): the changes since that message are replayed.",
        ),
    ] = None,
    since: Annotated[
        datetime | None,
        Query(
            description="Replay the changes since this time (ISO-8601 or epoch s; an hour back at most) when "
            "`Last-Event-ID` does not name the event at the version last received."
        ),
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events, one per change of any event from now on; reconnect with ``Last-Event-ID`` to resume."""
    feed = _live_feed(request.app)
    if feed.serves_another_loop():
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the live feed is served on another event loop of this process; serve each app on one loop",
        )
    since_s = None if since is None else datetime_to_epoch(since)
    now = store.now()
    heard = await run_in_threadpool(_last_heard, store, last_event_id)
    start = heard.updated_at if heard is not None else since_s if since_s is not None else now
    start = min(now, max(start, now - _MAX_REPLAY_S))
    return StreamingResponse(
        _feed(request, feed, store, token.id, now, start, heard),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
