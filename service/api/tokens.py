"""API tokens: list, create and revoke (admin only; ``anjian tokens create`` works without a token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, status
from fastapi import Path as PathParam

from service.api.deps import AUTH_RESPONSES, Admin, StoreDep
from service.api.models import TokenCreated, TokenIn, TokenOut

__all__ = ["router"]

router = APIRouter(tags=["tokens"], responses=AUTH_RESPONSES)


@router.get("/tokens", response_model=list[TokenOut], summary="List API tokens")
def list_tokens(store: StoreDep, _token: Admin) -> list[TokenOut]:
    """Every token (revoked ones too), without secrets."""
    return [TokenOut.from_token(t) for t in store.tokens.list()]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a token",
    responses={422: {"description": "The name is blank once trimmed, too long, or the role is unknown."}},
)
def create_token(store: StoreDep, _token: Admin, body: TokenIn) -> TokenCreated:
    """Make a token; its secret is in this response only."""
    try:
        info, secret = store.tokens.create(body.name, body.role)
    except ValueError as exc:  # e.g. a name of control characters only, blank after strip()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    return TokenCreated(token=secret, info=TokenOut.from_token(info))


@router.delete(
    "/tokens/{token_id}",
    response_model=TokenOut,
    summary="Revoke a token",
    responses={404: {"description": "No token has this id."}},
)
def revoke_token(
    store: StoreDep, _token: Admin, token_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)]
) -> TokenOut:
    """Revoke a token at once."""
    revoked = store.tokens.revoke(token_id)
    if revoked is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no token {token_id}")
    return TokenOut.from_token(revoked)
