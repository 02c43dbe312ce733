"""FastAPI dependencies shared by the routers: the app's parts, and token authentication by role.

Every route but the dashboard's files, the API docs, ``/healthz``, ``/readyz``,
``/metrics`` and ``DELETE /auth/session`` requires a token:
``Authorization: Bearer <token>``. Routes a browser loads directly (``<img>``,
``<video>``, ``EventSource``), which cannot send headers, also accept the
dashboard session cookie (``POST /auth/session``); no route takes a token in
its URL. No token or an unknown one answers 401; a token whose role is not
enough answers 403 (``anjian.service.api.auth``; ``GuardedRoute`` checks before the
body is read).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import Depends, Request

from anjian.cameras.health import CameraHealth
from anjian.service.api.auth import CookieRoleRequirement, OptionalRoleRequirement, RoleRequirement
from anjian.service.api.problems import problem_responses
from anjian.service.control import PipelineControl
from anjian.service.evidence import EvidenceStore
from anjian.service.metrics import ServiceMetrics
from anjian.service.sink import StoreSink
from anjian.service.store import EventStore
from anjian.service.tokens import ApiToken, Role
from anjian.service.webhooks import WebhookDispatcher

__all__ = [
    "AUTH_RESPONSES",
    "CameraHealthProvider",
    "get_camera_health",
    "get_dispatcher",
    "get_evidence",
    "get_metrics",
    "get_pipeline_control",
    "get_sink",
    "get_store",
]

CameraHealthProvider = Callable[[], Sequence[CameraHealth]]
"""Returns the health of every camera this process reads (``PipelineRunner.health``)."""

AUTH_RESPONSES = problem_responses(
    401,
    403,
    429,
    descriptions={
        401: "No token, or an unknown or revoked one.",
        403: "The token's role may not do this.",
        429: "Too many failed token attempts from this address; see Retry-After.",
    },
)


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


def get_pipeline_control(request: Request) -> PipelineControl | None:
    """Dependency: control of the pipeline running in this process (``None`` for ``anjian serve``)."""
    control: PipelineControl | None = request.app.state.pipeline_control
    return control


def get_metrics(request: Request) -> ServiceMetrics:
    """Dependency: the app's Prometheus metrics."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


def get_sink(request: Request) -> StoreSink:
    """Dependency: the sink that stores ingested events (snapshots, then one transaction per batch)."""
    sink: StoreSink = request.app.state.sink
    return sink


StoreDep = Annotated[EventStore, Depends(get_store)]
EvidenceDep = Annotated[EvidenceStore, Depends(get_evidence)]
DispatcherDep = Annotated[WebhookDispatcher | None, Depends(get_dispatcher)]
CameraHealthDep = Annotated[CameraHealthProvider | None, Depends(get_camera_health)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
PipelineControlDep = Annotated[PipelineControl | None, Depends(get_pipeline_control)]
SinkDep = Annotated[StoreSink, Depends(get_sink)]
Viewer = Annotated[ApiToken, Depends(RoleRequirement(Role.VIEWER))]
ViewerByCookie = Annotated[ApiToken, Depends(CookieRoleRequirement(Role.VIEWER))]
"""A viewer by bearer token or dashboard session cookie (media and the live feed)."""
OptionalViewer = Annotated[ApiToken | None, Depends(OptionalRoleRequirement(Role.VIEWER))]
"""A viewer's token when one is sent, else ``None`` (``/healthz`` details)."""
Operator = Annotated[ApiToken, Depends(RoleRequirement(Role.OPERATOR))]
Admin = Annotated[ApiToken, Depends(RoleRequirement(Role.ADMIN))]
Pipeline = Annotated[ApiToken, Depends(RoleRequirement(Role.PIPELINE))]
