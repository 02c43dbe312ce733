"""The configured alert channels: their subscription rows, and sending a claimed outbox delivery to one.

``AlertChannels.from_config`` builds one sender per robot and e-mail list of the site
YAML's ``channels:`` section. ``subscription_specs`` gives the rows that the
subscriptions table must hold for them (``SubscriptionStore.sync_config(...,
channels=...)``): address ``channel:<name>``, the channel's filters and retry window,
so the outbox enqueues a delivery for a channel in the event's own transaction, like a
webhook's. The webhook dispatcher claims, retries and settles those rows as it does
webhooks', and hands each to ``send``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Protocol

import httpx
from pydantic import ValidationError

from anjian.cameras.url import mask_credentials
from anjian.service.channels.address import channel_address, channel_name
from anjian.service.channels.config import ChannelsConfig, EmailConfig, RobotConfig
from anjian.service.channels.mailer import EmailChannel
from anjian.service.channels.message import AlertMessage, MessageBuilder
from anjian.service.channels.outcome import SendOutcome
from anjian.service.channels.robots import RobotChannel
from anjian.service.channels.spacing import MessageSpacing
from anjian.service.copying import copy_fields
from anjian.service.errors import EvidenceError
from anjian.service.evidence import EvidenceStore
from anjian.service.subscriptions import SubscriptionSpec
from anjian.service.webhook_url import checked_transport

if TYPE_CHECKING:
    from anjian.service.config import AnjianConfig, SiteConfig
    from anjian.service.records import Subscription, WebhookDelivery

__all__ = ["AlertChannels", "Channel"]

logger = logging.getLogger(__name__)

_ERROR_CHARS = 300
# The robots' connections: each robot is one subscription, and the dispatcher sends to several at once.
_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16)


class Channel(Protocol):
    """A place alert messages go: a group robot or an e-mail list."""

    name: str

    def send(self, message: AlertMessage, snapshot: bytes | None) -> SendOutcome:
        """Send one message once; failures come back as the outcome, never raised."""
        ...


def _user_agent() -> str:
    """``anjian/<version>``."""
    try:
        return f"anjian/{version('anjian')}"
    except PackageNotFoundError:
        return "anjian/0"


class AlertChannels:
    """The site's robots and e-mail lists, by name, with what they need to render and send.

    Args:
        config: The ``channels:`` section.
        site: The ``site:`` section (names, time zone, workshops' cameras).
        evidence: Where snapshots are read for e-mail attachments; ``None``: none attached.
        transport: httpx transport of the robots' client (tests may inject one). Default:
            ``checked_transport``, which connects only where a webhook may go (no link-local,
            cloud metadata or unspecified address, whatever the robot's host name resolves to);
            httpx's own, which honours it, where the environment names an HTTP proxy.
        clock: Epoch seconds, for the robots' signature timestamps.
        spacing_clock: Monotonic seconds, for keeping robots under their rate.

    Raises:
        ValueError: A channel filters on a workshop that is not in the site, or that has no cameras.
    """

    def __init__(
        self,
        config: ChannelsConfig,
        site: SiteConfig,
        *,
        evidence: EvidenceStore | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        spacing_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._builder = MessageBuilder(site, config.public_url)
        self._evidence = evidence
        self._client = httpx.Client(
            # Connect-time address check, as for webhooks (none behind a proxy: the proxy connects).
            transport=transport if transport is not None else checked_transport(limits=_LIMITS),
            follow_redirects=False,
            headers={"User-Agent": _user_agent()},
            limits=_LIMITS,
        )
        self._channels: dict[str, Channel] = {}
        for robot in config.robots:
            self._channels[robot.name] = RobotChannel(
                robot,
                self._client,
                clock=clock,
                spacing=MessageSpacing(robot.per_minute, per_second=robot.per_second, clock=spacing_clock),
            )
        for email in config.email:
            self._channels[email.name] = EmailChannel(email)
        every: list[RobotConfig | EmailConfig] = [*config.robots, *config.email]
        self._specs = [_spec(channel, _cameras(channel, site)) for channel in every]

    @classmethod
    def from_config(
        cls,
        config: AnjianConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        spacing_clock: Callable[[], float] = time.monotonic,
    ) -> AlertChannels:
        """The channels of a whole site config (snapshots read from its storage folder).

        Example:
            >>> channels = AlertChannels.from_config(config)
            >>> store.subscriptions.sync_config(config.webhooks, channels=channels.subscription_specs())
            >>> dispatcher = WebhookDispatcher(store, channels=channels)  # its stop() closes them
        """
        return cls(
            config.channels,
            config.site,
            evidence=EvidenceStore(config.storage.dir),
            transport=transport,
            clock=clock,
            spacing_clock=spacing_clock,
        )

    @property
    def names(self) -> list[str]:
        """The channels' names, robots first, in config order."""
        return list(self._channels)

    def subscription_specs(self) -> list[SubscriptionSpec]:
        """The subscription rows the channels need, for ``SubscriptionStore.sync_config``."""
        return list(self._specs)

    def send(self, subscription: Subscription, delivery: WebhookDelivery) -> SendOutcome:
        """Render a claimed delivery for its channel and send it once; never raises.

        A channel no longer in the config fails the attempt (the row is retried until its
        window ends, so a config fixed in time still gets it). So does any error while the
        message is built or sent: it is that delivery's failed attempt, recorded on its row
        and retried or dead-lettered by its policy, and the dispatcher goes on with the
        others (an exception here would leave the row unrecorded and claimed first again,
        blocking its batch for ever).
        """
        name = channel_name(subscription.url)
        channel = None if name is None else self._channels.get(name)
        if channel is None:
            return SendOutcome(None, f"no channel {name!r} is configured in this process")
        try:
            message = self._builder.build(delivery.payload, idempotency_key=delivery.idempotency_key)
        except ValidationError as exc:
            return SendOutcome(
                None, f"stored payload is not an event announcement: {exc.error_count()} error(s)"
            )
        except Exception as exc:  # noqa: BLE001 - one message that cannot be built fails alone
            return _unexpected(name, delivery, "building", exc)
        try:
            return channel.send(message, self._snapshot(message))
        except Exception as exc:  # noqa: BLE001 - one message that cannot be sent fails alone
            return _unexpected(name, delivery, "sending", exc)

    def close(self) -> None:
        """Close the robots' HTTP client."""
        self._client.close()

    def _snapshot(self, message: AlertMessage) -> bytes | None:
        """The event's snapshot JPEG, when it has one and it can be read."""
        if self._evidence is None or not message.has_snapshot:
            return None
        try:
            return self._evidence.read(EvidenceStore.snapshot_relpath(message.camera_id, message.event_id))
        except EvidenceError as exc:
            logger.warning("snapshot of event %s cannot be attached: %s", message.event_id, exc)
            return None


def _unexpected(name: str | None, delivery: WebhookDelivery, step: str, exc: Exception) -> SendOutcome:
    """The failed attempt of a delivery whose message raised ``exc`` while ``step`` (masked: no traceback)."""
    reason = mask_credentials(f"{type(exc).__name__}: {exc}")[:_ERROR_CHARS]
    logger.warning(
        "channel %s: %s the message of delivery %d (event %s) failed: %s",
        name,
        step,
        delivery.id,
        delivery.event_id,
        reason,
    )
    return SendOutcome(None, f"{step} the message failed: {reason}")


def _cameras(channel: RobotConfig | EmailConfig, site: SiteConfig) -> tuple[str, ...]:
    """The camera filter of a channel: its cameras and those of its workshops (empty: all)."""
    if not channel.workshop_ids:
        return tuple(channel.camera_ids)
    workshops = {w.id: w for w in site.workshops}
    cameras = list(channel.camera_ids)
    for workshop_id in channel.workshop_ids:
        workshop = workshops.get(workshop_id)
        if workshop is None:
            raise ValueError(f"channel {channel.name}: workshop {workshop_id!r} is not in the site")
        if not workshop.cameras:
            raise ValueError(f"channel {channel.name}: workshop {workshop_id!r} has no cameras")
        cameras += [c.id for c in workshop.cameras if c.id not in cameras]
    return tuple(cameras)


def _spec(channel: RobotConfig | EmailConfig, cameras: tuple[str, ...]) -> SubscriptionSpec:
    """The subscription row of one channel."""
    kind = channel.kind if isinstance(channel, RobotConfig) else "email"
    return copy_fields(
        SubscriptionSpec,
        channel,
        url=channel_address(channel.name, [str(c) for c in channel.colours]),
        secret=None,
        description=f"{kind} channel from the site config",
        site_ids=(),
        camera_ids=cameras,
    )
