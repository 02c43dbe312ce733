"""Operations: liveness (``/healthz``), readiness (``/readyz``), Prometheus (``/metrics``), camera health,
and the site's directory (``/site``: the names the control room shows instead of ids, the site's time
zone, and whether this process has a live view to poll).

``/healthz`` tells an anonymous caller only that the process answers
(``{"status": "ok"}``); with a viewer token it adds the version, the database,
the webhook worker and each camera's state and last error. ``/readyz`` answers
one boolean per check and, when one fails, what to do about it (no secrets: a
count of megabytes free, "run anjian db upgrade").
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from anjian.service.api.deps import (
    AUTH_RESPONSES,
    CameraHealthDep,
    DispatcherDep,
    MetricsDep,
    OptionalViewer,
    StoreDep,
    Viewer,
)
from anjian.service.api.models import LivenessOut, ReadyOut
from anjian.service.api.routing import GuardedRoute
from anjian.service.database import is_schema_current
from anjian.service.errors import DatabaseError
from anjian.service.metrics import CONTENT_TYPE
from anjian.service.records import DeliveryStatus
from anjian.service.schemas import CameraHealthOut, HealthOut

__all__ = ["ReadinessOut", "SiteOut", "anjian_version", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"], route_class=GuardedRoute)


def anjian_version() -> str:
    """The installed anjian version, or ``"0"`` from a bare checkout."""
    try:
        return version("anjian")
    except PackageNotFoundError:
        return "0"


@router.get(
    "/healthz",
    response_model=HealthOut | LivenessOut,
    summary="Liveness; with a viewer token, dependencies and cameras too",
    responses={
        401: AUTH_RESPONSES[401],
        429: AUTH_RESPONSES[429],
        503: {"description": "With a token: the database does not answer.", "model": HealthOut},
    },
)
def healthz(
    store: StoreDep,
    dispatcher: DispatcherDep,
    camera_health: CameraHealthDep,
    response: Response,
    token: OptionalViewer,
) -> HealthOut | LivenessOut:
    """Anonymous: 200 ``{"status": "ok"}``. With a viewer token: the details, 503 ``degraded`` when the database fails.

    Liveness only: a full disk does not fail it. What watches liveness restarts the process,
    which frees no space and would lose the alerts the event writer holds in memory until the
    database takes them again; ``/readyz`` and ``anjian_storage_free_bytes`` report the disk.
    """
    if token is None:
        return LivenessOut()
    pending: int | None = None
    try:
        store.ping()
        pending = store.outbox.count(DeliveryStatus.PENDING)
        is_database_ok = True
    except SQLAlchemyError:
        logger.exception("health check: the database does not answer")
        is_database_ok = False
    if not is_database_ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthOut(
        status="ok" if is_database_ok else "degraded",
        version=anjian_version(),
        is_database_ok=is_database_ok,
        is_dispatcher_running=dispatcher is not None and dispatcher.is_running,
        pending_deliveries=pending,
        cameras=[CameraHealthOut.model_validate(h) for h in camera_health()] if camera_health else [],
    )


class ReadinessOut(ReadyOut):
    """Whether the service can take traffic, and what to do about each check that fails."""

    problems: list[str] = Field(
        default_factory=list,
        description="One line per failing check, saying why (e.g. how much disk space is left).",
    )


@router.get(
    "/readyz",
    response_model=ReadinessOut,
    summary="Readiness",
    responses={
        503: {"description": "Not ready; `checks` says what fails, `problems` why.", "model": ReadinessOut}
    },
)
def readyz(
    store: StoreDep, dispatcher: DispatcherDep, metrics: MetricsDep, response: Response
) -> ReadinessOut:
    """200 when the database answers at the schema this anjian needs, webhooks are being sent and the
    storage folder's file system has ``storage.min_free_mb`` free (``disk_space``); else 503 with the reasons.

    The free space is a check of its own because a full disk stops SQLite from committing
    (no alert is stored) while the database still answers ``SELECT 1``.
    """
    checks = {
        "database": False,
        "schema": False,
        "dispatcher": dispatcher is not None and dispatcher.is_running,
    }
    problems: list[str] = []
    try:
        store.ping()
        checks["database"] = True
        checks["schema"] = is_schema_current(store.engine)
    except (SQLAlchemyError, DatabaseError):
        logger.exception("readiness check failed")
        problems.append("the database does not answer (see the service log)")
    if checks["database"] and not checks["schema"]:
        problems.append("the database schema is behind this anjian: run `anjian db upgrade`")
    if not checks["dispatcher"]:
        problems.append("the webhook dispatcher is not running")
    if metrics.storage_space is not None:
        reading = metrics.storage_space.read()  # logs when it crosses the threshold
        checks["disk_space"] = not reading.is_low
        if reading.problem is not None:
            problems.append(reading.problem)
    is_ready = all(checks.values())
    if not is_ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return ReadinessOut(is_ready=is_ready, checks=checks, problems=problems)


@router.get(
    "/metrics",
    response_class=Response,
    response_model=None,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
)
def metrics(registry: MetricsDep) -> Response:
    """Events by behaviour/colour/state, webhook deliveries and latency, outbox depth, camera fps and health."""
    return Response(content=registry.render(), media_type=CONTENT_TYPE)


@router.get(
    "/cameras",
    response_model=list[CameraHealthOut],
    summary="Camera health",
    responses=AUTH_RESPONSES,
)
def cameras(camera_health: CameraHealthDep, _token: Viewer) -> list[CameraHealthOut]:
    """Connection state, fps and counters of each camera this process reads and of those pipelines elsewhere
    report (`POST /ingest/health`), with their `node`; `stale` when their node stopped reporting them."""
    return [CameraHealthOut.model_validate(h) for h in camera_health()] if camera_health else []


class _DirectoryModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class ZoneOut(_DirectoryModel):
    """A zone of a camera's view."""

    id: str
    name: str = Field(..., description="The site YAML's name, else the id.")
    kind: str


