"""Who is calling: bearer tokens and dashboard session cookies checked against the token store, by role.

Every route that needs a token declares it with a ``RoleRequirement`` dependency
(``deps.Viewer``, ``deps.Operator`` ...). ``GuardedRoute`` finds that dependency
and runs ``Authenticator.admit`` before the body is read; the dependency then
returns the token admitted (and authenticates itself on a route of another
class, so no route can skip the check).

Answers: no credentials → 401; an unknown, revoked or forged one → 401, and the
client address spends one failed attempt (``FailedAuthLimiter``); while an
address has none left → 429 with ``Retry-After``, without checking; a role too
weak → 403; the database down → 503. Tokens that recently succeeded and genuine
session cookies are checked even then, so callers that succeed are unaffected.

Routes that take the session cookie ignore an ``Authorization`` header of another
scheme than ``Bearer`` (a reverse proxy's HTTP Basic, which browsers then send with
every request) and look at the cookie; a ``Bearer`` token is checked as anywhere.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import Scope

from anjian.service.api.limits import FailedAuthLimiter
from anjian.service.api.problems import ApiProblem
from anjian.service.api.session_cookie import SessionSigner, SessionVerdict
from anjian.service.tokens import ApiToken, Role, TokenStore, hash_token, printable

__all__ = [
    "AUTH_SCOPE_KEY",
    "SESSION_COOKIE",
    "AuthOutcome",
    "Authenticator",
    "CookieRoleRequirement",
    "OptionalRoleRequirement",
    "Requirement",
    "RoleRequirement",
    "bearer_secret",
]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "anjian_session"
AUTH_SCOPE_KEY = "anjian.auth"
"""Where ``GuardedRoute`` leaves the ``AuthOutcome`` of a request in its ASGI scope."""

_bearer = HTTPBearer(auto_error=False, description="An API token (`anjian tokens create`).")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="The dashboard session (`POST /auth/session`)."
)


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """The caller a request was admitted as; ``token`` is ``None`` for an anonymous caller of an optional route."""

    token: ApiToken | None


class Requirement:
    """What a route needs of its caller.

    Attributes:
        required: The least role (admin grants operator grants viewer; pipeline is apart).
        is_optional: Anonymous callers (and too-weak roles) are let in as ``None``.
        is_cookie_allowed: The dashboard session cookie is accepted besides the bearer token, and
            an ``Authorization`` header of another scheme than ``Bearer`` is ignored (not refused).
    """

    is_optional = False
    is_cookie_allowed = False

    def __init__(self, required: Role) -> None:
        self.required = required

    def resolve(self, request: Request) -> ApiToken | None:
        """The token ``GuardedRoute`` admitted, or (another route class) the result of authenticating now."""
        outcome = request.scope.get(AUTH_SCOPE_KEY)
        if isinstance(outcome, AuthOutcome):
            return outcome.token
        authenticator: Authenticator = request.app.state.authenticator
        return authenticator.admit(request.scope, self)

    def require(self, request: Request) -> ApiToken:
        """``resolve``, for a required role (``admit`` lets no anonymous caller through one)."""
        token = self.resolve(request)
        if token is None:
            raise _unauthorized("an API token is required: send Authorization: Bearer <token>")
        return token


class RoleRequirement(Requirement):
    """Dependency: the caller's token, whose role must grant ``required``; bearer token only."""

    def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiToken:
        """The admitted token."""
        return self.require(request)


class CookieRoleRequirement(Requirement):
    """Dependency: like ``RoleRequirement``, and the dashboard session cookie also serves (media, live feed)."""

    is_cookie_allowed = True

    def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        _session: Annotated[str | None, Depends(_cookie)],
    ) -> ApiToken:
        """The admitted token."""
        return self.require(request)


