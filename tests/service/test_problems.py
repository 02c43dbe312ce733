"""One error shape (RFC 9457 problem details) for every status, and bodies the JSON encoder cannot choke on.

NaN, Infinity and unpaired surrogates anywhere in a JSON body answer a clean 422
(they used to make the 422 reply itself fail: a 500); validation errors echo a
short preview of the input, never megabytes of it; 404, 405, 409, 413, 422 and
an unhandled exception all answer ``application/problem+json``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from anjian.pipeline.event_json import event_to_json
from anjian.service.api.problems import MAX_ERRORS, PREVIEW_CHARS, PROBLEM_MEDIA_TYPE
from anjian.service.api.routing import loads_strict_json
from tests.factories import make_event
from tests.service.conftest import bearer

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}
INGESTED = "evt-ingested"


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _problem(response: Any, status: int) -> dict[str, Any]:
    """The reply's problem body, checked for the RFC 9457 members."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem: dict[str, Any] = json.loads(response.content)
    assert PROBLEM_KEYS <= set(problem)
    assert problem["status"] == status and problem["type"] == "about:blank"
    return problem


def _ingest_body(**changes: object) -> str:
    """An ingest body as JSON text with ``changes`` spliced in raw (so ``NaN`` stays unquoted)."""
    document = event_to_json(make_event(id=INGESTED))
    for key in changes:
        document[key] = f"@@{key}@@"
    text = json.dumps(document)
    for key, raw in changes.items():
        text = text.replace(f'"@@{key}@@"', str(raw))
    return text


@pytest.mark.parametrize(
    ("path", "role", "body"),
    [
        ("/ingest/events", "pipeline", _ingest_body(confidence="NaN")),
        ("/ingest/events", "pipeline", _ingest_body(confidence="Infinity")),
        ("/ingest/events", "pipeline", _ingest_body(started_at="-Infinity")),
        ("/ingest/events", "pipeline", _ingest_body(message='"fire \\ud800 here"')),
        ("/ingest/events", "pipeline", _ingest_body(message='"\\udfff"')),
        ("/events/evt-1/acknowledge", "operator", '{"note": NaN}'),
        ("/events/evt-1/acknowledge", "operator", '{"\\ud800": 1}'),
        ("/tokens", "admin", '{"name": "\\ud83d", "role": "viewer"}'),
        ("/webhooks/subscriptions", "admin", '{"url": "http://127.0.0.1:9/x", "timeout_s": Infinity}'),
    ],
    ids=[
        "ingest-nan",
        "ingest-infinity",
        "ingest-minus-infinity",
        "ingest-surrogate",
        "ingest-low-surrogate",
        "note-nan",
        "surrogate-member-name",
        "token-name-half-emoji",
        "subscription-infinity",
    ],
)
def test_nan_infinity_and_lone_surrogates_are_a_clean_422(
    app: FastAPI, client: TestClient, path: str, role: str, body: str
) -> None:
    app.state.store.upsert_event(make_event(id="evt-1"))
    headers = {**bearer(app.state.store, role), "Content-Type": "application/json"}

    problem = _problem(client.post(path, content=body.encode(), headers=headers), 422)

    assert problem["errors"][0]["loc"] == ["body"]
    assert "NaN or Infinity" in problem["detail"] or "unpaired UTF-16 surrogate" in problem["detail"]
    assert app.state.store.get_event(INGESTED) is None, "nothing was stored"


def test_a_paired_surrogate_escape_is_fine(app: FastAPI, client: TestClient) -> None:
    body = _ingest_body(message='"smoke \\ud83d\\udd25"')
    headers = {**bearer(app.state.store, "pipeline"), "Content-Type": "application/json"}

    response = client.post("/ingest/events", content=body.encode(), headers=headers)

    assert response.status_code == 200, response.text
    stored = app.state.store.get_event(INGESTED)
    assert stored is not None and stored.message == "smoke \U0001f525"


def test_validation_errors_echo_a_short_preview_of_a_huge_input(app: FastAPI, client: TestClient) -> None:
    body = _ingest_body(message=json.dumps("x" * 5_000_000))
    headers = {**bearer(app.state.store, "pipeline"), "Content-Type": "application/json"}

    response = client.post("/ingest/events", content=body.encode(), headers=headers)

    problem = _problem(response, 422)
    assert len(response.content) < 2_000, "a 5 MB message must not come back"
    (error,) = problem["errors"]
    assert error["loc"] == ["body", "message"] and error["type"] == "string_too_long"
    assert error["input"].startswith("xxxx") and len(error["input"]) <= PREVIEW_CHARS + 1