class CameraOut(_DirectoryModel):
    """A camera of a workshop (no URL: it carries credentials)."""

    id: str
    name: str = Field(..., description="The site YAML's name, else the id.")
    zones: list[ZoneOut]


class WorkshopOut(_DirectoryModel):
    """A workshop and its cameras."""

    id: str
    name: str = Field(..., description="The site YAML's name, else the id.")
    kind: str
    cameras: list[CameraOut]


class SiteOut(_DirectoryModel):
    """The site's workshops, cameras and zones with the names the control room shows, and how to show times.

    ``timezone`` lets a screen show times as the site reads them (the captions burned into
    frames and snapshots, the reports), whatever zone the screen's computer is set to.
    """

    id: str
    name: str = Field(..., description="The site YAML's name, else the id.")
    timezone: str = Field(..., description="IANA time zone of the site: show times in it.")
    has_live_view: bool = Field(
        ...,
        description="Whether this process reads cameras and so serves `/cameras/{id}/live.jpg` "
        "(`anjian run`); `anjian serve` answers 404 there.",
    )
    workshops: list[WorkshopOut]


@router.get(
    "/site", response_model=SiteOut, summary="Workshops, cameras and zones by name", responses=AUTH_RESPONSES
)
def site(request: Request, _token: Viewer) -> SiteOut:
    """The site's directory from its YAML, so screens and reports show names where events carry ids,
    with the site's time zone and whether this process has a live view."""
    config = request.app.state.config.site
    return SiteOut(
        id=config.id,
        name=config.name or config.id,
        timezone=config.timezone,
        has_live_view=getattr(request.app.state, "live_view", None) is not None,
        workshops=[
            WorkshopOut(
                id=workshop.id,
                name=workshop.name or workshop.id,
                kind=workshop.kind,
                cameras=[
                    CameraOut(
                        id=camera.id,
                        name=camera.name or camera.id,
                        zones=[ZoneOut(id=z.id, name=z.name or z.id, kind=z.kind) for z in camera.zones],
                    )
                    for camera in workshop.cameras
                ],
            )
            for workshop in config.workshops
        ],
    )
