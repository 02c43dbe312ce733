"""Alert channels besides webhooks: DingTalk, WeCom and Feishu group robots, and e-mail.

Every channel is a row of the webhook subscriptions table (``channel:<name>``), so its
messages go through the same durable outbox as webhooks: enqueued in the event's
transaction, claimed, retried with backoff, dead-lettered, counted in ``/metrics``.

The names below load on first use (PEP 562): the outbox imports ``address`` and the
site config imports ``config`` without pulling in HTTP and SMTP clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anjian.service.channels.address import admits, channel_address, channel_name, is_channel_address
    from anjian.service.channels.config import ChannelsConfig, EmailConfig, RobotConfig
    from anjian.service.channels.mailer import EmailChannel
    from anjian.service.channels.message import AlertMessage, MessageBuilder
    from anjian.service.channels.outcome import SendOutcome
    from anjian.service.channels.registry import AlertChannels, Channel
    from anjian.service.channels.robots import RobotChannel
    from anjian.service.channels.spacing import MessageSpacing

_EXPORTS = {
    "admits": "anjian.service.channels.address",
    "channel_address": "anjian.service.channels.address",
    "channel_name": "anjian.service.channels.address",
    "is_channel_address": "anjian.service.channels.address",
    "ChannelsConfig": "anjian.service.channels.config",
    "EmailConfig": "anjian.service.channels.config",
    "RobotConfig": "anjian.service.channels.config",
    "EmailChannel": "anjian.service.channels.mailer",
    "AlertMessage": "anjian.service.channels.message",
    "MessageBuilder": "anjian.service.channels.message",
    "SendOutcome": "anjian.service.channels.outcome",
    "AlertChannels": "anjian.service.channels.registry",
    "Channel": "anjian.service.channels.registry",
    "RobotChannel": "anjian.service.channels.robots",
    "MessageSpacing": "anjian.service.channels.spacing",
}

__all__ = [
    "AlertChannels",
    "AlertMessage",
    "Channel",
    "ChannelsConfig",
    "EmailChannel",
    "EmailConfig",
    "MessageBuilder",
    "MessageSpacing",
    "RobotChannel",
    "RobotConfig",
    "SendOutcome",
    "admits",
    "channel_address",
    "channel_name",
    "is_channel_address",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
