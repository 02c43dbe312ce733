"""Events: list with filters and cursor paging, one event, its audit trail, its evidence, its lifecycle."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.event_wire import ID_PATTERN
from anjian.service.api.deps import (
    AUTH_RESPONSES,
    EvidenceDep,
    MetricsDep,
    Operator,
    StoreDep,
    Viewer,
    ViewerByCookie,
)
from anjian.service.api.models import AcknowledgeIn, CloseIn, DispatchIn, FalseAlarmIn, ResolveIn
from anjian.service.api.problems import ApiProblem, problem_responses
from anjian.service.api.routing import GuardedRoute
from anjian.service.errors import EvidenceError, EvidenceNotFoundError, InvalidTransitionError
from anjian.service.lifecycle import Action, AlertState
from anjian.service.records import StoredEvent
from anjian.service.schemas import AuditOut, EventList, EventOut, datetime_to_epoch
from anjian.service.store import EventStore

__all__ = ["router"]

logger = logging.getLogger(__name__)

try:  # Starlette's own Range parser (private: where a later Starlette lacks it, FileResponse answers alone)
    from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

    _parse_range: Callable[[str, int], object] | None = FileResponse._parse_range_header
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed Starlette
    _parse_range = None

router = APIRouter(tags=["events"], responses=AUTH_RESPONSES, route_class=GuardedRoute)

_EVENT_ID = PathParam(..., min_length=1, max_length=64, pattern=ID_PATTERN, description="Event id.")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No event has this id."}}
_ID_FILTER = Query(min_length=1, max_length=64, pattern=ID_PATTERN)


def _require_event(store: EventStore, event_id: str) -> StoredEvent:
    """The stored event, or a 404."""
    stored = store.get_event(event_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"event {event_id!r} not found")
    return stored


_NOW_HEADER = "X-Anjian-Now"


@router.get(
    "/events",
    response_model=EventList,
    summary="List events, newest first",
    responses={
        200: {
            "headers": {
                _NOW_HEADER: {
                    "description": "The service's clock when it answered (epoch seconds): a client that was "
                    "away compares it with the newest change it heard (a clock set back stamps later changes "
                    "earlier).",
                    "schema": {"type": "string"},
                }
            }
        }
    },
)
def list_events(
    response: Response,
    store: StoreDep,
    _token: Viewer,
    site_id: Annotated[str | None, _ID_FILTER] = None,
    workshop_id: Annotated[str | None, _ID_FILTER] = None,
    camera_id: Annotated[str | None, _ID_FILTER] = None,
    behaviour: Annotated[list[Behaviour] | None, Query(max_length=10, description="Any of these.")] = None,
    severity: Annotated[
        list[RiskLevel] | None, Query(max_length=4, description="Any of these colours.")
    ] = None,
    state: Annotated[list[AlertState] | None, Query(max_length=6, description="Any of these states.")] = None,
    since: Annotated[
        datetime | None, Query(description="Events started at or after this time (ISO-8601 or epoch s).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Events started before this time (ISO-8601 or epoch s).")
    ] = None,
    updated_after: Annotated[
        datetime | None,
        Query(
            description="Events the service changed after this time (ISO-8601 or epoch s): a new revision, a "
            "lifecycle action or an escalation. A client that was away (the dashboard after its live feed "
            "reconnects) asks for what changed since it last heard, page by page, instead of everything."
        ),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=300, description="`next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most items to return.")] = 100,
) -> EventList:
    """Events matching every given filter, ordered by ``started_at``, newest first, a page at a time."""
    response.headers[_NOW_HEADER] = f"{store.now():.3f}"  # read before the listing: never later than it
    try:
        since_s = None if since is None else datetime_to_epoch(since)
        until_s = None if until is None else datetime_to_epoch(until)
        updated_after_s = None if updated_after is None else datetime_to_epoch(updated_after)
    except (OverflowError, ValueError, OSError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"time out of range: {exc}"
        ) from exc
    if since_s is not None and until_s is not None and since_s > until_s:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"since ({since}) must not be after until ({until})"
        )
    try:
        page = store.list_events(
            site_id=site_id,
            workshop_id=workshop_id,
            camera_id=camera_id,
            behaviours=behaviour or (),
            severities=severity or (),
            states=state or (),
            since=since_s,
            until=until_s,
            updated_after=updated_after_s,
            cursor=cursor,
            limit=limit,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    items = [EventOut.from_stored(e) for e in page.items]
    return EventList(items=items, count=len(items), next_cursor=page.next_cursor)


@router.get("/events/{event_id}", response_model=EventOut, summary="One event", responses=_NOT_FOUND)
def get_event(store: StoreDep, _token: Viewer, event_id: Annotated[str, _EVENT_ID]) -> EventOut:
    """The event at its latest stored revision; 404 when the id is unknown."""
    return EventOut.from_stored(_require_event(store, event_id))


@router.get(
    "/events/{event_id}/audit",
    response_model=list[AuditOut],
    summary="The alert's audit trail",
    responses=_NOT_FOUND,
)
def get_audit(store: StoreDep, _token: Viewer, event_id: Annotated[str, _EVENT_ID]) -> list[AuditOut]:
    """Who did what to the alert, when, with which note: oldest first, starting with its raising."""
    _require_event(store, event_id)
    return [AuditOut.model_validate(entry) for entry in store.audit_trail(event_id)]


def _evidence_path_or_404(evidence: EvidenceDep, stored: StoredEvent, relpath: str | None, what: str) -> str:
    """The absolute path of an evidence file, or 404/500 saying why it cannot be served."""
    if relpath is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"event {stored.id!r} has no {what}")
    try:
        path = evidence.resolve(relpath)
    except EvidenceError as exc:
        logger.error("%s: the %s path of event %s is invalid: %s", stored.camera_id, what, stored.id, exc)
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, detail=f"cannot read the {what}") from exc
    if not path.is_file():
        logger.warning("%s: the %s of event %s is missing at %s", stored.camera_id, what, stored.id, relpath)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"the {what} file of event {stored.id!r} is missing"
        )
    return str(path)


@router.get(
    "/events/{event_id}/snapshot.jpg",
    response_class=Response,
    response_model=None,
    summary="The event's snapshot JPEG",
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The JPEG of the confirming frame."},
        404: {"description": "Unknown event, or the event has no snapshot."},
    },
)
def get_snapshot(
    store: StoreDep, evidence: EvidenceDep, _token: ViewerByCookie, event_id: Annotated[str, _EVENT_ID]
) -> Response:
    """The snapshot of the event's latest revision that brought one; 404 when there is none."""
    stored = _require_event(store, event_id)
    if stored.snapshot_path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"event {event_id!r} has no snapshot")
    try:
        data = evidence.read(stored.snapshot_path)
    except EvidenceNotFoundError as exc:
        logger.warning("%s: snapshot of event %s is missing: %s", stored.camera_id, event_id, exc)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"the snapshot file of event {event_id!r} is missing"
        ) from exc
    except EvidenceError as exc:
        logger.error("%s: cannot read the snapshot of event %s: %s", stored.camera_id, event_id, exc)
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR, detail=f"cannot read the snapshot of event {event_id!r}"
        ) from exc
    return Response(content=data, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})


