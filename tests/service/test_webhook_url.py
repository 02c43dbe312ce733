"""Where a webhook may go: LAN, internet and loopback receivers, never a link-local, cloud metadata or
unspecified address, whether the URL writes the address or its host name resolves to it."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from anjian.service.config import StorageConfig, WebhookConfig
from anjian.service.store import EventStore
from anjian.service.subscriptions import SubscriptionSpec
from anjian.service.webhook_url import address_fault, check_webhook_url, checked_transport
from anjian.service.webhooks import WebhookDispatcher
from tests.factories import make_event
from tests.service.conftest import bearer
from tests.support.receiver import Receiver

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
_LIMITS = httpx.Limits(max_connections=2)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HTTP proxy in the environment: connections are made (and checked) here."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _resolver(answers: dict[str, list[str]]) -> Any:
    """A ``getaddrinfo`` stand-in answering ``answers[host]`` (the addresses a DNS server would give)."""

    def resolve(host: str, port: int, **_kwargs: object) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        found = []
        for text in answers[host]:
            family = socket.AF_INET6 if ":" in text else socket.AF_INET
            sockaddr = (text, port, 0, 0) if family == socket.AF_INET6 else (text, port)
            found.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return found

    return resolve


# ------------------------------------------------------------------ the URL as configured


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://169.254.1.20:8080/hook", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[fe80::1%25eth0]/hook", "link-local"),
        ("http://[::ffff:169.254.169.254]/hook", "link-local address .*, in IPv4-mapped form"),
        ("http://2852039166/hook", "link-local"),
        ("http://0.0.0.0:22/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://[::]/hook", "unspecified"),
        ("http://[::ffff:0.0.0.0]/hook", "unspecified .*IPv4-mapped"),
        ("http://100.100.100.200/latest/meta-data/", "cloud metadata service's address"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata service's address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service's name"),
        ("http://[::ffff:1.2.3.4%eth0]/hook", "zone id"),
    ],
    ids=[
        "aws-metadata",
        "link-local-v4",
        "link-local-v6",
        "link-local-v6-zone",
        "mapped-metadata",
        "metadata-as-integer",
        "unspecified-v4",
        "unspecified-short",
        "unspecified-v6",
        "mapped-unspecified",
        "alibaba-metadata",
        "aws-metadata-v6",
        "gcp-metadata-name",
        "zone-on-a-global-address",
    ],
)
def test_a_webhook_to_a_link_local_metadata_or_unspecified_host_is_refused_naming_it(
    url: str, reason: str
) -> None:
    host = httpx.URL(url).host
    with pytest.raises(
        ValueError, match=rf"the host '{re.escape(host)}' of the URL is (.* )?{reason}"
    ) as refused:
        check_webhook_url(url)
    assert "LAN, the internet or this host's loopback" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.20.0.5/hook",
        "http://172.16.4.2:8080/hook",
        "http://192.168.1.20/hook",
        "https://ops.example.com/anjian",
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd12:3456::7]/hook",
    ],
    ids=[
        "lan-10",
        "lan-172",
        "lan-192",
        "internet",
        "loopback",
        "localhost",
        "loopback-v6",
        "mapped-loopback",
        "ula",
    ],
)
def test_lan_internet_and_loopback_receivers_are_accepted(url: str) -> None:
    assert check_webhook_url(url) == url


def test_the_site_config_refuses_a_metadata_webhook() -> None:
    with pytest.raises(
        ValidationError, match="the host '169.254.169.254' of the URL is a link-local address"
    ):
        WebhookConfig(url="http://169.254.169.254/latest/meta-data/")


def test_the_api_refuses_a_metadata_webhook_with_a_422_naming_the_host(app: FastAPI) -> None:
    client = TestClient(app)
    admin = bearer(app.state.store, "admin")

    response = client.post(
        "/webhooks/subscriptions", json={"url": "http://user:pw@169.254.169.254/latest/"}, headers=admin
    )

    assert response.status_code == 422, response.text
    assert "the host '169.254.169.254' of the URL is a link-local address" in response.json()["detail"]
    assert "pw" not in response.json()["detail"], "the host is named, not the credentials"
    assert client.get("/webhooks/subscriptions", headers=admin).json() == []


# ------------------------------------------------------------------ at connect time


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"))
    yield store
    store.close()


@pytest.mark.usefixtures("no_proxy")
def test_a_stored_url_to_a_metadata_address_fails_at_connect_time_without_a_request(
    store: EventStore,
) -> None:
    """A subscription stored before the check (or a name resolving there) still reaches no metadata service."""
    store.subscriptions.create(SubscriptionSpec(url="http://169.254.169.254/latest/meta-data/"))
    store.upsert_event(make_event(snapshot_jpeg=None))
    dispatcher = WebhookDispatcher(store, backoff_base_s=60.0, backoff_max_s=60.0)
    try:
        assert dispatcher.deliver_due() == 1
    finally:
        dispatcher.stop()

    (delivery,) = store.outbox.list()
    assert delivery.last_status_code is None
    assert delivery.last_error is not None
    assert delivery.last_error.startswith(
        "ConnectError: refused to connect to 169.254.169.254: it is a link-local"
    )


def test_a_name_resolving_to_a_refused_address_is_not_connected_to() -> None:
    resolve = _resolver({"metadata.plant.test": ["10.0.0.8", "169.254.169.254"]})
    transport = checked_transport(limits=_LIMITS, resolve=resolve)
    assert transport is not None

    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError) as refused:
        client.post("http://metadata.plant.test/hook", content=b"{}")

    assert str(refused.value) == (
        "refused to connect to metadata.plant.test (169.254.169.254): it is a link-local address"
        " (169.254.0.0/16, fe80::/10), where cloud metadata services answer, not webhook receivers;"
        " webhooks go to receivers on the LAN, the internet or this host's loopback, not there"
    )


def test_the_connection_goes_to_the_address_checked_and_the_request_keeps_the_name(
    receiver: Receiver,
) -> None:
    """The name is resolved once, checked, and that address connected to: no second answer can slip past."""
    answers = {"receiver.plant.test": ["127.0.0.1"]}
    calls: list[str] = []
    resolve = _resolver(answers)

    def resolve_once(host: str, port: int, **kwargs: object) -> list[tuple[Any, ...]]:
        calls.append(host)
        return resolve(host, port, **kwargs)  # type: ignore[no-any-return]

    transport = checked_transport(limits=_LIMITS, resolve=resolve_once)
    assert transport is not None

    with httpx.Client(transport=transport) as client:
        response = client.post(f"http://receiver.plant.test:{receiver.port}/hook", content=b"{}")

    assert response.status_code == 200
    (request,) = receiver.wait_for_requests(1)
    assert request.headers["host"] == f"receiver.plant.test:{receiver.port}"
    assert calls == ["receiver.plant.test"]


def test_an_unknown_name_fails_as_a_connect_error() -> None:
    transport = checked_transport(limits=_LIMITS, resolve=_resolver({}))
    assert transport is not None

    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError, match="not known"):
        client.post("http://nowhere.plant.test/hook", content=b"{}")


def test_behind_an_http_proxy_the_proxy_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.plant.test:3128")

    assert checked_transport(limits=_LIMITS) is None, "httpx's own transport, which honours the proxy"


@pytest.mark.parametrize(
    ("address", "is_refused"),
    [
        ("169.254.169.254", True),
        ("::ffff:169.254.169.254", True),
        ("0.1.2.3", True),
        ("192.0.0.192", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.0.0.1", False),
        ("8.8.8.8", False),
    ],
    ids=[
        "metadata",
        "mapped-metadata",
        "this-network",
        "oracle-metadata",
        "loopback",
        "loopback-v6",
        "lan",
        "internet",
    ],
)
def test_address_fault_table(address: str, is_refused: bool) -> None:
    assert (address_fault(ipaddress.ip_address(address)) is not None) is is_refused
