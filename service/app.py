"""The alert service's FastAPI app: wires the store, evidence, webhooks, escalation and the routers.

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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from anjian.service.api import (
    control,
    dashboard,
    docs,
    events,
    ingest,
    ops,
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
from anjian.service.config import AnjianConfig
from anjian.service.control import PipelineControl
from anjian.service.escalation import Escalator
from anjian.service.evidence import EvidenceStore
from anjian.service.metrics import ServiceMetrics
from anjian.service.sink import StoreSink
from anjian.service.store import EventStore
from anjian.service.webhooks import WebhookDispatcher

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
    *,
    store: EventStore | None = None,
    evidence: EvidenceStore | None = None,
    dispatcher: WebhookDispatcher | None = None,
    camera_health: CameraHealthProvider | None = None,
    metrics: ServiceMetrics | None = None,
    escalator: Escalator | None = None,
    pipeline_control: PipelineControl | None = None,
    sink: StoreSink | None = None,
) -> FastAPI:
    """Build the alert service's FastAPI app.

    Parts not passed in are created from ``config``; the app owns those: its
    lifespan starts the dispatcher and escalator it created and, on shutdown, stops
    them and closes the store it opened. Parts passed in are left to the caller to
    start and stop (``anjian run`` shares them with the pipeline's ``StoreSink``).
    The site config's webhooks are synchronised into the subscriptions table.

    Args:
        config: The validated site config.
        store: Event store; default ``EventStore.from_config(config.storage)``.
        evidence: Evidence folder; default ``EvidenceStore(config.storage.dir)``.
        dispatcher: Webhook worker; default one over ``store``.
        camera_health: Reports the cameras' health for ``/healthz``, ``/cameras`` and
            ``/metrics`` (``anjian run`` passes ``PipelineRunner.health``).
        metrics: Prometheus metrics; default new ones over ``store``.
        escalator: SLA escalation worker; default one over ``store`` and ``config.sla``.
        pipeline_control: Camera reload and reference resets of the pipeline in this
            process (``anjian run``); ``None`` answers those routes with 409.
        sink: The event writer ingest stores through; default one over ``store``
            (``anjian run`` shares its own with the pipeline).

    Returns:
        The app; ``app.state`` holds ``config``, ``store``, ``evidence``, ``dispatcher``,
        ``camera_health``, ``metrics``, ``escalator``, ``sink`` (what ingest stores through),
        ``sessions`` (dashboard cookies), ``authenticator`` and ``body_limits``.

    Example:
        >>> app = create_app(load_config("site.yaml"))
        >>> uvicorn.run(app, host=config.server.host, port=config.server.port)
    """
    is_store_owned = store is None
    is_dispatcher_owned = dispatcher is None
    is_escalator_owned = escalator is None
    store = store if store is not None else EventStore.from_config(config.storage)
    store.subscriptions.sync_config(config.webhooks)
    evidence = evidence if evidence is not None else EvidenceStore(config.storage.dir)
    metrics = metrics if metrics is not None else ServiceMetrics(store, camera_health)
    dispatcher = dispatcher if dispatcher is not None else WebhookDispatcher(store, metrics=metrics)
    escalator = (
        escalator
        if escalator is not None
        else Escalator(store, config.sla, dispatcher=dispatcher, metrics=metrics)
    )
    is_sink_owned = sink is None
    sink = sink if sink is not None else StoreSink(store, evidence, dispatcher, metrics=metrics)
    owned_store, owned_dispatcher, owned_escalator, owned_sink = store, dispatcher, escalator, sink

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if is_dispatcher_owned:
            owned_dispatcher.start()
        if is_escalator_owned:
            owned_escalator.start()
        try:
            yield
        finally:
            if is_sink_owned:
                owned_sink.stop()  # stores what is queued before the store closes
            if is_escalator_owned:
                owned_escalator.stop()
            if is_dispatcher_owned:
                owned_dispatcher.stop()
            if is_store_owned:
                owned_store.close()

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
    app.state.store = store
    app.state.evidence = evidence
    app.state.dispatcher = dispatcher
    app.state.camera_health = camera_health
    app.state.metrics = metrics
    app.state.escalator = escalator
    app.state.pipeline_control = pipeline_control
    app.state.sink = sink
    app.state.sessions = session_signer
    app.state.authenticator = Authenticator(
        store.tokens,
        session_signer,
        FailedAuthLimiter(burst=limits.failed_auth_burst, per_minute=limits.failed_auth_per_minute),
    )
    app.state.body_limits = BodyLimits(
        default_bytes=limits.max_body_bytes, ingest_bytes=limits.max_ingest_body_bytes
    )
    install_problem_handlers(app)
    for module in (events, stream, ingest, webhooks, tokens, sessions, ops, control, dashboard, docs):
        app.include_router(module.router)
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
