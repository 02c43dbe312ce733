"""The hub's HTTP API and dashboard: one view over every plant a token may see.

Every ``/api`` route needs ``Authorization: Bearer <hub token>``; the token's scope
(``all``, ``group:<name>``, ``plant:<id>``) decides which plants exist for it: an incident of
another plant answers 404, as if it did not exist. Adding a remark needs the supervisor role.
An incident's clip is fetched from its plant over the bus when first asked for
(``anjian.service.hub.clips``): 504 when the plant does not answer, 404 when it has none,
413 when it is over ``hub.max_clip_bytes``, 503 with Retry-After when the plant or the hub is
sending as many clips as it may already. The fetch runs in a thread of its own, never in the
thread pool the other routes share.
Errors are RFC 9457 problem details, and every response carries the service's security headers.
The page's files are served from ``/static/``, its behaviours' names (``/static/behaviours.js``) made
from the plants' one table (``anjian.service.behaviour_names``), as the control room's are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from anjian.pipeline.event_wire import ID_PATTERN
from anjian.service.api.dashboard import BEHAVIOURS_SCRIPT, behaviours_script_response
from anjian.service.api.problems import install_problem_handlers
from anjian.service.api.routing import body_limited_route
from anjian.service.api.security import DEFAULT_CSP, SecurityHeadersMiddleware
from anjian.service.bus.errors import (
    BusError,
    BusUnavailableError,
    ClipError,
    ClipNotFoundError,
    ClipTooBigError,
    PlantBusyError,
    PlantUnreachableError,
)
from anjian.service.hub.api_models import (
    CameraOut,
    EventDetailOut,
    HubAuditOut,
    HubEventOut,
    MeOut,
    OverviewOut,
    PlantOut,
    RemarkIn,
    RemarkOut,
    SensorOut,
)
from anjian.service.hub.clips import HubBusyError, HubClips
from anjian.service.hub.config import HubConfig
from anjian.service.hub.store import HubStore
from anjian.service.hub.tokens import HubRole, HubToken
from anjian.service.schemas import epoch_to_datetime

__all__ = ["create_hub_app"]

_DASHBOARD = Path(__file__).parent / "dashboard"
_MAX_BODY_BYTES = 16 * 1024
"""Largest request body (a remark: 4,000 characters at most), refused as it arrives, before the token is read."""

PlantId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=ID_PATTERN, description="Plant id.")]
EventId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=ID_PATTERN, description="Event id.")]
_CLIP_ERRORS: tuple[tuple[type[Exception], int], ...] = (  # the first that matches, so subclasses first
    (ClipNotFoundError, status.HTTP_404_NOT_FOUND),
    (ClipTooBigError, status.HTTP_413_CONTENT_TOO_LARGE),
    (PlantUnreachableError, status.HTTP_504_GATEWAY_TIMEOUT),
    (PlantBusyError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (BusUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ClipError, status.HTTP_502_BAD_GATEWAY),
    (BusError, status.HTTP_502_BAD_GATEWAY),
    (ValueError, status.HTTP_404_NOT_FOUND),  # an id that cannot name a clip
)
_TOTAL_HEADER = "X-Total-Count"  # how many incidents a listing has without its limit
_CLIP_RETRY_AFTER_S = "10"  # seconds a request refused while its plant (or the hub) sends other clips waits
_DASHBOARD_CSP = DEFAULT_CSP.replace(
    "media-src 'self'", "media-src 'self' blob:"
)  # a fetched clip plays from a blob


class _Scope:
    """The token of a request and the plants it sees."""

    def __init__(self, token: HubToken, plant_ids: list[str]) -> None:
        self.token = token
        self.plant_ids = plant_ids

    def require_plant(self, plant_id: str) -> None:
        """404 for a plant the token does not see (its existence is not disclosed)."""
        if plant_id not in self.plant_ids:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no plant {plant_id!r}")

    def plants(self, plant_id: str | None) -> list[str]:
        """The plants a list covers: every plant the token sees, or the one asked for (404 if not seen)."""
        if plant_id is None:
            return self.plant_ids
        self.require_plant(plant_id)
        return [plant_id]


def _scope(request: Request) -> _Scope:
    """The request's token (401 without a valid one) and the plants it sees."""
    store: HubStore = request.app.state.hub_store
    header = request.headers.get("authorization", "")
    kind, _, secret = header.partition(" ")
    token = store.tokens.authenticate(secret.strip()) if kind.lower() == "bearer" else None
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid hub token is needed (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return _Scope(token, token.plant_ids(request.app.state.hub_plants))


Scope = Annotated[_Scope, Depends(_scope)]


def create_hub_app(
    config: HubConfig,
    store: HubStore,
    *,
    on_remark: Callable[[], None] | None = None,
    clips: HubClips | None = None,
    is_bus_connected: Callable[[], bool] = lambda: True,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the hub's FastAPI app over its store.

    Args:
        config: The hub config (plants, groups, deadlines).
        store: The hub's store (its owner opens and closes it).
        on_remark: Called after a remark is stored (``HubBus.remark_added``: publish it now).
        clips: Fetches and caches the plants' clips; ``None``: clips are not served (503).
        is_bus_connected: Whether the hub's NATS connection is up, for ``/readyz``.
        clock: Epoch seconds: what "overdue" and "silent" are judged against.
    """
    app = FastAPI(title="anjian hub", docs_url=None, redoc_url=None)
    app.add_middleware(SecurityHeadersMiddleware)
    install_problem_handlers(app)
    app.state.hub_store = store
    app.state.hub_plants = [(p.id, p.group) for p in config.plants]

    api = APIRouter(prefix="/api", route_class=body_limited_route(_MAX_BODY_BYTES))

    @api.get("/me", response_model=MeOut)
    def me(who: Scope) -> MeOut:
        """The token's name, role, scope and plants."""
        return MeOut(
            name=who.token.name, role=who.token.role.value, scope=who.token.scope, plant_ids=who.plant_ids
        )

    @api.get("/overview", response_model=OverviewOut)
    def overview(who: Scope) -> OverviewOut:
        """Every plant the token sees: open incidents by colour, overdue ones, response times, cameras, sensors."""
        seen = [(p.id, p.name or p.id, p.group) for p in config.plants if p.id in who.plant_ids]
        now = clock()
        return OverviewOut(
            hub_name=config.hub.name,
            timezone=config.hub.timezone,
            at=epoch_to_datetime(now),
            plants=[
                PlantOut.from_summary(s, now=now, silent_after_s=config.hub.silent_after_s)
                for s in store.summaries(seen, config.sla, now=now)
            ],
        )

    @api.get(
        "/events",
        response_model=list[HubEventOut],
        responses={
            200: {
                "headers": {
                    _TOTAL_HEADER: {
                        "description": "How many incidents match without the limit.",
                        "schema": {"type": "integer"},
                    }
                }
            }
        },
    )
    def events(
        who: Scope,
        response: Response,
        plant_id: Annotated[str | None, Query(max_length=64)] = None,
        is_open: Annotated[bool | None, Query(alias="open")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[HubEventOut]:
        """Incidents of the plants the token sees (or of one of them), newest first.

        Open ones (``open=true``) come most urgent first instead: raised before acknowledged and
        dispatched, then red to blue, then the oldest first. ``X-Total-Count`` says how many match,
        so a list cut at ``limit`` can say so.
        """
        plants = who.plants(plant_id)
        events = store.list_events(plants, is_open=is_open, limit=limit)
        total = len(events)
        if total == limit:  # perhaps cut: count them all (a list shorter than its limit is whole)
            total = max(limit, store.count_listed(plants, is_open=is_open))
        response.headers[_TOTAL_HEADER] = str(total)
        return [HubEventOut.model_validate(e) for e in events]

    @api.get("/plants/{plant_id}/events/{event_id}", response_model=EventDetailOut)
    def event_detail(who: Scope, plant_id: PlantId, event_id: EventId) -> EventDetailOut:
        """One incident with the plant's record of it and its audit trail (remarks included)."""
        who.require_plant(plant_id)
        event = store.get_event(plant_id, event_id)
        if event is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {event_id!r} of plant {plant_id!r}")
        return EventDetailOut(
            summary=HubEventOut.model_validate(event),
            event=event.event,
            snapshot_url=f"/api/plants/{plant_id}/events/{event_id}/snapshot" if event.has_snapshot else None,
            clip_url=f"/api/plants/{plant_id}/events/{event_id}/clip",
            audit=[HubAuditOut.model_validate(line) for line in store.audit_trail(plant_id, event_id)],
        )

    @api.get(
        "/plants/{plant_id}/events/{event_id}/snapshot",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def snapshot(who: Scope, plant_id: PlantId, event_id: EventId) -> Response:
        """The incident's snapshot JPEG, as the plant sent it."""
        who.require_plant(plant_id)
        data = store.snapshot(plant_id, event_id)
        if data is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no snapshot of event {event_id!r}")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @api.get(
        "/plants/{plant_id}/events/{event_id}/clip",
        response_class=FileResponse,
        responses={
            200: {"content": {"video/mp4": {}}},
            404: {"description": "No such incident, or its plant has no clip of it."},
            413: {"description": "The clip is over hub.max_clip_bytes."},
            502: {"description": "The plant failed to send it, or sent bytes that do not check out."},
            503: {
                "description": "The hub is not connected to its nats-server, or the plant is sending as many "
                "clips as hub.clip_fetches_per_plant already, or the hub is fetching as many as "
                "hub.max_clip_fetches (Retry-After)."
            },
            504: {"description": "The plant did not answer: offline, or its link is down."},
        },
    )
    async def clip(who: Scope, plant_id: PlantId, event_id: EventId) -> FileResponse:
        """The incident's clip (MP4, range requests), fetched from its plant over the bus when first asked for.

        Async: the fetch (minutes over a slow uplink) holds a thread of ``HubClips`` of its own,
        never one of the pool the other routes share.
        """
        who.require_plant(plant_id)
        if await run_in_threadpool(store.get_event, plant_id, event_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {event_id!r} of plant {plant_id!r}")
        if clips is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this hub fetches no clips (no bus)")
        try:
            path = await clips.serve(plant_id, event_id)
        except (BusError, ValueError) as exc:
            code = next(code for kind, code in _CLIP_ERRORS if isinstance(exc, kind))
            is_busy = isinstance(exc, (PlantBusyError, HubBusyError))
            headers = {"Retry-After": _CLIP_RETRY_AFTER_S} if is_busy else None
            raise HTTPException(code, str(exc), headers=headers) from exc
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=300"})

    @api.post(
        "/plants/{plant_id}/events/{event_id}/remarks",
        response_model=RemarkOut,
        status_code=status.HTTP_202_ACCEPTED,
    )
    def add_remark(who: Scope, plant_id: PlantId, event_id: EventId, body: RemarkIn) -> RemarkOut:
        """Add a remark (or press for action): stored here, then sent to the plant's audit trail by the bus."""
        who.require_plant(plant_id)
        if who.token.role is not HubRole.SUPERVISOR:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "adding a remark needs a supervisor token")
        try:
            remark = store.add_remark(
                plant_id,
                event_id,
                actor=who.token.name,
                note=body.note,
                is_press_for_action=body.press_for_action,
            )
        except KeyError as exc:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"no event {event_id!r} of plant {plant_id!r}"
            ) from exc
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
        if on_remark is not None:
            on_remark()
        return RemarkOut(id=remark.id, plant_id=plant_id, event_id=event_id, at=epoch_to_datetime(remark.at))

    @api.get("/cameras", response_model=list[CameraOut])
    def cameras(who: Scope, plant_id: Annotated[str | None, Query(max_length=64)] = None) -> list[CameraOut]:
        """The cameras of the plants the token sees, as last reported."""
        return [CameraOut.model_validate(c) for c in store.cameras(who.plants(plant_id))]

    @api.get("/sensors", response_model=list[SensorOut])
    def sensors(who: Scope, plant_id: Annotated[str | None, Query(max_length=64)] = None) -> list[SensorOut]:
        """The sensors of the plants the token sees, as last reported (gas, dust, pressure ... with their health)."""
        return [SensorOut.from_status(s) for s in store.sensors(who.plants(plant_id))]

    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(response: Response) -> dict[str, str]:
        """503 unless the database answers and the hub is connected to its nats-server."""
        try:
            store.ping()
            database = "ok"
        except Exception as exc:  # noqa: BLE001 - any database failure makes the hub not ready
            database = type(exc).__name__
        bus = "connected" if is_bus_connected() else "disconnected"
        if database != "ok" or bus != "connected":
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"database": database, "nats": bus}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(
            _DASHBOARD / "index.html",
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": _DASHBOARD_CSP},
        )

    @app.get(f"/static/{BEHAVIOURS_SCRIPT}", include_in_schema=False)
    def behaviours(request: Request) -> Response:
        """The behaviours' names for ``hub.js``, made from the service's one table (before the static mount)."""
        return behaviours_script_response(request)

    app.mount("/static", StaticFiles(directory=_DASHBOARD), name="static")
    return app
