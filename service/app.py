"""The HTTP API of the alert service: events, their snapshots and a health check.

``create_app`` wires the store, the evidence folder and the webhook dispatcher
into a FastAPI app. Routes are plain ``def`` functions (FastAPI runs them in its
thread pool) because the store is synchronous SQLAlchemy. The routes live in one
router here while there is one resource; they move to ``service/api/`` (one router
per resource) when the alert lifecycle adds more.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from sqlalchemy.exc import SQLAlchemyError

from cameras.health import CameraHealth
from pipeline.event import Behaviour, RiskLevel
from service.config import AnjianConfig
from service.errors import EvidenceError, EvidenceNotFoundError
from service.evidence import EvidenceStore
from service.schemas import CameraHealthOut, EventList, EventOut, HealthOut
from service.store import DeliveryStatus, EventStore, StoredEvent
from service.webhooks import WebhookDispatcher

__all__ = [
    "CameraHealthProvider",
    "create_app",
    "get_camera_health",
    "get_dispatcher",
    "get_evidence",
    "get_store",
]

logger = logging.getLogger(__name__)

CameraHealthProvider = Callable[[], Sequence[CameraHealth]]
"""Returns the health of every camera this process reads (``PipelineRunner.health``)."""

_EVENT_ID = PathParam(..., min_length=1, max_length=64, description="Event id.")


def _version() -> str:
    """The installed anjian version, or ``"0"`` from a bare checkout."""
    try:
        return version("anjian")
    except PackageNotFoundError:
        return "0"


def get_store(request: Request) -> EventStore:
    """Dependency: the app's event store (override it in tests with ``app.dependency_overrides``)."""
    store: EventStore = request.app.state.store
    return store


def get_evidence(request: Request) -> EvidenceStore:
    """Dependency: the app's evidence folder."""
    evidence: EvidenceStore = request.app.state.evidence
    return evidence


def get_dispatcher(request: Request) -> WebhookDispatcher | None:
    """Dependency: the app's webhook dispatcher, if any."""
    dispatcher: WebhookDispatcher | None = request.app.state.dispatcher
    return dispatcher


def get_camera_health(request: Request) -> CameraHealthProvider | None:
    """Dependency: what reports camera health, when this process reads cameras."""
    provider: CameraHealthProvider | None = request.app.state.camera_health
    return provider


StoreDep = Annotated[EventStore, Depends(get_store)]
EvidenceDep = Annotated[EvidenceStore, Depends(get_evidence)]
DispatcherDep = Annotated[WebhookDispatcher | None, Depends(get_dispatcher)]
CameraHealthDep = Annotated[CameraHealthProvider | None, Depends(get_camera_health)]


