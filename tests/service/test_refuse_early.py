"""Refuse early: the token is checked and the body size limited before a byte of the body is read.

The ASGI-level tests hand the app a body through a counting ``receive`` and look
at how much of it the app pulled; a recording sink shows the route's handler
never ran. The real-server tests send the headers of a 300 MB body and only the
first kilobyte of it: the refusal arrives without the rest.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from anjian.pipeline.event import Event
from anjian.pipeline.event_json import event_to_json
from anjian.service.app import create_app
from anjian.service.config import ApiLimitsConfig, ServerConfig
from tests.factories import make_event
from tests.service.conftest import make_config
from tests.service.server import ServerThread

CHUNK = 64 * 1024
HUGE = 300 * 1024 * 1024


class RecordingSink:
    """Stands in for the app's ``StoreSink``: records what ingest handed it."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def store_event(self, event: Event) -> Any:
        self.events.append(event)
        raise AssertionError("the handler must not run")


class CountingBody:
    """An ASGI ``receive`` serving ``total`` bytes of invalid JSON in chunks, counting what was pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0

    async def __call__(self) -> dict[str, Any]:
        size = min(CHUNK, self.total - self.pulled)
        self.pulled += size
        return {"type": "http.request", "body": b"{" * size, "more_body": self.pulled < self.total}


def _asgi_call(
    app: FastAPI, path: str, body: CountingBody, *, token: str | None, declared: int | None
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to ``path`` straight through the ASGI interface; the status and the JSON reply."""
    headers = [(b"content-type", b"application/json"), (b"host", b"testserver")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("10.0.0.7", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, body, send))  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(content)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    app = create_app(make_config(tmp_path / "data"))
    app.state.sink = RecordingSink()
    yield app
    app.state.store.close()


@pytest.mark.parametrize("declared", [HUGE, None], ids=["content-length", "chunked"])
def test_a_huge_invalid_body_without_a_token_is_refused_unread(app: FastAPI, declared: int | None) -> None:
    body = CountingBody(HUGE)

    status, problem = _asgi_call(app, "/ingest/events", body, token=None, declared=declared)

    assert (status, problem["status"]) == (401, 401)
    assert body.pulled == 0, "not a byte of the body was read"
    assert app.state.sink.events == []


def test_a_huge_body_with_a_wrong_token_is_refused_unread(app: FastAPI) -> None:
    body = CountingBody(HUGE)

    status, _problem = _asgi_call(app, "/ingest/events", body, token="anj_" + "x" * 43, declared=None)

    assert status == 401
    assert body.pulled == 0


def test_an_over_size_body_with_a_valid_token_is_413_before_it_is_read(app: FastAPI) -> None:
    token = app.state.store.tokens.create("pipeline", "pipeline")[1]
    body = CountingBody(HUGE)

    status, problem = _asgi_call(app, "/ingest/events", body, token=token, declared=HUGE)

    assert status == 413
    assert problem["max_bytes"] == app.state.body_limits.ingest_bytes
    assert body.pulled == 0
    assert app.state.sink.events == []


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(app: FastAPI) -> None:
    token = app.state.store.tokens.create("pipeline", "pipeline")[1]
    limit = app.state.body_limits.ingest_bytes
    body = CountingBody(HUGE)

    status, problem = _asgi_call(app, "/ingest/events", body, token=token, declared=None)

    assert (status, problem["title"]) == (413, "Content Too Large")
    assert limit < body.pulled <= limit + CHUNK, "reading stopped one chunk past the limit"
    assert app.state.sink.events == []


@pytest.mark.parametrize("declared", [200 * 1024, None], ids=["content-length", "chunked"])
def test_a_lifecycle_action_takes_a_small_body_only(app: FastAPI, declared: int | None) -> None:
    operator = app.state.store.tokens.create("duty", "operator")[1]
    body = CountingBody(200 * 1024)

    status, problem = _asgi_call(app, "/events/x/acknowledge", body, token=operator, declared=declared)

    assert status == 413
    assert problem["max_bytes"] == 64 * 1024, "the default limit of every route but ingest"
    assert body.pulled <= 64 * 1024 + CHUNK


def test_ingest_takes_a_body_an_action_may_not(app: FastAPI) -> None:
    store = app.state.store
    pipeline = store.tokens.create("pipeline", "pipeline")[1]
    operator = store.tokens.create("duty", "operator")[1]
    body = CountingBody(200 * 1024)

    status, problem = _asgi_call(app, "/ingest/events", body, token=pipeline, declared=200 * 1024)

    assert status == 422 and "invalid JSON" in problem["detail"], "read whole, then refused as JSON"
    assert body.pulled == 200 * 1024
    small, _ = _asgi_call(app, "/events/x/acknowledge", CountingBody(100), token=operator, declared=100)
    assert small == 422


def test_body_limits_come_from_the_site_config(tmp_path: Path) -> None:
    limits = ApiLimitsConfig(max_body_bytes=2048, max_ingest_body_bytes=128 * 1024)
    app = create_app(make_config(tmp_path / "data", server=ServerConfig(limits=limits)))
    try:
        pipeline = app.state.store.tokens.create("pipeline", "pipeline")[1]
        operator = app.state.store.tokens.create("duty", "operator")[1]
        ingest, _ = _asgi_call(app, "/ingest/events", CountingBody(200 * 1024), token=pipeline, declared=None)
        action, _ = _asgi_call(
            app, "/events/x/acknowledge", CountingBody(4096), token=operator, declared=None
        )
    finally:
        app.state.store.close()

    assert (ingest, action) == (413, 413)


def _raw_post(base_url: str, path: str, headers: dict[str, str], first_bytes: bytes) -> tuple[int, bytes]:
    """Send a request's headers and only ``first_bytes`` of its body; the status and body of the reply."""
    host, port = base_url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"] + [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first_bytes)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += conn.recv(65536)
        head, _, content = reply.partition(b"\r\n\r\n")
        length = int(
            next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
        )
        while len(content) < length:
            content += conn.recv(65536)
    return int(head.split(b" ")[1]), content


def test_a_real_server_answers_before_the_rest_of_a_300_mb_body_is_sent(app: FastAPI) -> None:
    pipeline = app.state.store.tokens.create("pipeline", "pipeline")[1]
    declared = {"Content-Type": "application/json", "Content-Length": str(HUGE)}
    server = ServerThread(app).start()
    try:
        anonymous = _raw_post(server.base_url, "/ingest/events", declared, b"{" * 1024)
        authorised = _raw_post(
            server.base_url,
            "/ingest/events",
            {**declared, "Authorization": f"Bearer {pipeline}"},
            b"{" * 1024,
        )
    finally:
        server.stop()

    assert anonymous[0] == 401 and json.loads(anonymous[1])["status"] == 401
    assert authorised[0] == 413 and json.loads(authorised[1])["status"] == 413
    assert app.state.sink.events == []


def test_a_valid_event_still_goes_through(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    app = create_app(make_config(tmp_path / "data"))
    try:
        pipeline = {"Authorization": f"Bearer {app.state.store.tokens.create('p', 'pipeline')[1]}"}
        response = TestClient(app).post("/ingest/events", json=event_to_json(make_event()), headers=pipeline)
    finally:
        app.state.store.close()

    assert response.status_code == 200, response.text
