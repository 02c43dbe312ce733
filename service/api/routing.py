"""The route class of every router: refuse early, then parse JSON strictly.

FastAPI reads and parses a request's body before it runs the route's
dependencies, so a token check in a dependency comes too late to spare the
server a 300 MB body. ``GuardedRoute`` runs, before the body is touched:

1. the route's ``RoleRequirement`` (found among its dependencies): 401, 403 or
   429 without reading a byte of the body;
2. the body-size limit of the route (``server.limits``): 413 when
   ``Content-Length`` is over it, or as soon as a streamed body passes it.

The body is then parsed as RFC 8259 JSON: ``NaN``, ``Infinity``, ``-Infinity``,
unpaired surrogates (``"\\ud800"``) and NUL characters (``"\\u0000"``, which
PostgreSQL cannot store) are refused with 422 instead of reaching the models, the
database or the JSON encoder of the reply.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from anjian.service.api.auth import AUTH_SCOPE_KEY, Authenticator, AuthOutcome, Requirement
from anjian.service.api.limits import check_declared_length, limit_body
from anjian.service.storable_text import unstorable_reason

__all__ = [
    "BodyLimits",
    "GuardedRoute",
    "IngestRoute",
    "body_limited_route",
    "find_requirement",
    "loads_strict_json",
]


class BodyLimits:
    """The body sizes the app's routes accept, in bytes.

    Args:
        default_bytes: Every route but ingest (lifecycle actions, notes, tokens, subscriptions).
        ingest_bytes: Event revisions POSTed by pipelines, snapshot and clip inline.
    """

    def __init__(self, *, default_bytes: int, ingest_bytes: int) -> None:
        if default_bytes < 0 or ingest_bytes < 0:
            raise ValueError(f"body limits must be >= 0, got {default_bytes} and {ingest_bytes}")
        self.default_bytes = default_bytes
        self.ingest_bytes = ingest_bytes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _unstorable_string(document: Any) -> tuple[str, str] | None:
    """The path of the first string (or member name) the database cannot store, and why; else ``None``."""
    stack: list[tuple[str, Any]] = [("body", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            reason = unstorable_reason(value)
            if reason is not None:
                return path, reason
        elif isinstance(value, dict):
            for key, item in value.items():
                reason = unstorable_reason(key)
                if reason is not None:
                    return f"{path} (a member name)", reason
                stack.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


def loads_strict_json(body: bytes) -> Any:
    """Parse ``body`` as RFC 8259 JSON.

    Raises:
        json.JSONDecodeError: Not UTF-8, not JSON, or it holds ``NaN``/``Infinity`` or a string
            the database cannot store (an unpaired surrogate or a NUL character,
            ``anjian.service.storable_text``); FastAPI answers 422 with the reason.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(
            f"the body is not UTF-8 ({exc.reason} at byte {exc.start})", "", 0
        ) from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None
    found = _unstorable_string(document)
    if found is not None:
        path, reason = found
        path = path.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:200]
        raise json.JSONDecodeError(f"the string at {path} {reason}, which the database cannot store", text, 0)
    return document


class _StrictJsonRequest(Request):
    """A request whose ``json()`` is ``loads_strict_json``."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict_json(await self.body())
        return self._json


def find_requirement(dependant: Dependant) -> Requirement | None:
    """The ``Requirement`` among a route's dependencies (depth first), or ``None`` for a public route."""
    stack = [dependant]
    while stack:
        current = stack.pop()
        if isinstance(current.call, Requirement):
            return current.call
        stack.extend(current.dependencies)
    return None


def _limited(request: Request, max_bytes: int) -> Request:
    """``request`` with its body refused past ``max_bytes`` (declared or as it arrives: 413) and strict JSON."""
    check_declared_length(request.scope, max_bytes)
    return _StrictJsonRequest(request.scope, limit_body(request.receive, max_bytes))


class GuardedRoute(APIRoute):
    """An ``APIRoute`` that authenticates and limits the body before reading it, and parses JSON strictly.

    The app must hold ``state.authenticator`` (``Authenticator``) and ``state.body_limits``
    (``BodyLimits``), as ``create_app`` sets them.
    """

    is_ingest: ClassVar[bool] = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, behind the token check and the body limit."""
        handler = super().get_route_handler()
        requirement = find_requirement(self.dependant)
        is_ingest = self.is_ingest

        async def guarded(request: Request) -> Response:
            state = request.app.state
            if requirement is not None:
                authenticator: Authenticator = state.authenticator
                token = await run_in_threadpool(authenticator.admit, request.scope, requirement)
                request.scope[AUTH_SCOPE_KEY] = AuthOutcome(token)
            limits: BodyLimits = state.body_limits
            return await handler(
                _limited(request, limits.ingest_bytes if is_ingest else limits.default_bytes)
            )

        return guarded


def body_limited_route(max_bytes: int) -> type[APIRoute]:
    """An ``APIRoute`` class that refuses a body over ``max_bytes`` as it arrives (413) and parses JSON strictly.

    For an app whose own dependencies authenticate (the hub): FastAPI reads and parses a body
    before any dependency runs, so without a limit an anonymous client could make it hold
    hundreds of megabytes.
    """

    class BodyLimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                return await handler(_limited(request, max_bytes))

            return limited

    return BodyLimitedRoute


class IngestRoute(GuardedRoute):
    """A ``GuardedRoute`` with the ingest body limit (event revisions carry their snapshot and clip)."""

    is_ingest = True