def _epoch(moment: datetime | None) -> float | None:
    """Epoch seconds of a query time; a time without a zone is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _require_event(store: EventStore, event_id: str) -> StoredEvent:
    """The stored event, or a 404."""
    stored = store.get_event(event_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"event {event_id!r} not found")
    return stored


router = APIRouter()


@router.get("/events", response_model=EventList, tags=["events"], summary="List events, newest first")
def list_events(
    store: StoreDep,
    camera_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    behaviour: Behaviour | None = None,
    severity: RiskLevel | None = None,
    since: Annotated[
        datetime | None, Query(description="Events started at or after this time (ISO-8601 or epoch s).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Events started before this time (ISO-8601 or epoch s).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most items to return.")] = 100,
) -> EventList:
    """Events matching every given filter, ordered by ``started_at``, newest first."""
    since_s, until_s = _epoch(since), _epoch(until)
    if since_s is not None and until_s is not None and since_s > until_s:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"since ({since}) must not be after until ({until})",
        )
    events = store.list_events(
        camera_id=camera_id, behaviour=behaviour, severity=severity, since=since_s, until=until_s, limit=limit
    )
    items = [EventOut.from_stored(e) for e in events]
    return EventList(items=items, count=len(items))


@router.get("/events/{event_id}", response_model=EventOut, tags=["events"], summary="One event")
def get_event(store: StoreDep, event_id: Annotated[str, _EVENT_ID]) -> EventOut:
    """The event at its latest stored revision; 404 when the id is unknown."""
    return EventOut.from_stored(_require_event(store, event_id))


@router.get(
    "/events/{event_id}/snapshot.jpg",
    response_class=Response,
    response_model=None,
    tags=["events"],
    summary="The event's snapshot JPEG",
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The JPEG of the confirming frame."},
        404: {"description": "Unknown event, or the event has no snapshot."},
    },
)
def get_snapshot(store: StoreDep, evidence: EvidenceDep, event_id: Annotated[str, _EVENT_ID]) -> Response:
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


@router.get("/healthz", response_model=HealthOut, tags=["health"], summary="Liveness and dependencies")
def healthz(
    store: StoreDep, dispatcher: DispatcherDep, camera_health: CameraHealthDep, response: Response
) -> HealthOut:
    """200 with ``status: ok`` when the database answers, else 503 with ``status: degraded``."""
    pending: int | None = None
    try:
        store.ping()
        pending = store.count_deliveries(DeliveryStatus.PENDING)
        is_database_ok = True
    except SQLAlchemyError:
        logger.exception("health check: the database does not answer")
        is_database_ok = False
    if not is_database_ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthOut(
        status="ok" if is_database_ok else "degraded",
        version=_version(),
        is_database_ok=is_database_ok,
        is_dispatcher_running=dispatcher is not None and dispatcher.is_running,
        pending_deliveries=pending,
        cameras=[CameraHealthOut.from_health(h) for h in camera_health()] if camera_health else [],
    )


def create_app(
    config: AnjianConfig,
    *,
    store: EventStore | None = None,
    evidence: EvidenceStore | None = None,
    dispatcher: WebhookDispatcher | None = None,
    camera_health: CameraHealthProvider | None = None,
) -> FastAPI:
    """Build the alert service's FastAPI app.

    Parts not passed in are created from ``config``; the app owns those: its
    lifespan starts the dispatcher it created and, on shutdown, stops it and
    closes the store it opened. Parts passed in are left to the caller to start
    and stop (``anjian run`` shares them with the pipeline's ``StoreSink``).

    Args:
        config: The validated site config.
        store: Event store; default ``EventStore.from_config(config.storage)``.
        evidence: Evidence folder; default ``EvidenceStore(config.storage.dir)``.
        dispatcher: Webhook worker; default one over ``store`` and ``config.webhooks``.
        camera_health: Reports the cameras' health for ``/healthz`` (``anjian run``
            passes ``PipelineRunner.health``); ``None`` lists no cameras.

    Returns:
        The app; ``app.state`` holds ``config``, ``store``, ``evidence``, ``dispatcher``
        and ``camera_health``.

    Example:
        >>> app = create_app(load_config("site.yaml"))
        >>> uvicorn.run(app, host=config.server.host, port=config.server.port)
    """
    is_store_owned = store is None
    is_dispatcher_owned = dispatcher is None
    store = store if store is not None else EventStore.from_config(config.storage)
    evidence = evidence if evidence is not None else EvidenceStore(config.storage.dir)
    dispatcher = dispatcher if dispatcher is not None else WebhookDispatcher(store, config.webhooks)
    owned_store, owned_dispatcher = store, dispatcher

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if is_dispatcher_owned:
            owned_dispatcher.start()
        try:
            yield
        finally:
            if is_dispatcher_owned:
                owned_dispatcher.stop()
            if is_store_owned:
                owned_store.close()

    app = FastAPI(
        title="anjian",
        version=_version(),
        summary="Safety alerts from factory cameras.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.store = store
    app.state.evidence = evidence
    app.state.dispatcher = dispatcher
    app.state.camera_health = camera_health
    app.include_router(router)
    return app
