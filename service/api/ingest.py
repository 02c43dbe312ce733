"""Ingest: event revisions POSTed by pipelines running in other processes (``pipeline.http_sink``)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.exc import SQLAlchemyError

from pipeline.event_json import event_from_json
from service.api.deps import AUTH_RESPONSES, Pipeline, SinkDep
from service.api.models import IngestEventIn, IngestResult
from service.api.routing import IngestRoute

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["ingest"], responses=AUTH_RESPONSES, route_class=IngestRoute)


@router.post(
    "/ingest/events",
    response_model=IngestResult,
    summary="Store an event revision from a pipeline",
    responses={503: {"description": "The database does not answer; send it again later."}},
)
def ingest_event(sink: SinkDep, _token: Pipeline, body: IngestEventIn) -> IngestResult:
    """Store one revision (snapshot, event, webhook deliveries) and announce it.

    Idempotent: a revision already stored (or older than the stored one) is
    acknowledged with ``is_applied: false`` and changes nothing, so a pipeline may
    resend whatever it is unsure about.
    """
    try:
        event = event_from_json(body.model_dump(mode="json"))
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    try:
        result = sink.store_event(event)
    except SQLAlchemyError as exc:
        logger.exception("%s: cannot store ingested event %s", event.camera_id, event.id)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="the database does not answer"
        ) from exc
    return IngestResult(
        event_id=event.id,
        revision=event.revision,
        stored_revision=result.event.revision,
        is_applied=result.is_applied,
    )
