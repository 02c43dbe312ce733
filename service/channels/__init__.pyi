"""Names of ``anjian.service.channels``, loaded on first use (read by lazy_loader at run time, by type checkers as a stub)."""

from .address import admits, channel_address, channel_name, is_channel_address
from .config import ChannelsConfig, EmailConfig, RobotConfig
from .mailer import EmailChannel
from .message import AlertMessage, MessageBuilder
from .outcome import SendOutcome
from .registry import AlertChannels, Channel
from .robots import RobotChannel
from .spacing import MessageSpacing

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
