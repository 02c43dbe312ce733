"""Webhooks: subscriptions (create, list, deactivate) and deliveries (list, dead letters, redeliver)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi import Path as PathParam

from anjian.pipeline.event_wire import ID_PATTERN
from anjian.service.api.deps import AUTH_RESPONSES, Admin, StoreDep
from anjian.service.api.models import DeliveryList, DeliveryOut, SubscriptionIn, SubscriptionOut
from anjian.service.api.routing import GuardedRoute
from anjian.service.copying import copy_fields
from anjian.service.records import DeliveryStatus, Subscription
from anjian.service.subscriptions import SOURCE_CONFIG, SubscriptionSpec

__all__ = ["router"]

router = APIRouter(tags=["webhooks"], responses=AUTH_RESPONSES, route_class=GuardedRoute)

_SUB_ID = PathParam(..., ge=1, le=2**31 - 1, description="Subscription id.")
_DELIVERY_ID = PathParam(..., ge=1, le=2**63 - 1, description="Delivery id.")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Not found."}}


@router.get("/webhooks/subscriptions", response_model=list[SubscriptionOut], summary="List subscriptions")
def list_subscriptions(
    store: StoreDep,
    _token: Admin,
    include_inactive: Annotated[bool, Query(description="Also list deactivated ones.")] = False,
) -> list[SubscriptionOut]:
    """Every active subscription (from the site config and the API), oldest first."""
    subs = store.subscriptions.list(is_active_only=not include_inactive)
    return [SubscriptionOut.from_subscription(s) for s in subs]


@router.post(
    "/webhooks/subscriptions",
    response_model=SubscriptionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a URL",
)
def create_subscription(store: StoreDep, _token: Admin, body: SubscriptionIn) -> SubscriptionOut:
    """Start announcing matching events (created from now on) to a URL."""
    secret = None if body.secret is None else body.secret.get_secret_value()
    spec = copy_fields(SubscriptionSpec, body, secret=secret)
    return SubscriptionOut.from_subscription(store.subscriptions.create(spec))


@router.get(
    "/webhooks/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="One subscription",
    responses=_NOT_FOUND,
)
def get_subscription(
    store: StoreDep, _token: Admin, subscription_id: Annotated[int, _SUB_ID]
) -> SubscriptionOut:
    """The subscription, active or not."""
    return SubscriptionOut.from_subscription(
        _found(store.subscriptions.get(subscription_id), subscription_id)
    )


@router.delete(
    "/webhooks/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Deactivate a subscription",
    responses={**_NOT_FOUND, 409: {"description": "It comes from the site config: edit the file instead."}},
)
def delete_subscription(
    store: StoreDep, _token: Admin, subscription_id: Annotated[int, _SUB_ID]
) -> SubscriptionOut:
    """Stop announcing to it; its pending deliveries become dead letters."""
    sub = _found(store.subscriptions.get(subscription_id), subscription_id)
    if sub.source == SOURCE_CONFIG:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="this webhook comes from the site config; remove it there"
        )
    return SubscriptionOut.from_subscription(
        _found(store.subscriptions.deactivate(subscription_id), subscription_id)
    )


def _found(sub: Subscription | None, subscription_id: int) -> Subscription:
    """``sub``, or a 404 naming the subscription that is not there."""
    if sub is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no subscription {subscription_id}")
    return sub


@router.get(
    "/webhooks/deliveries", response_model=DeliveryList, summary="List deliveries (dead letters: failed)"
)
def list_deliveries(
    store: StoreDep,
    _token: Admin,
    status_: Annotated[
        DeliveryStatus | None, Query(alias="status", description="failed lists the dead letters.")
    ] = None,
    event_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN)] = None,
    after_id: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="`next_after_id` of the previous page.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryList:
    """Deliveries, oldest first, a page at a time."""
    rows = store.outbox.list(event_id=event_id, status=status_, after_id=after_id, limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryList(
        items=[DeliveryOut.model_validate(d) for d in rows],
        count=len(rows),
        next_after_id=rows[-1].id if has_more else None,
    )


@router.post(
    "/webhooks/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    summary="Send a delivery again",
    responses={**_NOT_FOUND, 409: {"description": "Its subscription is no longer active."}},
)
def redeliver(store: StoreDep, _token: Admin, delivery_id: Annotated[int, _DELIVERY_ID]) -> DeliveryOut:
    """Queue a dead letter (or any delivery) again now, with a fresh retry window and the same idempotency key."""
    delivery = store.outbox.get(delivery_id)
    if delivery is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no delivery {delivery_id}")
    sub = store.subscriptions.get(delivery.subscription_id)
    if sub is None or not sub.is_active:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="the delivery's subscription is no longer active"
        )
    queued = store.outbox.redeliver(delivery_id, retry_for_s=sub.retry_for_s)  # the commit wakes the workers
    return DeliveryOut.model_validate(queued)
