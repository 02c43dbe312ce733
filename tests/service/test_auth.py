"""Auth matrix over every route of the app: generated from ``app.routes``, so a new route cannot escape it.

Each route must appear in ``REQUIRED`` with the least role it needs (``None``: public).
Without a token or with an unknown one a protected route answers 401; with a token
whose role is too weak, 403; with one strong enough, neither. The matrix makes
hundreds of failed attempts from one address, so its app allows that many.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount, Route

from anjian.service.api.routing import GuardedRoute
from anjian.service.app import create_app
from anjian.service.config import ApiLimitsConfig, ServerConfig
from anjian.service.subscriptions import SubscriptionSpec
from anjian.service.tokens import Role
from tests.factories import make_event
from tests.service.conftest import make_config

REQUIRED: dict[tuple[str, str], Role | None] = {
    ("GET", "/"): None,
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/assets"): None,
    ("GET", "/redoc"): None,
    ("GET", "/dashboard"): None,
    ("GET", "/dashboard/behaviours.js"): None,
    ("POST", "/auth/session"): Role.VIEWER,
    ("DELETE", "/auth/session"): None,
    ("GET", "/events"): Role.VIEWER,
    ("GET", "/events/{event_id}"): Role.VIEWER,
    ("GET", "/events/{event_id}/audit"): Role.VIEWER,
    ("GET", "/events/{event_id}/snapshot.jpg"): Role.VIEWER,
    ("GET", "/events/{event_id}/clip.mp4"): Role.VIEWER,
    ("GET", "/stream"): Role.VIEWER,
    ("GET", "/cameras"): Role.VIEWER,
    ("GET", "/site"): Role.VIEWER,
    ("GET", "/cameras/{camera_id}/live.jpg"): Role.VIEWER,
    ("GET", "/cameras/{camera_id}/live.mjpeg"): Role.VIEWER,
    ("POST", "/cameras/reload"): Role.ADMIN,
    ("POST", "/cameras/{camera_id}/zones/{zone_id}/reset-reference"): Role.OPERATOR,
    ("POST", "/events/{event_id}/acknowledge"): Role.OPERATOR,
    ("POST", "/events/{event_id}/dispatch"): Role.OPERATOR,
    ("POST", "/events/{event_id}/resolve"): Role.OPERATOR,
    ("POST", "/events/{event_id}/false-alarm"): Role.OPERATOR,
    ("POST", "/events/{event_id}/close"): Role.OPERATOR,
    ("POST", "/ingest/events"): Role.PIPELINE,
    ("POST", "/ingest/readings"): Role.PIPELINE,
    ("GET", "/sensors"): Role.VIEWER,
    ("GET", "/sensors/{sensor_id}/readings"): Role.VIEWER,
    ("POST", "/ingest/batch"): Role.PIPELINE,
    ("POST", "/ingest/health"): Role.PIPELINE,
    ("GET", "/webhooks/subscriptions"): Role.ADMIN,
    ("POST", "/webhooks/subscriptions"): Role.ADMIN,
    ("GET", "/webhooks/subscriptions/{subscription_id}"): Role.ADMIN,
    ("DELETE", "/webhooks/subscriptions/{subscription_id}"): Role.ADMIN,
    ("GET", "/webhooks/deliveries"): Role.ADMIN,
    ("POST", "/webhooks/deliveries/{delivery_id}/redeliver"): Role.ADMIN,
    ("GET", "/tokens"): Role.ADMIN,
    ("POST", "/tokens"): Role.ADMIN,
    ("DELETE", "/tokens/{token_id}"): Role.ADMIN,
}

_STREAMING = {("GET", "/stream")}  # an authorised request never ends: checked in test_stream.py


def _walk(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, descending into included routers."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from _walk(original.routes)
        else:
            yield route


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route and mount the app serves."""
    found: set[tuple[str, str]] = set()
    for route in _walk(list(app.routes)):
        if isinstance(route, Mount):
            found.add(("GET", route.path))
        elif isinstance(route, APIRoute | Route):
            for method in route.methods or set():
                if method != "HEAD":
                    found.add((method, route.path))
    return found


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    limits = ApiLimitsConfig(failed_auth_burst=10_000)
    app = create_app(
        make_config(tmp_path_factory.mktemp("auth") / "data", server=ServerConfig(limits=limits))
    )
    store = app.state.store
    store.upsert_event(make_event(id="evt-1"))
    store.subscriptions.create(SubscriptionSpec(url="http://127.0.0.1:9/x"))
    yield app
    store.close()


