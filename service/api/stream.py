"""The live feed: every change to an event (new, updated, acted on, escalated) as Server-Sent Events.

``GET /stream`` answers ``text/event-stream``; each message is ``event: event`` with
the ``EventOut`` JSON as data and ``id: <event id>:<version>``, sent when the event
changes (its ``version`` grows). Changes are found by polling the store's
``updated_at`` index twice a second, so the feed also shows changes written by other
processes sharing the database. A comment line goes out every 15 s so proxies keep
the connection open. Browsers authenticate with the dashboard session cookie
(``EventSource`` cannot send headers; ``POST /auth/session``).

Where a connection starts. A new one sends what changed from its opening on (looking
back 5 s: commits land out of ``updated_at`` order). A reconnecting ``EventSource``
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
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from anjian.pipeline.event_wire import ID_PATTERN
from anjian.service.api.deps import AUTH_RESPONSES, StoreDep, ViewerByCookie
from anjian.service.api.routing import GuardedRoute
from anjian.service.api.sessions import still_admitted
from anjian.service.records import StoredEvent
from anjian.service.schemas import EventOut, datetime_to_epoch
from anjian.service.store import EventStore

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["events"], responses=AUTH_RESPONSES, route_class=GuardedRoute)

_POLL_S = 0.5
_HEARTBEAT_S = 15.0
_OVERLAP_S = 5.0  # look back this far each poll: commits land out of updated_at order
_PAGE = 500  # events read at once; a poll reads every page (a replayed backlog changes thousands at once)
_RECHECK_S = 5.0  # how often the caller's token (and session) are checked again
_MAX_REPLAY_S = 3600.0  # the furthest back a resumed connection replays
_EVENT_ID = re.compile(ID_PATTERN)


async def _changes_since(store: EventStore, since: float) -> list[StoredEvent]:
    """Every event changed at or after ``since``, read page by page (a burst can exceed a page)."""
    changed: list[StoredEvent] = []
    page = await run_in_threadpool(store.changed_since, since, limit=_PAGE)
    while True:
        changed.extend(page)
        if len(page) < _PAGE:
            return changed
        last = page[-1]
        page = await run_in_threadpool(store.changed_since, last.updated_at, after_id=last.id, limit=_PAGE)


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
    request: Request, store: EventStore, token_id: int, start: float, heard: StoredEvent | None
) -> AsyncIterator[str]:
    """Yield SSE messages for every change from ``start`` on, until the client leaves or may no longer read."""
    watermark = start
    sent: dict[str, tuple[int, float]] = {}  # event id -> (version sent, its updated_at)
    if heard is not None:  # the client has this revision already
        sent[heard.id] = (heard.version, heard.updated_at)
    last_beat = last_check = last_look = time.monotonic()
    yield "retry: 2000\n: connected\n\n"
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
        now = store.now()
        if now < watermark - _OVERLAP_S:  # the clock stepped back: new changes are stamped before the last
            logger.warning(
                "live feed: the clock went back %.0f s; looking for changes from the new time",
                watermark - now,
            )
            watermark = now - (time.monotonic() - last_look)  # it stepped after the last look: all since then
        last_look = time.monotonic()
        try:
            changed = await _changes_since(store, watermark - _OVERLAP_S)
        except SQLAlchemyError:
            logger.exception("live feed: the database does not answer")
            changed = []
        for event in changed:
            if event.id in sent and sent[event.id][0] >= event.version:
                continue
            sent[event.id] = (event.version, event.updated_at)
            data = EventOut.from_stored(event).model_dump_json()
            yield f"event: event\nid: {event.id}:{event.version}\ndata: {data}\n\n"
        if changed:
            # never past the clock: changes stamped ahead of it (before a step back) are read again, not sent again
            watermark = max(watermark, min(now, max(e.updated_at for e in changed)))
            horizon = watermark - 2 * _OVERLAP_S
            sent = {k: v for k, v in sent.items() if v[1] >= horizon}
        if time.monotonic() - last_beat >= _HEARTBEAT_S:
            last_beat = time.monotonic()
            yield f": ping {json.dumps(time.time())}\n\n"
        await asyncio.sleep(_POLL_S)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    response_model=None,
    summary="Live feed of event changes (Server-Sent Events)",
    responses={200: {"content": {"text/event-stream": {}}, "description": "One message per change."}},
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
    since_s = None if since is None else datetime_to_epoch(since)
    now = store.now()
    heard = await run_in_threadpool(_last_heard, store, last_event_id)
    start = heard.updated_at if heard is not None else since_s if since_s is not None else now
    start = min(now, max(start, now - _MAX_REPLAY_S))
    return StreamingResponse(
        _feed(request, store, token.id, start, heard),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
