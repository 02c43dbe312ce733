"""API tokens: list, create and revoke (admin only; ``anjian tokens create`` works without a token).

Names with control or format characters are refused (422); creations and
revocations are logged with the names escaped (``anjian.service.tokens.printable``).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, status
from fastapi import Path as PathParam

from anjian.service.api.deps import AUTH_RESPONSES, Admin, StoreDep
from anjian.service.api.models import TokenCreated, TokenIn, TokenOut
from anjian.service.api.problems import problem_responses
from anjian.service.api.routing import GuardedRoute
from anjian.service.tokens import printable

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["tokens"], responses=AUTH_RESPONSES, route_class=GuardedRoute)


@router.get("/tokens", response_model=list[TokenOut], summary="List API tokens")
def list_tokens(store: StoreDep, _token: Admin) -> list[TokenOut]:
    """Every token (revoked ones too), without secrets."""
    return [TokenOut.model_validate(t) for t in store.tokens.list()]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a token",
    responses=problem_responses(
        422,
        descriptions={
            422: "The name is blank once trimmed, too long, holds control characters, or the role is unknown."
        },
    ),
)
def create_token(store: StoreDep, admin: Admin, body: TokenIn) -> TokenCreated:
    """Make a token; its secret is in this response only."""
    try:
        info, secret = store.tokens.create(body.name, body.role)
    except ValueError as exc:  # blank after strip(), or control characters
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    logger.info(
        "token %d (%s, %s) created by token %d (%s)",
        info.id,
        printable(info.name),
        info.role.value,
        admin.id,
        printable(admin.name),
    )
    return TokenCreated(token=secret, info=TokenOut.model_validate(info))


@router.delete(
    "/tokens/{token_id}",
    response_model=TokenOut,
    summary="Revoke a token",
    responses={404: {"description": "No token has this id."}},
)
def revoke_token(
    store: StoreDep, admin: Admin, token_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)]
) -> TokenOut:
    """Revoke a token at once."""
    revoked = store.tokens.revoke(token_id)
    if revoked is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no token {token_id}")
    logger.info(
        "token %d (%s) revoked by token %d (%s)",
        token_id,
        printable(revoked.name),
        admin.id,
        printable(admin.name),
    )
    return TokenOut.model_validate(revoked)
