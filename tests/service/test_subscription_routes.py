"""The subscription routes answer an unknown id with one 404 naming it, and a config webhook with a 409."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from anjian.service.config import AnjianConfig, WebhookConfig
from tests.service.conftest import bearer, make_config


@pytest.fixture
def config(tmp_path: Path) -> AnjianConfig:
    return make_config(tmp_path / "data", [WebhookConfig(url="http://127.0.0.1:9/from-config")])


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_unknown_subscription_is_a_404_naming_it(client: TestClient, method: str) -> None:
    admin = bearer(client.app.state.store, "admin")  # type: ignore[attr-defined]
    response = client.request(method, "/webhooks/subscriptions/4242", headers=admin)
    assert response.status_code == 404
    assert response.json()["detail"] == "no subscription 4242"


def test_a_subscription_from_the_site_config_is_read_but_not_deleted(client: TestClient) -> None:
    admin = bearer(client.app.state.store, "admin")  # type: ignore[attr-defined]
    (listed,) = client.get("/webhooks/subscriptions", headers=admin).json()
    assert client.get(f"/webhooks/subscriptions/{listed['id']}", headers=admin).json() == listed
    refused = client.delete(f"/webhooks/subscriptions/{listed['id']}", headers=admin)
    assert refused.status_code == 409 and "site config" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://a..b/hook", "not a valid host name"),
        ("http://" + "a" * 64 + ".example/hook", "not a valid host name"),
        ("http://:8080/hook", "has no host"),
        ("http://receiver.example:70000/hook", "outside 1..65535"),
        ("http://receiver.example/ho\u0000ok", "NUL"),
    ],
    ids=["empty-label", "label-too-long", "no-host", "port", "nul"],
)
def test_a_url_httpx_cannot_send_to_is_a_422_naming_the_url(
    client: TestClient, url: str, reason: str
) -> None:
    admin = bearer(client.app.state.store, "admin")  # type: ignore[attr-defined]

    response = client.post("/webhooks/subscriptions", json={"url": url}, headers=admin)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    assert error["loc"][-1] == "url" or error["loc"] == ["body"]
    assert reason in response.json()["detail"]
    assert len(client.get("/webhooks/subscriptions", headers=admin).json()) == 1, "only the config's"


@pytest.mark.parametrize("field", ["description", "url"])
def test_a_nul_in_a_subscription_is_a_422_not_a_database_error(client: TestClient, field: str) -> None:
    admin = bearer(client.app.state.store, "admin")  # type: ignore[attr-defined]
    body = {"url": "http://receiver.example/hook", "description": "ok"}
    body[field] += "\u0000"

    response = client.post("/webhooks/subscriptions", json=body, headers=admin)

    assert response.status_code == 422, response.text
    assert "NUL" in response.json()["detail"]