@router.get(
    "/events/{event_id}/clip.mp4",
    response_class=FileResponse,
    response_model=None,
    summary="The event's clip (MP4), with range requests",
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The whole clip."},
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range."},
        400: {"description": "The Range header is malformed (problem details)."},
        404: {"description": "Unknown event, or the event has no clip."},
        416: {"description": "The range lies outside the file (problem details)."},
    },
)
def get_clip(
    store: StoreDep,
    evidence: EvidenceDep,
    _token: ViewerByCookie,
    event_id: Annotated[str, _EVENT_ID],
    range_: Annotated[
        str | None, Header(alias="range", max_length=200, description="`bytes=<start>-<end>`, optional.")
    ] = None,
) -> FileResponse:
    """The clip the pipeline recorded around the event; ``Range: bytes=a-b`` answers 206 with that part."""
    stored = _require_event(store, event_id)
    relpath = stored.clip_path or evidence.clip_relpath(stored.camera_id, stored.id)
    path = _evidence_path_or_404(evidence, stored, relpath, "clip")
    try:  # once: evidence retention may delete the file after the check above (it answered a 500)
        found = os.stat(path)
    except FileNotFoundError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"the clip file of event {stored.id!r} is missing"
        ) from None
    if range_ is not None:
        _check_range(range_, found.st_size)
    return FileResponse(
        path, stat_result=found, media_type="video/mp4", headers={"Cache-Control": "no-cache"}
    )


