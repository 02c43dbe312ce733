"""The site YAML's ``channels:`` section: group robots (DingTalk, WeCom, Feishu) and e-mail.

Each channel has a ``name`` (unique across robots and e-mail), the same event filters
as a webhook (``kinds``, ``behaviours``, ``camera_ids``) plus ``colours``, and the same
retry window. Robot URLs carry the robot's credential (DingTalk ``access_token``, WeCom
``key``, Feishu hook id) and are kept in ``SecretStr`` like secrets and SMTP passwords:
nothing here is ever logged or echoed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from anjian.cameras.fields import HostName, TcpPort
from anjian.cameras.url import mask_url, network_url_problem
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.service.delivery_policy import AttemptTimeoutS, MaxAttempts, RetryForS
from anjian.service.lifecycle import check_event_kinds
from anjian.service.one_line_text import OneLineText
from anjian.service.webhook_url import MAX_WEBHOOK_URL_CHARS, check_webhook_url

__all__ = [
    "ROBOT_KINDS",
    "ChannelsConfig",
    "EmailConfig",
    "RobotConfig",
    "RobotKind",
]

RobotKind = Literal["dingtalk", "wecom", "feishu"]
ROBOT_KINDS: tuple[RobotKind, ...] = ("dingtalk", "wecom", "feishu")

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_DEFAULT_PER_MINUTE: dict[str, int] = {
    "dingtalk": 20,
    "wecom": 20,
    "feishu": 100,
}  # the vendors' documented caps
_PER_SECOND: dict[str, int] = {"feishu": 5}  # Feishu custom robots also refuse more than 5 a second


class _ChannelModel(BaseModel):
    """Base of the channel config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _FilteredChannel(_ChannelModel):
    """What every channel shares: its name, the event filters and the retry window."""

    name: str = Field(
        ..., min_length=1, max_length=64, pattern=_NAME_PATTERN, description="Unique among the channels."
    )
    colours: list[RiskLevel] = Field(
        default_factory=list, description='Only events of these colours, e.g. ["red", "orange"]; empty: all.'
    )
    behaviours: list[Behaviour] = Field(
        default_factory=list, description="Only these behaviours; empty: all."
    )
    kinds: list[str] = Field(
        default_factory=lambda: ["event.created", "event.escalated"],
        description="Event kinds sent; default: new alerts and escalations (a group chat is not an audit log).",
    )
    camera_ids: list[str] = Field(default_factory=list, description="Only these cameras; empty: all.")
    workshop_ids: list[str] = Field(
        default_factory=list, description="Only the cameras of these workshops; empty: all."
    )
    timeout_s: AttemptTimeoutS = 10.0
    retry_for_s: RetryForS = 86_400.0
    max_attempts: MaxAttempts = None

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        return check_event_kinds(kinds)


class RobotConfig(_FilteredChannel):
    """A group robot's custom webhook: DingTalk (钉钉), WeCom (企业微信) or Feishu (飞书)."""

    kind: RobotKind = Field(..., description="dingtalk, wecom or feishu.")
    url: SecretStr = Field(
        ...,
        description=(
            "The robot's webhook URL as the group settings show it (it holds the robot's token: kept secret), "
            "e.g. https://oapi.dingtalk.com/robot/send?access_token=..."
        ),
    )
    secret: SecretStr | None = Field(
        None,
        description=(
            "Signing secret (加签): DingTalk's `SEC...` string or Feishu's; WeCom robots have none. "
            "Set it when the robot's security setting signs."
        ),
    )
    max_per_minute: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Messages a minute at most, spaced by anjian; default the vendor's cap (DingTalk and "
        "WeCom 20, Feishu 100; Feishu also 5 a second, always).",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: SecretStr) -> SecretStr:
        value = url.get_secret_value()
        if len(value) > MAX_WEBHOOK_URL_CHARS:
            raise ValueError("expected an http(s) URL of at most 2048 characters (the value is not shown)")
        try:
            check_webhook_url(value)
        except ValueError as exc:  # the reason names the scheme, host or port, never the token in the query
            raise ValueError(f"{exc} (the URL is not shown: it holds the robot's token)") from None
        return url

    @model_validator(mode="after")
    def _secret_fits_kind(self) -> RobotConfig:
        if self.kind == "wecom" and self.secret is not None:
            raise ValueError("WeCom robots do not sign: remove `secret` (the URL's key is the credential)")
        return self

    @property
    def per_minute(self) -> int:
        """Messages a minute this robot may send."""
        return self.max_per_minute or _DEFAULT_PER_MINUTE[self.kind]

    @property
    def per_second(self) -> int | None:
        """Messages a second this robot may send (the vendor's cap), ``None``: no cap of its own."""
        return _PER_SECOND.get(self.kind)


class EmailConfig(_FilteredChannel):
    """E-mail through an SMTP server, to a list of addresses (HTML and text, the snapshot attached)."""

    host: HostName = Field(..., description="SMTP server host name or address.")
    port: TcpPort = Field(587, description="SMTP port (587 submission, 465 TLS, 25 relay).")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="starttls: upgrade the connection (587); tls: TLS from the start (465); none: plain.",
    )
    ca_file: str | None = Field(
        None, description="PEM file of the CA that signed the server's certificate (a plant's own CA)."
    )
    username: str | None = Field(None, max_length=320, description="SMTP login; none: no AUTH.")
    password: SecretStr | None = Field(None, description="SMTP password (kept secret).")
    sender: str = Field(
        ..., min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$", description="From address."
    )
    to: list[str] = Field(..., min_length=1, max_length=100, description="Recipient addresses.")
    is_snapshot_attached: bool = Field(True, description="Attach the snapshot JPEG (else only link to it).")
    subject_prefix: OneLineText = Field(
        "[安监 anjian]", max_length=64, description="Start of every subject line (one line)."
    )

    @field_validator("to")
    @classmethod
    def _addresses(cls, to: list[str]) -> list[str]:
        bad = [a for a in to if "@" not in a or any(c.isspace() for c in a) or len(a) > 320]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return to

    @model_validator(mode="after")
    def _login_pairs(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both `username` and `password` for SMTP AUTH, or neither")
        if self.username is not None and self.security == "none":
            raise ValueError(
                "SMTP AUTH over a plain connection would send the password in clear: use starttls or tls"
            )
        return self


class ChannelsConfig(_ChannelModel):
    """Where else than webhooks alerts go: group robots and e-mail, all through the webhook outbox."""

    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        description="The service's address as the control room reaches it (e.g. https://anjian.plant.cn): "
        "messages link to the alert's evidence under it; none: no link.",
    )
    robots: list[RobotConfig] = Field(default_factory=list, description="DingTalk, WeCom and Feishu robots.")
    email: list[EmailConfig] = Field(default_factory=list, description="E-mail recipients' lists.")

    @field_validator("public_url")
    @classmethod
    def _reachable_address(cls, url: str | None) -> str | None:
        """A port past 65535 would have put a dead link into every message."""
        if url is None:
            return url
        problem = network_url_problem(url, ("http", "https"), what="a web address")
        if problem is not None:
            raise ValueError(f"{mask_url(url)!r}: {problem}")
        return url

    @model_validator(mode="after")
    def _unique_names(self) -> ChannelsConfig:
        seen: set[str] = set()
        for channel in [*self.robots, *self.email]:
            if channel.name in seen:
                raise ValueError(f"channel name {channel.name!r} appears twice")
            seen.add(channel.name)
        return self
