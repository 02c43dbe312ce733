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