def _check_range(range_: str, size: int) -> None:
    """A 400 or 416 problem for a ``Range`` header ``FileResponse`` would refuse with a plain-text body.

    It is checked with ``FileResponse``'s own parser, so what passes here is what it serves.
    """
    if _parse_range is None:
        return
    try:
        _parse_range(range_, size)
    except MalformedRangeHeader as exc:
        raise ApiProblem(
            status.HTTP_400_BAD_REQUEST,
            f"Range header {range_!r}: {exc.content.removeprefix('Range header: ')}",
        ) from exc
    except RangeNotSatisfiable as exc:
        raise ApiProblem(
            status.HTTP_416_RANGE_NOT_SATISFIABLE,
            f"Range header {range_!r}: the clip has {size} bytes; the range must start within them",
            headers={"Content-Range": f"bytes */{size}"},
        ) from exc


class _Alert:
    """The alert a lifecycle route acts on: its id (from the path), the operator, the store and the metrics."""

    def __init__(
        self, store: StoreDep, metrics: MetricsDep, token: Operator, event_id: Annotated[str, _EVENT_ID]
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._actor = token.name
        self.event_id = event_id

    def apply(self, action: Action, *, note: str, assignee: str | None = None) -> EventOut:
        """Apply a lifecycle action; 404 for an unknown id, 409 with the allowed actions when refused."""
        try:
            result = self._store.transition(
                self.event_id, action, actor=self._actor, note=note, assignee=assignee
            )
        except KeyError as exc:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"event {self.event_id!r} not found"
            ) from exc
        except InvalidTransitionError as exc:
            raise ApiProblem(
                status.HTTP_409_CONFLICT,
                str(exc),
                extensions={
                    "state": AlertState(exc.state).value,
                    "allowed_actions": [Action(a).value for a in exc.allowed],
                },
            ) from exc
        self._metrics.transitions.labels(action=action.value).inc()
        return EventOut.from_stored(result.event)


_AlertDep = Annotated[_Alert, Depends()]
_LIFECYCLE: dict[str, Any] = {
    "response_model": EventOut,
    "responses": {
        **_NOT_FOUND,
        **problem_responses(
            409, descriptions={409: "Not allowed from the alert's state; `allowed_actions` lists what is."}
        ),
    },
}


@router.post("/events/{event_id}/acknowledge", summary="Acknowledge an alert", **_LIFECYCLE)
def acknowledge(alert: _AlertDep, body: AcknowledgeIn) -> EventOut:
    """raised → acknowledged: the control room has seen the alert (stops its escalation)."""
    return alert.apply(Action.ACKNOWLEDGE, note=body.note)


@router.post("/events/{event_id}/dispatch", summary="Dispatch someone", **_LIFECYCLE)
def dispatch(alert: _AlertDep, body: DispatchIn) -> EventOut:
    """acknowledged → dispatched, with the assignee and the work-order note."""
    return alert.apply(Action.DISPATCH, note=body.note, assignee=body.assignee)


@router.post("/events/{event_id}/resolve", summary="Record the disposal", **_LIFECYCLE)
def resolve(alert: _AlertDep, body: ResolveIn) -> EventOut:
    """acknowledged or dispatched → resolved, with the disposal note."""
    return alert.apply(Action.RESOLVE, note=body.note)


@router.post("/events/{event_id}/false-alarm", summary="Mark a false alarm", **_LIFECYCLE)
def false_alarm(alert: _AlertDep, body: FalseAlarmIn) -> EventOut:
    """acknowledged or dispatched → false_alarm, with the reason."""
    return alert.apply(Action.FALSE_ALARM, note=body.reason)


@router.post("/events/{event_id}/close", summary="Close", **_LIFECYCLE)
def close(alert: _AlertDep, body: CloseIn) -> EventOut:
    """resolved or false_alarm → closed."""
    return alert.apply(Action.CLOSE, note=body.note)