class OptionalRoleRequirement(Requirement):
    """Dependency: the caller's token when one is sent and grants ``required``, else ``None``."""

    is_optional = True

    def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiToken | None:
        """The admitted token, or ``None`` for an anonymous caller."""
        return self.resolve(request)


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def bearer_secret(headers: Headers, *, is_other_scheme_ignored: bool = False) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or ``None`` when the request sends none.

    Args:
        headers: The request's headers.
        is_other_scheme_ignored: Treat an ``Authorization`` header of another scheme as absent.
            Routes that take the session cookie do: behind a reverse proxy with HTTP Basic
            auth, browsers send ``Authorization: Basic`` with every ``<img>`` and ``EventSource``
            request, next to the cookie.

    Raises:
        ApiProblem: 401 for another scheme (unless ignored) or a ``Bearer`` header without a token.
    """
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, secret = value.strip().partition(" ")
    if scheme.lower() != "bearer" and is_other_scheme_ignored:
        return None
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("send the API token as Authorization: Bearer <token>")
    return secret.strip()


def _session_cookie(headers: Headers) -> str | None:
    raw = headers.get("cookie")
    return None if raw is None else cookie_parser(raw).get(SESSION_COOKIE) or None


class Authenticator:
    """Admits requests by their bearer token or session cookie, limiting failed attempts per address.

    Args:
        tokens: The token store.
        sessions: Checks session cookies.
        limiter: Failed attempts per client address.
        max_known: Digests of tokens that recently succeeded, remembered so that they pass a
            blocked address.
    """

    def __init__(
        self,
        tokens: TokenStore,
        sessions: SessionSigner,
        limiter: FailedAuthLimiter,
        *,
        max_known: int = 1024,
    ) -> None:
        self._tokens = tokens
        self._sessions = sessions
        self.limiter = limiter
        self._known: OrderedDict[str, None] = OrderedDict()
        self._max_known = max_known
        self._lock = threading.Lock()

    def admit(self, scope: Scope, requirement: Requirement) -> ApiToken | None:
        """The caller's token if it meets ``requirement`` (``None``: anonymous on an optional route).

        Blocking (database); ``GuardedRoute`` calls it in the thread pool.

        Raises:
            ApiProblem: 401, 403, 429 or 503, as the module docstring lists.
        """
        headers = Headers(scope=scope)
        client = _client_address(scope)
        secret = bearer_secret(headers, is_other_scheme_ignored=requirement.is_cookie_allowed)
        session = _session_cookie(headers) if secret is None and requirement.is_cookie_allowed else None
        if secret is None and session is None:
            if requirement.is_optional:
                return None
            raise _unauthorized("an API token is required: send Authorization: Bearer <token>")
        token = (
            self._by_bearer(client, secret) if secret is not None else self._by_session(client, session or "")
        )
        if not token.role.grants(requirement.required):
            if requirement.is_optional:
                return None
            raise ApiProblem(
                403, f"a {token.role.value} token may not do this; {requirement.required.value} needed"
            )
        return token

    def _refuse_if_blocked(self, client: str) -> None:
        """429 when ``client`` has no failed attempts left."""
        if self.limiter.retry_after_s(client) > 0:
            retry_after = self.limiter.retry_after_header(client)
            raise ApiProblem(
                429,
                f"too many failed token attempts from this address; try again in {retry_after} s",
                headers={"Retry-After": retry_after},
            )

    def _fail(self, client: str, detail: str) -> ApiProblem:
        """Spend one of ``client``'s attempts; the 401 to raise."""
        if self.limiter.record_failure(client):
            logger.warning(
                "auth: %s ran out of failed token attempts; refusing its guesses for a while", client
            )
        else:
            logger.debug("auth: failed token attempt from %s", client)
        return _unauthorized(detail)

    def _by_bearer(self, client: str, secret: str) -> ApiToken:
        digest = hash_token(secret)
        with self._lock:
            is_known = digest in self._known
        if not is_known:
            self._refuse_if_blocked(client)
        try:
            token = self._tokens.authenticate(secret)
        except SQLAlchemyError as exc:
            logger.exception("authentication: the database does not answer")
            raise ApiProblem(503, "the database does not answer") from exc
        with self._lock:
            if token is None:
                self._known.pop(digest, None)
            else:
                self._known[digest] = None
                self._known.move_to_end(digest)
                while len(self._known) > self._max_known:
                    self._known.popitem(last=False)
        if token is None:
            raise self._fail(client, "unknown or revoked API token")
        logger.debug("auth: %s is token %d (%s)", client, token.id, printable(token.name))
        return token

    def _by_session(self, client: str, value: str) -> ApiToken:
        check = self._sessions.check(value)
        if check.verdict is SessionVerdict.FORGED:
            self._refuse_if_blocked(client)
            raise self._fail(client, "the session cookie is not valid: open a new session")
        if check.verdict is SessionVerdict.EXPIRED or check.token_id is None:
            raise _unauthorized("the dashboard session has expired: open a new one (POST /auth/session)")
        try:
            token = self._tokens.get_active(check.token_id)
        except SQLAlchemyError as exc:
            logger.exception("authentication: the database does not answer")
            raise ApiProblem(503, "the database does not answer") from exc
        if token is None:
            raise _unauthorized("the token of this session was revoked")
        return token
