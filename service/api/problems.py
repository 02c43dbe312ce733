"""One error shape for every failure: RFC 9457 problem details (``application/problem+json``).

Every error status the API answers carries the same body::

    {"type": "about:blank", "title": "Not Found", "status": 404,
     "detail": "event 'x' not found", "instance": "/events/x"}

``title`` is the status phrase, ``detail`` says what went wrong in words meant
for the caller, ``instance`` is the request path (never its query, which may
hold secrets). Validation failures (422) add ``errors``, one entry per problem
with its location, message, type and a short preview of the offending input:
no more than ``MAX_ERRORS`` entries and ``PREVIEW_CHARS`` characters of input,
so a 5 MB note cannot come back as a 10 MB reply. Other problems add their own
members (a refused lifecycle action adds ``state`` and ``allowed_actions``).

The body always serialises: NaN, infinities and unpaired surrogates in the
input are rendered as text, never passed to the JSON encoder. Unhandled
exceptions answer 500 with an ``error_id`` that is also in the log line, and no
internals.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response

from anjian.service.api.security import SECURITY_HEADERS
from anjian.service.lifecycle import Action, AlertState

__all__ = [
    "MAX_ERRORS",
    "PREVIEW_CHARS",
    "PROBLEM_MEDIA_TYPE",
    "ApiProblem",
    "ConflictProblem",
    "Problem",
    "ValidationIssue",
    "ValidationProblem",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
]

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_ERRORS = 20
"""Most validation errors listed in one reply; ``detail`` gives the total."""
PREVIEW_CHARS = 64
"""Most characters of an offending input echoed back in a validation error."""
_MAX_TEXT_CHARS = 500  # messages, locations and details are cut here
_MAX_SAFE_INT = 2**53
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}  # RFC 9110 names


def _title(status_code: int) -> str:
    """The status phrase of RFC 9110."""
    try:
        return _TITLES.get(status_code) or HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error reply."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="A URI naming the kind of problem; about:blank: see title.")
    title: str = Field(..., description="The HTTP status phrase.")
    status: int = Field(..., ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(..., description="What went wrong, for the caller.")
    instance: str = Field(..., description="The request path.")


class ValidationIssue(BaseModel):
    """One reason a request was refused as invalid."""

    loc: list[str | int] = Field(..., description='Where: ["body", "note"], ["query", "limit"], ...')
    msg: str = Field(..., description="What is wrong.")
    type: str = Field(..., description="Machine-readable kind (pydantic's error type).")
    input: str | int | float | bool | None = Field(
        None, description=f"The offending value, cut to {PREVIEW_CHARS} characters (containers summarised)."
    )


class ValidationProblem(Problem):
    """The 422 body: the request does not match the route's parameters or body."""

    errors: list[ValidationIssue] = Field(..., max_length=MAX_ERRORS)


class ConflictProblem(Problem):
    """The 409 body of a refused lifecycle action."""

    state: AlertState = Field(..., description="The alert's current state.")
    allowed_actions: list[Action] = Field(..., description="What may be done from this state.")


class ApiProblem(HTTPException):
    """An ``HTTPException`` whose problem details carry extension members.

    Args:
        status_code: The HTTP status.
        detail: What went wrong, for the caller.
        extensions: More members of the body (JSON values), e.g. ``state``.
        headers: Response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, detail=detail, headers=dict(headers) if headers else None)
        self.extensions = dict(extensions or {})


def problem_responses(
    *codes: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem bodies for ``codes``.

    Args:
        codes: Status codes; 422 documents a ``ValidationProblem``, 409 a ``ConflictProblem``.
        descriptions: Per-code descriptions overriding the status phrase.

    Returns:
        A dict for a route's or router's ``responses``.
    """
    models: dict[int, type[Problem]] = {422: ValidationProblem, 409: ConflictProblem}
    entries: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description = (descriptions or {}).get(code, _title(code))
        entries[code] = {"description": description, "model": models.get(code, Problem)}
    return entries


