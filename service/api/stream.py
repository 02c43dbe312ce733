"""The live feed: every change to an event (new, updated, acted on, escalated) as Server-Sent Events.

``GET /stream`` answers ``text/event-stream``; each message is ``event: event`` with
the ``EventOut`` JSON as data, sent when the event changes (its ``version`` grows).
Changes are found by polling the store's ``updated_at`` index twice a second, so
the feed also shows changes written by other processes sharing the database. A
comment line goes out every 15 s so proxies keep the connection open. Browsers
authenticate with the dashboard session cookie (``EventSource`` cannot send
headers; ``POST /auth/session``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from anjian.service.api.deps import AUTH_RESPONSES, StoreDep, ViewerByCookie
from anjian.service.api.routing import GuardedRoute
from anjian.service.records import StoredEvent
from anjian.service.schemas import EventOut
from anjian.service.store import EventStore

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["events"], responses=AUTH_RESPONSES, route_class=GuardedRoute)

_POLL_S = 0.5
_HEARTBEAT_S = 15.0
_OVERLAP_S = 5.0  # look back this far each poll: commits land out of updated_at order
_PAGE = 500  # events read at once; a poll reads every page (a replayed backlog changes thousands at once)


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


async def _feed(request: Request, store: EventStore) -> AsyncIterator[str]:
    """Yield SSE messages for every change after the connection opened, until the client leaves."""
    watermark = time.time()
    sent: dict[str, tuple[int, float]] = {}  # event id -> (version sent, its updated_at)
    last_beat = time.monotonic()
    yield "retry: 2000\n: connected\n\n"
    while not await request.is_disconnected():
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
            watermark = max(watermark, max(e.updated_at for e in changed))
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
async def stream(request: Request, store: StoreDep, _token: ViewerByCookie) -> StreamingResponse:
    """Server-Sent Events, one per change of any event from now on; reconnect to resume."""
    return StreamingResponse(
        _feed(request, store),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
