"""The alert service's FastAPI app: the routers over the service's parts (store, evidence, webhooks, escalation).

Routes are plain ``def`` functions (FastAPI runs them in its thread pool) because
the store is synchronous SQLAlchemy; only the live feed is ``async``. One router per
resource lives in ``service/api/``; the dashboard's files in ``service/dashboard/``.

Every router uses ``GuardedRoute`` (token check and body limit before the body is
read, strict JSON); every error answers RFC 9457 problem details
(``anjian.service.api.problems``); every response carries the security headers
(``anjian.service.api.security``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from anjian.service.api import (
    control,
    dashboard,
    docs,
    events,
    ingest,
    live,
    ops,
    sensors,
    sessions,
    stream,
    tokens,
    webhooks,
)
from anjian.service.api.auth import Authenticator
from anjian.service.api.deps import (
    CameraHealthProvider,
    get_camera_health,
    get_dispatcher,
    get_evidence,
    get_store,
)
from anjian.service.api.limits import FailedAuthLimiter
from anjian.service.api.ops import anjian_version
from anjian.service.api.problems import install_problem_handlers
from anjian.service.api.routing import BodyLimits
from anjian.service.api.security import SecurityHeadersMiddleware
from anjian.service.api.session_cookie import SessionSigner
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import AnjianConfig
from anjian.service.control import PipelineControl

__all__ = [
    "CameraHealthProvider",
    "create_app",
    "get_camera_health",
    "get_dispatcher",
    "get_evidence",
    "get_store",
]

logger = logging.getLogger(__name__)


def create_app(
    config: AnjianConfig,
    parts: ServiceParts | None = None,
    *,
    pipeline_control: PipelineControl | None = None,
) -> FastAPI:
    """Build the alert service's FastAPI app over the service's parts.

    Without ``parts`` the app builds its own (``build_service_parts(config)``) and its
    lifespan starts them and, on shutdown, closes them. Parts passed in belong to the
    caller, who starts and closes them (``build_runtime`` shares them with the pipeline).

    Args:
        config: The validated site config.
        parts: Store, evidence, metrics, dispatcher, escalator, event writer and the
            cameras' health, from ``anjian.service.composition.build_service_parts``.
        pipeline_control: Camera reload and reference resets of the pipeline in this
            process (``anjian run``); ``None`` answers those routes with 409.

    Returns:
        The app; ``app.state`` holds ``config``, ``store``, ``evidence``, ``dispatcher``,
        ``camera_health``, ``metrics``, ``escalator``, ``sink`` (what ingest stores through),
        ``sessions`` (dashboard cookies), ``authenticator`` and ``body_limits``.

    Raises:
        DatabaseError: Building its own parts, the database cannot be opened or migrated.

    Example:
        >>> app = create_app(load_config("site.yaml"))
        >>> uvicorn.run(app, host=config.server.host, port=config.server.port)
    """
    lifespan = None
    if parts is None:
        parts = build_service_parts(config)
        lifespan = _lifespan(parts)
    app = FastAPI(
        title="anjian",
        version=anjian_version(),
        summary="Safety alerts from factory cameras: events, their lifecycle, webhooks, live feed.",
        lifespan=lifespan,
        docs_url=None,  # served offline by service.api.docs
        redoc_url=None,
    )
    limits = config.server.limits
    session_signer = SessionSigner(config.storage.dir, ttl_s=limits.session_ttl_s)
    app.state.config = config
    app.state.store = parts.store
    app.state.evidence = parts.evidence
    app.state.dispatcher = parts.dispatcher
    app.state.camera_health = parts.camera_health
    app.state.live_view = parts.live_view
    app.state.metrics = parts.metrics
    app.state.escalator = parts.escalator
    app.state.pipeline_control = pipeline_control
    app.state.sink = parts.sink
    app.state.readings = parts.readings
    app.state.sensors = parts.sensors
    app.state.sessions = session_signer
    app.state.authenticator = Authenticator(
        parts.store.tokens,
        session_signer,
        FailedAuthLimiter(burst=limits.failed_auth_burst, per_minute=limits.failed_auth_per_minute),
    )
    app.state.body_limits = BodyLimits(
        default_bytes=limits.max_body_bytes, ingest_bytes=limits.max_ingest_body_bytes
    )
    install_problem_handlers(app)
    for module in (events, stream, ingest, webhooks, tokens, sessions, ops, live, control, dashboard, docs):
        app.include_router(module.router)
    app.include_router(sensors.router)
    app.include_router(sensors.ingest_router)
    app.mount("/dashboard", StaticFiles(directory=dashboard.DASHBOARD_DIR), name="dashboard")
    app.mount(docs.ASSETS_PATH, StaticFiles(directory=docs.ASSETS_DIR), name="docs-assets")
    if config.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.server.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: CORS answers get the headers too
    return app


def _lifespan(parts: ServiceParts) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that starts ``parts`` with the app and closes them when it shuts down."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        parts.start()
        try:
            yield
        finally:
            parts.close()

    return lifespan