def test_validation_errors_are_capped_and_counted(app: FastAPI, client: TestClient) -> None:
    document = event_to_json(make_event())
    document["boxes"] = [{"class_name": "", "confidence": 7, "xyxy_norm": [2, 2, 2, 2]}] * 100
    headers = bearer(app.state.store, "pipeline")

    problem = _problem(client.post("/ingest/events", json=document, headers=headers), 422)

    assert len(problem["errors"]) == MAX_ERRORS
    assert "more error(s); the first 20 are listed" in problem["detail"]


def test_containers_and_big_numbers_are_summarised_not_echoed(app: FastAPI, client: TestClient) -> None:
    headers = bearer(app.state.store, "operator")
    app.state.store.upsert_event(make_event(id="evt-1"))

    problem = _problem(
        client.post(
            "/events/evt-1/dispatch", json={"assignee": list(range(1000)), "note": 10**400}, headers=headers
        ),
        422,
    )

    inputs = {tuple(e["loc"]): e["input"] for e in problem["errors"]}
    assert inputs[("body", "assignee")] == "an array of 1000 items"
    assert inputs[("body", "note")] == "an integer of 1329 bits"


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b'{"note": "\xff"}', "not UTF-8"), (b'{"note": ', "at character"), (b"", "")],
    ids=["not-utf8", "truncated", "empty"],
)
def test_malformed_bodies_are_422_problems(
    app: FastAPI, client: TestClient, body: bytes, reason: str
) -> None:
    app.state.store.upsert_event(make_event(id="evt-1"))
    headers = {**bearer(app.state.store, "operator"), "Content-Type": "application/json"}

    response = client.post("/events/evt-1/acknowledge", content=body, headers=headers)

    if body:
        assert reason in _problem(response, 422)["detail"]
    else:
        assert response.status_code == 422 and response.headers["content-type"] == PROBLEM_MEDIA_TYPE


def test_routing_errors_are_problems(client: TestClient) -> None:
    missing = _problem(client.get("/no/such/route"), 404)
    wrong_method = client.delete("/events")

    assert missing["instance"] == "/no/such/route"
    assert _problem(wrong_method, 405)["title"] == "Method Not Allowed"
    assert wrong_method.headers["allow"] == "GET"


def test_the_instance_never_carries_the_query(app: FastAPI, client: TestClient) -> None:
    problem = _problem(
        client.get("/events?limit=0&secret=abc", headers=bearer(app.state.store, "viewer")), 422
    )

    assert problem["instance"] == "/events"
    assert "abc" not in json.dumps(problem)


def test_an_unhandled_exception_is_a_500_problem_without_internals(
    app: FastAPI, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    def explode() -> None:
        raise RuntimeError("password=hunter2 in /srv/anjian/secret.py line 12")

    app.add_api_route("/explode", explode)

    with caplog.at_level(logging.ERROR, logger="anjian.service.api.problems"):
        response = client.get("/explode")

    problem = _problem(response, 500)
    assert "hunter2" not in response.text and "secret.py" not in response.text
    assert problem["error_id"] in problem["detail"]
    assert any(problem["error_id"] in r.getMessage() and r.exc_info for r in caplog.records)
    assert response.headers["x-content-type-options"] == "nosniff", "security headers on a 500 too"


def test_openapi_documents_problem_bodies(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    error_contents = [
        (path, code, response.get("content", {}))
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for code, response in operation["responses"].items()
        if code.isdigit() and int(code) >= 400
    ]
    assert error_contents
    assert [(p, c) for p, c, content in error_contents if list(content) != [PROBLEM_MEDIA_TYPE]] == []
    acknowledge = document["paths"]["/events/{event_id}/acknowledge"]["post"]["responses"]
    assert acknowledge["422"]["content"][PROBLEM_MEDIA_TYPE]["schema"]["$ref"].endswith("/ValidationProblem")
    assert acknowledge["409"]["content"][PROBLEM_MEDIA_TYPE]["schema"]["$ref"].endswith("/ConflictProblem")
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NaN", "NaN is not JSON"),
        ("[1, -Infinity]", "-Infinity is not JSON"),
        ('{"a": {"b": ["ok", "\\udc00"]}}', "body.a.b[1]"),
        ('{"\\ud800x": 1}', "a member name"),
    ],
    ids=["nan", "minus-infinity", "nested-surrogate", "member-name"],
)
def test_loads_strict_json_refuses_what_rfc_8259_does_not_allow(text: str, message: str) -> None:
    with pytest.raises(json.JSONDecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        loads_strict_json(text.encode())


def test_loads_strict_json_reads_ordinary_json() -> None:
    assert loads_strict_json(b'{"a": [1, 2.5, "\\ud83d\\udd25", null, true]}') == {
        "a": [1, 2.5, "\U0001f525", None, True]
    }