def _problem_schemas() -> dict[str, Any]:
    """JSON schemas of the problem models, keyed by name, with refs into ``#/components/schemas``."""
    schemas: dict[str, Any] = {}
    for model in (Problem, ValidationProblem, ConflictProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _document_problems(schema: dict[str, Any]) -> None:
    """Rewrite an OpenAPI document so every error response is ``application/problem+json``."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(_problem_schemas())
    validation_ref = {"$ref": "#/components/schemas/ValidationProblem"}
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("413", {"description": "The body is larger than this route accepts."})
            responses.setdefault("500", {"description": "Unexpected error; its `error_id` is in the log."})
            for code, response in responses.items():
                if not code.isdigit() or int(code) < 400:
                    continue
                found = response.get("content", {}).get("application/json", {}).get("schema")
                if code == "422" or found == {"$ref": "#/components/schemas/HTTPValidationError"}:
                    found = validation_ref
                response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": found or problem_ref}}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def _clean(text: str, limit: int = _MAX_TEXT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with unpaired surrogates and other unencodables escaped."""
    if len(text) > limit:
        text = text[:limit] + "…"
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _preview(value: Any) -> str | int | float | bool | None:
    """A short, always-serialisable rendering of an offending input."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < _MAX_SAFE_INT else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return _clean(value, PREVIEW_CHARS)
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    if isinstance(value, Mapping):
        return f"an object of {len(value)} members"
    if isinstance(value, Sequence):
        return f"an array of {len(value)} items"
    return _clean(type(value).__name__, PREVIEW_CHARS)


def _issue(error: Mapping[str, Any]) -> ValidationIssue:
    """One pydantic/FastAPI error as a bounded ``ValidationIssue``."""
    kind = _clean(str(error.get("type", "invalid")), 100)
    if kind == "json_invalid":  # loc is ("body", character offset); input is a placeholder
        offset = next((part for part in error.get("loc", ())[1:] if isinstance(part, int)), 0)
        reason = str((error.get("ctx") or {}).get("error", "malformed"))
        where = f" at character {offset}" if offset else ""
        return ValidationIssue(loc=["body"], msg=_clean(f"invalid JSON{where}: {reason}"), type=kind)
    loc = [
        part if isinstance(part, int) else _clean(str(part), PREVIEW_CHARS) for part in error.get("loc", ())
    ]
    return ValidationIssue(
        loc=loc, msg=_clean(str(error.get("msg", "invalid"))), type=kind, input=_preview(error.get("input"))
    )


def _render(body: Mapping[str, Any]) -> bytes:
    """The problem as JSON bytes; falls back to the bare members if an extension will not serialise."""
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        logger.exception(
            "problem body of %s does not serialise; sending the bare members", body.get("instance")
        )
        bare = {k: body[k] for k in ("type", "title", "status", "detail", "instance")}
        return json.dumps(bare, ensure_ascii=True).encode("ascii")


def problem_response(
    status_code: int,
    detail: str,
    instance: str,
    *,
    extensions: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A problem-details reply.

    Args:
        status_code: The HTTP status (4xx or 5xx).
        detail: What went wrong, for the caller; cut to 500 characters.
        instance: The request path.
        extensions: More members (JSON values; strings are not cleaned).
        headers: Extra response headers.

    Returns:
        The ``application/problem+json`` response.
    """
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status_code),
        "status": status_code,
        "detail": _clean(detail),
        "instance": _clean(instance, 2000),
    }
    body.update(extensions or {})
    return Response(_render(body), status_code=status_code, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _detail_text(detail: Any) -> str:
    """An ``HTTPException.detail`` as text (other code may still pass a dict)."""
    if isinstance(detail, str):
        return detail
    return _clean(json.dumps(detail, default=str, ensure_ascii=False))


async def _http_exception(request: Request, exc: Exception) -> Response:
    """``HTTPException`` (ours, FastAPI's, Starlette's 404/405) as a problem."""
    if not isinstance(exc, HTTPException):
        raise exc
    extensions = exc.extensions if isinstance(exc, ApiProblem) else None
    return problem_response(
        exc.status_code,
        _detail_text(exc.detail),
        request.url.path,
        extensions=extensions,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    """422 with a bounded ``errors`` list and a one-line summary in ``detail``."""
    if not isinstance(exc, RequestValidationError):
        raise exc
    errors = list(exc.errors())
    issues = [_issue(error) for error in errors[:MAX_ERRORS]]
    if issues:
        first = issues[0]
        where = ".".join(str(part) for part in first.loc) or "request"
        detail = f"{where}: {first.msg}"
        if len(errors) > 1:
            shown = f"; the first {MAX_ERRORS} are listed" if len(errors) > MAX_ERRORS else ""
            detail += f" (and {len(errors) - 1} more error(s){shown})"
    else:
        detail = "the request is invalid"
    return problem_response(
        422,
        detail,
        request.url.path,
        extensions={"errors": [issue.model_dump() for issue in issues]},
    )


async def _unhandled(request: Request, exc: Exception) -> Response:
    """500 without internals; the log line and the reply share an ``error_id``."""
    error_id = secrets.token_hex(6)
    logger.error("unhandled error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    return problem_response(
        500,
        f"internal error {error_id}; the service log has the details",
        request.url.path,
        extensions={"error_id": error_id},
        headers=SECURITY_HEADERS,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details, and say so in its OpenAPI document.

    Covers ``HTTPException`` (ours, FastAPI's, the router's 404 and 405), validation
    errors and unhandled exceptions.
    """
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
    generate = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not documented:
            schema = generate()
            _document_problems(schema)
            documented.append(schema)
        return documented[0]

    app.openapi = openapi  # type: ignore[method-assign]
