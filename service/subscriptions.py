"""Webhook subscriptions: the endpoints events are announced to, from the site YAML and from the API.

Both kinds live in one table, so the outbox can enqueue deliveries for them in the
event's own transaction. Webhooks of the site YAML are synchronised into it at start
(``sync_config``): added, updated, and deactivated once removed from the file.
Subscriptions made through the API are never touched by that. A deleted
subscription is only deactivated, so its past deliveries keep their target.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from anjian.service.channels.address import channel_name
from anjian.service.config import WebhookConfig
from anjian.service.copying import copy_fields
from anjian.service.database import Database
from anjian.service.records import Subscription, subscription_from_row
from anjian.service.tables import SubscriptionRow

__all__ = ["SOURCE_API", "SOURCE_CONFIG", "SubscriptionSpec", "SubscriptionStore"]

logger = logging.getLogger(__name__)

SOURCE_CONFIG = "config"
SOURCE_API = "api"


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What a new subscription needs (validated by the API model or ``WebhookConfig``).

    The filters (``kinds``, ``site_ids``, ``camera_ids``, ``behaviours``) may be given as any
    iterable of strings or string enums (a config model's lists); they are kept as tuples of
    ``str``, so a spec is built from a model with ``copy_fields``.
    """

    url: str
    secret: str | None = None
    description: str = ""
    timeout_s: float = 5.0
    retry_for_s: float = 86_400.0
    max_attempts: int | None = None
    kinds: tuple[str, ...] = ()
    site_ids: tuple[str, ...] = ()
    camera_ids: tuple[str, ...] = ()
    behaviours: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in _FILTERS:
            object.__setattr__(self, name, tuple(str(value) for value in getattr(self, name)))

    @classmethod
    def from_config(cls, webhook: WebhookConfig) -> SubscriptionSpec:
        """The spec of a webhook from the site YAML."""
        secret = None if webhook.secret is None else webhook.secret.get_secret_value()
        return copy_fields(cls, webhook, secret=secret, description="from the site config")


_FILTERS = ("kinds", "site_ids", "camera_ids", "behaviours")


def _identity(url: str) -> str:
    """What makes a config subscription the same one: a webhook's URL, a channel's name (not its colours)."""
    name = channel_name(url)
    return url if name is None else f"channel:{name}"


def _apply(row: SubscriptionRow, spec: SubscriptionSpec) -> None:
    """Copy every field of a spec onto the row's column of the same name (filters as JSON lists)."""
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        setattr(row, field.name, list(value) if field.name in _FILTERS else value)


class SubscriptionStore:
    """Creates, lists and deactivates webhook subscriptions; thread-safe.

    Args:
        database: The shared database.
        clock: Returns epoch seconds.
    """

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = database
        self._clock = clock

    def create(self, spec: SubscriptionSpec, *, source: str = SOURCE_API) -> Subscription:
        """Add an active subscription."""
        now = self._clock()
        with self._db.write() as session:
            row = SubscriptionRow(source=source, is_active=True, created_at=now, updated_at=now)
            _apply(row, spec)
            session.add(row)
            session.flush()
            return subscription_from_row(row)

    def get(self, subscription_id: int) -> Subscription | None:
        """The subscription with this id (active or not), or ``None``."""
        with self._db.read() as session:
            row = session.get(SubscriptionRow, subscription_id)
            return None if row is None else subscription_from_row(row)

    def list(self, *, is_active_only: bool = True) -> list[Subscription]:
        """Subscriptions, oldest first."""
        query = select(SubscriptionRow).order_by(SubscriptionRow.id)
        if is_active_only:
            query = query.where(SubscriptionRow.is_active.is_(True))
        with self._db.read() as session:
            return [subscription_from_row(row) for row in session.scalars(query)]

    def deactivate(self, subscription_id: int) -> Subscription | None:
        """Stop announcing to a subscription (its pending deliveries become dead letters when due).

        Returns:
            The deactivated subscription, or ``None`` when no subscription has this id.
        """
        with self._db.write() as session:
            row = session.get(SubscriptionRow, subscription_id)
            if row is None:
                return None
            row.is_active = False
            row.updated_at = self._clock()
            return subscription_from_row(row)

    def sync_config(
        self, webhooks: Sequence[WebhookConfig], *, channels: Sequence[SubscriptionSpec] = ()
    ) -> builtins.list[Subscription]:
        """Make the config subscriptions match the site YAML's ``webhooks`` (one per URL) and channels.

        Args:
            webhooks: The site YAML's webhooks.
            channels: The rows of its robots and e-mail lists
                (``AlertChannels.subscription_specs``: ``channel:<name>`` addresses).

        Returns:
            The active config subscriptions, in config order (webhooks, then channels).
        """
        now = self._clock()
        specs: dict[str, SubscriptionSpec] = {}
        for webhook in webhooks:
            if webhook.url in specs:
                logger.warning("webhook %s is configured twice; using the first entry", webhook.url)
                continue
            specs[webhook.url] = SubscriptionSpec.from_config(webhook)
        for channel in channels:
            specs.setdefault(_identity(channel.url), channel)
        with self._db.write() as session:
            rows = session.scalars(
                select(SubscriptionRow)
                .where(SubscriptionRow.source == SOURCE_CONFIG)
                .order_by(SubscriptionRow.id)
            ).all()
            by_url: dict[str, SubscriptionRow] = {}
            for row in rows:
                if _identity(row.url) in specs and _identity(row.url) not in by_url:
                    by_url[_identity(row.url)] = row
                elif row.is_active:
                    row.is_active = False
                    row.updated_at = now
            active: builtins.list[SubscriptionRow] = []
            for url, spec in specs.items():
                target = by_url.get(url)
                if target is None:
                    target = SubscriptionRow(source=SOURCE_CONFIG, created_at=now)
                    session.add(target)
                _apply(target, spec)
                target.is_active = True
                target.updated_at = now
                active.append(target)
            session.flush()
            return [subscription_from_row(row) for row in active]
