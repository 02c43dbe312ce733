"""Dashboard sessions: a short-lived HttpOnly cookie that lets the browser load media and the live feed.

``<img>``, ``<video>`` and ``EventSource`` cannot send an ``Authorization``
header, and a token in the URL ends up in proxy logs. So the dashboard trades
its token for a cookie (``POST /auth/session`` with ``Authorization: Bearer``):
``anjian_session`` (``anjian.service.api.session_cookie``), ``HttpOnly``,
``SameSite=Strict``, ``Path=/``, ``Secure`` over HTTPS. It is accepted only by
the read-only routes a browser loads directly (snapshot, clip, ``/stream``), and
only while its token is still valid: revoking the token ends its sessions, and
the live feed checks again every few seconds (``still_admitted``), so revoking a
token or the expiry of the cookie also ends a feed that is open.

Routes: ``POST /auth/session`` (a viewer, operator or admin token) sets the
cookie and answers its expiry; ``DELETE /auth/session`` clears it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from anjian.service.api.auth import SESSION_COOKIE, RoleRequirement, bearer_secret
from anjian.service.api.problems import problem_responses
from anjian.service.api.routing import GuardedRoute
from anjian.service.api.session_cookie import SessionSigner, SessionVerdict
from anjian.service.schemas import epoch_to_datetime
from anjian.service.tokens import ApiToken, Role, TokenStore

__all__ = ["SessionOut", "router", "still_admitted"]


class SessionOut(BaseModel):
    """A dashboard session: the cookie is set; open a new one before it expires."""

    model_config = ConfigDict(frozen=True)

    expires_at: datetime = Field(..., description="When the cookie stops being accepted.")
    ttl_s: float = Field(..., description="Its lifetime in seconds.")
    role: Role = Field(..., description="The token's role: the dashboard shows what it may not do as such.")
    token_name: str = Field(..., description="Who holds the token (the audit trail's actor).")


router = APIRouter(tags=["auth"], route_class=GuardedRoute)

_SessionUser = Annotated[ApiToken, Depends(RoleRequirement(Role.VIEWER))]


@router.post(
    "/auth/session",
    response_model=SessionOut,
    summary="Open a dashboard session (sets an HttpOnly cookie)",
    responses=problem_responses(401, 403, 429),
)
def open_session(request: Request, response: Response, token: _SessionUser) -> SessionOut:
    """Set the ``anjian_session`` cookie that snapshot, clip and ``/stream`` accept; needs a bearer token."""
    signer: SessionSigner = request.app.state.sessions
    value, expires_at = signer.issue(token.id)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(signer.ttl_s),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return SessionOut(
        expires_at=epoch_to_datetime(expires_at), ttl_s=signer.ttl_s, role=token.role, token_name=token.name
    )


@router.delete(
    "/auth/session",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_model=None,
    summary="Close the dashboard session (clears the cookie)",
)
def close_session(request: Request) -> Response:
    """Clear the cookie; anyone may (it only makes this browser forget its session)."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )
    return response


def still_admitted(request: Request, token_id: int) -> bool:
    """Whether the caller of a long-running request (the live feed) would still be admitted now.

    It came with the token ``token_id``: by its bearer header, or else by a session
    cookie, as ``Authenticator.admit`` chose (an ``Authorization`` header of another
    scheme does not count). The token must not be revoked, and a cookie must not have
    expired since (a renewed cookie comes only with a new request).
    Blocking (database): call it in the thread pool.

    Raises:
        SQLAlchemyError: The database does not answer (the caller decides whether to wait).
    """
    if bearer_secret(request.headers, is_other_scheme_ignored=True) is None:  # admitted by the cookie
        signer: SessionSigner = request.app.state.sessions
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None or signer.check(cookie).verdict is not SessionVerdict.VALID:
            return False
    tokens: TokenStore = request.app.state.store.tokens
    return tokens.get_active(token_id) is not None
