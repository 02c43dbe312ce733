"""Ingest: event revisions POSTed by pipelines running in other processes (``pipeline.http_sink``)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy.exc import SQLAlchemyError

from pipeline.event import Event
from pipeline.event_json import event_from_json
from service.api.deps import AUTH_RESPONSES, Pipeline
from service.api.models import IngestEventIn, IngestResult
from service.api.routing import IngestRoute
from service.config import AnjianConfig
from service.errors import IngestBusyError
from service.sink import StoreSink

__all__ = ["router", "unknown_source"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["ingest"], responses=AUTH_RESPONSES, route_class=IngestRoute)


@router.post(
    "/ingest/events",
    response_model=IngestResult,
    summary="Store an event revision from a pipeline",
    responses={
        422: {"description": "The event is malformed, or names a site or camera this service does not have."},
        503: {"description": "The database does not answer or the writer is full; send it again later."},
    },
)
async def ingest_event(request: Request, _token: Pipeline, body: IngestEventIn) -> IngestResult:
    """Store one revision (snapshot, event, webhook deliveries) and announce it; answers once it is committed.

    Only events of this site's configured cameras are taken (422 otherwise, which
    the pipeline's sink sets aside instead of retrying). Revisions arriving together
    are committed together by the event writer (``service.sink``). Idempotent: a
    revision already stored (or older than the stored one) is acknowledged with
    ``is_applied: false`` and changes nothing, so a pipeline may resend whatever it
    is unsure about.
    """
    try:
        event = event_from_json(body.model_dump(mode="json"))
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    config: AnjianConfig = request.app.state.config
    problem = unknown_source(config, event)
    if problem is not None:
        logger.warning("ingest: refused event %s: %s", event.id, problem)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problem)
    sink: StoreSink = request.app.state.sink  # not a dependency: a sync one costs a thread-pool hop
    try:
        result = await asyncio.wrap_future(sink.submit(event))
    except IngestBusyError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc), headers={"Retry-After": "1"}
        ) from exc
    except SQLAlchemyError as exc:
        logger.error("%s: cannot store ingested event %s: %s", event.camera_id, event.id, exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the database does not answer",
            headers={"Retry-After": "5"},
        ) from exc
    return IngestResult(
        event_id=event.id,
        revision=event.revision,
        stored_revision=result.event.revision,
        is_applied=result.is_applied,
    )


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
