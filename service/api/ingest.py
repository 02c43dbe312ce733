"""Ingest: event revisions and camera health POSTed by pipelines running in other processes (``anjian.pipeline.http_sink``).

The body is the pipeline's own wire model (``anjian.pipeline.event_wire.EventWire``):
FastAPI validates it once, as it parses the request, and the route only turns it
into the pipeline's ``Event`` and checks it belongs to this site. Camera health
(``POST /ingest/health``, ``anjian.pipeline.health_wire.HealthReportWire``) goes to the
plant's ``CameraHealthBoard``, where ``GET /cameras`` and the hub's reports read it.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy.exc import SQLAlchemyError

from anjian.pipeline.event import Event
from anjian.pipeline.event_wire import EventWire
from anjian.pipeline.health_wire import HealthReportWire
from anjian.service.api.deps import AUTH_RESPONSES, Pipeline
from anjian.service.api.models import HealthReportResult, IngestBatchIn, IngestBatchResult, IngestResult
from anjian.service.api.routing import IngestRoute
from anjian.service.camera_board import CameraHealthBoard
from anjian.service.config import AnjianConfig
from anjian.service.errors import IngestBusyError, RevisionRefusedError
from anjian.service.sink import StoreSink
from anjian.service.store import UpsertResult

__all__ = ["router", "unknown_source"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["ingest"], responses=AUTH_RESPONSES, route_class=IngestRoute)


@router.post(
    "/ingest/events",
    response_model=IngestResult,
    summary="Store an event revision from a pipeline",
    responses={
        422: {
            "description": "The event is malformed, names a site or camera this service does not have, "
            "holds a value the database refuses, or gives a stored event another site, workshop, camera "
            "or behaviour."
        },
        503: {"description": "The database does not answer or the writer is full; send it again later."},
    },
)
async def ingest_event(request: Request, _token: Pipeline, body: EventWire) -> IngestResult:
    """Store one revision (snapshot, event, webhook deliveries) and announce it; answers once it is committed.

    Only events of this site's configured cameras are taken (422 otherwise, which
    the pipeline's sink sets aside instead of retrying). Revisions arriving together
    are committed together by the event writer (``anjian.service.sink``). Idempotent: a
    revision already stored (or older than the stored one) is acknowledged with
    ``is_applied: false`` and changes nothing, so a pipeline may resend whatever it
    is unsure about. A revision that can never be stored as it is answers 422 naming
    why: a value the database refuses, or another site, workshop, camera or behaviour
    than its stored event has (an incident keeps those).
    """
    event = _checked_event(request.app.state.config, body)
    return (await _store(request, [event]))[0]


@router.post(
    "/ingest/batch",
    response_model=IngestBatchResult,
    summary="Store several event revisions from a pipeline at once",
    responses={
        422: {
            "description": "One of the events is malformed or names a site or camera this service does not "
            "have (named by its index; none of the batch is stored), or the store refuses it (a value the "
            "database refuses, another site, workshop, camera or behaviour for a stored event; named by "
            "its index, the others are stored)."
        },
        503: {
            "description": "The database does not answer or the writer is full; send the batch again later."
        },
    },
)
async def ingest_batch(request: Request, _token: Pipeline, body: IngestBatchIn) -> IngestBatchResult:
    """Store up to 200 revisions in one request; answers once all are committed.

    What ``POST /ingest/events`` does for each, without paying a request per
    revision: a pipeline with a backlog (after an outage, or many cameras) sends
    what it has queued. All or nothing at the door: one refused event refuses the
    batch (422 naming its index) before anything is stored, so the sender can send
    the batch's revisions one by one and set only the bad one aside. A revision the
    store refuses (see ``POST /ingest/events``) is also a 422 naming its index, but
    the others are stored then, so sending them again is acknowledged with
    ``is_applied: false``. Idempotent like the single route; a 503 means "send the
    whole batch again".
    """
    config: AnjianConfig = request.app.state.config
    events = []
    for index, item in enumerate(body.events):
        try:
            events.append(_checked_event(config, item))
        except HTTPException as exc:
            raise HTTPException(exc.status_code, detail=f"events[{index}]: {exc.detail}") from exc
    return IngestBatchResult(results=await _store(request, events, is_batch=True))


@router.post(
    "/ingest/health",
    response_model=HealthReportResult,
    summary="Record the health of a pipeline's cameras",
    responses={
        422: {
            "description": "The report is malformed, names a node the site does not have, or a camera "
            "that is not this site's (named by its index)."
        }
    },
)
def ingest_health(request: Request, _token: Pipeline, body: HealthReportWire) -> HealthReportResult:
    """Record the health of every camera a pipeline running elsewhere reads; it sends one every `interval_s`.

    `GET /cameras`, `/healthz`, the control room, `/metrics` and the plant's health
    reports to the hub then list these cameras with the node's name. A camera not
    reported for a few intervals (its node died) shows as `stale`, and so does one its
    node stops listing, until a node reports it again: the latest report of a camera wins.
    """
    config: AnjianConfig = request.app.state.config
    problem = _unknown_reporter(config, body)
    if problem is not None:
        logger.warning("ingest: refused a camera health report: %s", problem)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problem)
    board: CameraHealthBoard = request.app.state.camera_health
    board.record(body.node, body.interval_s, [camera.to_health() for camera in body.cameras])
    return HealthReportResult(cameras=len(body.cameras), stale_after_s=board.stale_after_s(body.interval_s))


def _unknown_reporter(config: AnjianConfig, body: HealthReportWire) -> str | None:
    """Why this site refuses a health report (a node or a camera it does not have), naming the field; else ``None``."""
    if body.node is not None:
        members = [] if config.nodes is None else [node.name for node in config.nodes.members]
        if body.node not in members:
            known = ", ".join(members) if members else "none: the site YAML has no nodes: section"
            return f"node: {body.node!r} is not a node of site {config.site.id!r} (its nodes: {known})"
    cameras = {camera.id for _, camera in config.cameras()}
    for index, camera in enumerate(body.cameras):
        if camera.camera_id not in cameras:
            return (
                f"cameras[{index}].camera_id: {camera.camera_id!r} is not a camera of site "
                f"{config.site.id!r}; add it to the service's site YAML (and restart the service)"
            )
    return None


def _checked_event(config: AnjianConfig, body: EventWire) -> Event:
    """The event of a validated body, or a 422 saying why this site refuses it."""
    event = body.to_event()
    problem = unknown_source(config, event)
    if problem is not None:
        logger.warning("ingest: refused event %s: %s", event.id, problem)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problem)
    return event


async def _store(request: Request, events: list[Event], *, is_batch: bool = False) -> list[IngestResult]:
    """Hand revisions to the event writer and wait until they are committed.

    Answers 422 naming the revision (``events[i]`` in a batch) that can never be stored
    as it is (the others are stored), and 503 when the writer is full or the database
    does not answer (send them again later).
    """
    sink: StoreSink = request.app.state.sink  # not a dependency: a sync one costs a thread-pool hop
    try:
        futures = [sink.submit(event) for event in events]
    except IngestBusyError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc), headers={"Retry-After": "1"}
        ) from exc
    outcomes = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures), return_exceptions=True)
    results: list[UpsertResult] = []
    for index, (event, outcome) in enumerate(zip(events, outcomes, strict=True)):
        if isinstance(outcome, RevisionRefusedError):
            where = f"events[{index}]: " if is_batch else ""
            logger.warning("%s: ingest refused event %s: %s", event.camera_id, event.id, outcome)
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"{where}{outcome}"
            ) from outcome
    for event, outcome in zip(events, outcomes, strict=True):
        if isinstance(outcome, IngestBusyError):
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(outcome), headers={"Retry-After": "1"}
            ) from outcome
        if isinstance(outcome, SQLAlchemyError):
            logger.error("%s: cannot store ingested event(s): %s", event.camera_id, outcome)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="the database does not answer",
                headers={"Retry-After": "5"},
            ) from outcome
        if isinstance(outcome, BaseException):
            raise outcome
        results.append(outcome)
    return [
        IngestResult(
            event_id=event.id,
            revision=event.revision,
            stored_revision=result.event.revision,
            is_applied=result.is_applied,
        )
        for event, result in zip(events, results, strict=True)
    ]


def unknown_source(config: AnjianConfig, event: Event) -> str | None:
    """Why this site would refuse ``event`` (another site, an unknown camera, the wrong workshop), or ``None``.

    Args:
        config: The service's site config.
        event: An ingested revision.
    """
    if event.site_id != config.site.id:
        return f"site {event.site_id!r} is not this service's site ({config.site.id!r})"
    workshops = {camera.id: workshop.id for workshop, camera in config.cameras()}
    workshop_id = workshops.get(event.camera_id)
    if workshop_id is None:
        return (
            f"camera {event.camera_id!r} is not a camera of site {config.site.id!r}; "
            "add it to the service's site YAML (and restart the service) before its pipeline sends events"
        )
    if workshop_id != event.workshop_id:
        return f"camera {event.camera_id!r} belongs to workshop {workshop_id!r}, not {event.workshop_id!r}"
    return None
