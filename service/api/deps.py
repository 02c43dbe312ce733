"""FastAPI dependencies shared by the routers: the app's parts, and token authentication by role.

Every route but the dashboard's files, ``/healthz``, ``/readyz`` and ``/metrics``
requires a token: ``Authorization: Bearer <token>``. Routes a browser loads
directly (``<img>``, ``<video>``, ``EventSource``), which cannot send headers,
also accept ``?access_token=<token>``. No token or an unknown one answers 401; a
token whose role is not enough answers 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError

from cameras.health import CameraHealth
from service.control import PipelineControl
from service.evidence import EvidenceStore
from service.metrics import ServiceMetrics
from service.sink import StoreSink
from service.store import EventStore
from service.tokens import ApiToken, Role
from service.webhooks import WebhookDispatcher

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
    "require_role",
]

logger = logging.getLogger(__name__)

CameraHealthProvider = Callable[[], Sequence[CameraHealth]]
"""Returns the health of every camera this process reads (``PipelineRunner.health``)."""

AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "No token, or an unknown or revoked one."},
    403: {"description": "The token's role may not do this."},
}

_bearer = HTTPBearer(auto_error=False, description="An API token (`anjian tokens create`).")
_query_token = APIKeyQuery(
    name="access_token", auto_error=False, description="The token, for URLs a browser loads directly."
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
    """Dependency: the sink that stores ingested events (snapshot, store, wake the dispatcher)."""
    sink: StoreSink = request.app.state.sink
    return sink


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _authenticate(store: EventStore, secret: str | None, required: Role) -> ApiToken:
    """The token with this secret if its role grants ``required``; 401/403/503 otherwise."""
    if not secret:
        raise _unauthorized("an API token is required: send Authorization: Bearer <token>")
    try:
        token = store.tokens.authenticate(secret)
    except SQLAlchemyError as exc:
        logger.exception("authentication: the database does not answer")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="the database does not answer"
        ) from exc
    if token is None:
        raise _unauthorized("unknown or revoked API token")
    if not token.role.grants(required):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"a {token.role.value} token may not do this; {required.value} needed",
        )
    return token


def require_role(required: Role, *, is_query_token_allowed: bool = False) -> Callable[..., ApiToken]:
    """A dependency that authenticates the request's token and checks its role.

    Args:
        required: The least role needed (admin grants operator grants viewer;
            pipeline is granted to pipeline and admin tokens).
        is_query_token_allowed: Also accept ``?access_token=`` (media and the live feed).

    Returns:
        The dependency; it returns the ``ApiToken`` (its name is the audit actor).
    """
    if is_query_token_allowed:

        def dependency_with_query(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
            access_token: Annotated[str | None, Depends(_query_token)],
        ) -> ApiToken:
            secret = credentials.credentials if credentials is not None else access_token
            return _authenticate(get_store(request), secret, required)

        return dependency_with_query

    def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> ApiToken:
        return _authenticate(
            get_store(request), None if credentials is None else credentials.credentials, required
        )

    return dependency


StoreDep = Annotated[EventStore, Depends(get_store)]
EvidenceDep = Annotated[EvidenceStore, Depends(get_evidence)]
DispatcherDep = Annotated[WebhookDispatcher | None, Depends(get_dispatcher)]
CameraHealthDep = Annotated[CameraHealthProvider | None, Depends(get_camera_health)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
PipelineControlDep = Annotated[PipelineControl | None, Depends(get_pipeline_control)]
SinkDep = Annotated[StoreSink, Depends(get_sink)]
Viewer = Annotated[ApiToken, Depends(require_role(Role.VIEWER))]
ViewerByQuery = Annotated[ApiToken, Depends(require_role(Role.VIEWER, is_query_token_allowed=True))]
Operator = Annotated[ApiToken, Depends(require_role(Role.OPERATOR))]
Admin = Annotated[ApiToken, Depends(require_role(Role.ADMIN))]
Pipeline = Annotated[ApiToken, Depends(require_role(Role.PIPELINE))]