@pytest.fixture(scope="module")
def tokens(app: FastAPI) -> dict[Role, str]:
    return {role: app.state.store.tokens.create(f"{role.value}-matrix", role)[1] for role in Role}


def _url(path: str) -> str:
    return (
        path.replace("{event_id}", "evt-1")
        .replace("{subscription_id}", "1")
        .replace("{delivery_id}", "1")
        .replace("{token_id}", "999")
    )


def _call(client: TestClient, method: str, path: str, token: str | None) -> int:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    kwargs: dict[str, object] = {"headers": headers}
    if method == "POST":
        kwargs["json"] = {}
    path = {"/dashboard": "/dashboard/style.css", "/docs/assets": "/docs/assets/swagger-ui.css"}.get(
        path, path
    )
    response = client.request(method, _url(path), **kwargs)  # type: ignore[arg-type]
    return int(response.status_code)


def test_every_route_is_in_the_matrix(app: FastAPI) -> None:
    routes = app_routes(app)

    assert routes - set(REQUIRED) == set(), "new route(s): add them to REQUIRED with the role they need"
    assert set(REQUIRED) - routes == set(), "REQUIRED lists routes the app no longer has"


def test_every_api_route_checks_its_token_before_reading_the_body(app: FastAPI) -> None:
    api_routes = [route for route in _walk(list(app.routes)) if isinstance(route, APIRoute)]

    assert api_routes
    assert [r.path for r in api_routes if not isinstance(r, GuardedRoute)] == [], "use GuardedRoute"


@pytest.mark.parametrize(("method", "path"), sorted(REQUIRED), ids=[f"{m} {p}" for m, p in sorted(REQUIRED)])
def test_route_answers_by_role(app: FastAPI, tokens: dict[Role, str], method: str, path: str) -> None:
    client = TestClient(app)
    required = REQUIRED[(method, path)]
    if required is None:
        assert _call(client, method, path, None) not in (401, 403)
        return

    assert _call(client, method, path, None) == 401
    assert _call(client, method, path, "anj_not-a-real-token-at-all-000000000000") == 401
    assert _call(client, method, path, "garbage") == 401
    for role, token in tokens.items():
        if not role.grants(required):
            assert _call(client, method, path, token) == 403, f"{role} must be refused"
        elif (method, path) not in _STREAMING:
            assert _call(client, method, path, token) not in (401, 403), f"{role} must be let in"


def test_revoked_token_is_refused(app: FastAPI) -> None:
    info, secret = app.state.store.tokens.create("leaver", Role.ADMIN)
    client = TestClient(app)
    assert client.get("/events", headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    app.state.store.tokens.revoke(info.id)

    response = client.get("/events", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("role", "required", "expected"),
    [
        (Role.ADMIN, Role.OPERATOR, True),
        (Role.OPERATOR, Role.VIEWER, True),
        (Role.VIEWER, Role.OPERATOR, False),
        (Role.PIPELINE, Role.VIEWER, False),
        (Role.ADMIN, Role.PIPELINE, True),
        (Role.OPERATOR, Role.PIPELINE, False),
    ],
    ids=["admin-op", "op-viewer", "viewer-op", "pipeline-viewer", "admin-pipeline", "op-pipeline"],
)
def test_role_ladder(role: Role, required: Role, expected: bool) -> None:
    assert role.grants(required) is expected


def test_api_token_is_masked_in_log_lines(app: FastAPI) -> None:
    from anjian.service.logs import mask_secrets

    _info, secret = app.state.store.tokens.create("logged", Role.VIEWER)

    assert secret not in mask_secrets(f"request with token {secret} failed")
    assert "anj_***" in mask_secrets(f"Authorization: Bearer {secret}")
