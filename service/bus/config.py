"""The ``bus:`` section of a plant's site YAML, and the field types it shares with the hub's YAML.

``BusId`` (a plant id or JetStream domain), ``NatsUrl`` and ``SigningKey`` are declared once
here; the hub's config (``anjian.service.hub.config``) uses the same ones, so both sides of a
link validate a value the same way.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from anjian.cameras.url import mask_url, network_url_problem
from anjian.service.bus.subjects import BUS_ID_PATTERN

__all__ = ["MAX_SNAPSHOT_BYTES", "BusConfig", "BusId", "NatsUrl", "SecretKey", "SigningKey"]

MAX_SNAPSHOT_BYTES: Final = 6_000_000
"""The largest ``bus.max_snapshot_bytes``: base64 makes a snapshot a third larger (8,000,000 bytes),
which with its event's JSON still fits the 8 MiB ``max_payload`` that ``anjian hub nats-config`` writes."""

BusId = Annotated[str, Field(min_length=1, max_length=64, pattern=BUS_ID_PATTERN)]
"""A plant id or JetStream domain on the bus (one subject token: no dots)."""


def _nats_url(url: str) -> str:
    """``url`` unchanged when it is ``nats://host[:port]`` or ``tls://``; else the problem, the URL masked."""
    problem = network_url_problem(url, ("nats", "tls"), what="a NATS server")
    if problem is not None:
        raise ValueError(f"{mask_url(url)!r}: {problem}")
    return url


NatsUrl = Annotated[str, Field(max_length=2048), AfterValidator(_nats_url)]
"""A NATS client URL, ``nats://host:port`` (or ``tls://``): a port out of range or a host with a space is refused."""

_KEY_CHARS: Final = (16, 200)


def _key_length(value: object) -> object:
    """A key or password of 16-200 characters, said in characters (pydantic's own message counts "items")."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(text, str):
        low, high = _KEY_CHARS
        if len(text) < low:
            raise PydanticCustomError(
                "too_short",
                "must be at least {min_length} characters, got {actual_length} (make one with `openssl rand "
                "-hex 16`)",
                {"min_length": low, "actual_length": len(text)},
            )
        if len(text) > high:
            raise PydanticCustomError(
                "too_long",
                "must be at most {max_length} characters, got {actual_length}",
                {"max_length": high, "actual_length": len(text)},
            )
    return value


SecretKey = Annotated[
    SecretStr, Field(min_length=_KEY_CHARS[0], max_length=_KEY_CHARS[1]), BeforeValidator(_key_length)
]
"""A shared secret of 16-200 characters (a signing key, a leaf password); too short or long is said in characters."""

SigningKey = SecretKey
"""The key a plant and the hub sign their messages with (``anjian.service.bus.signing``)."""


class BusConfig(BaseModel):
    """How a plant's service reaches the plant's NATS server (a leaf node of the hub, with its own JetStream domain).

    Example (site YAML)::

        bus:
          url: nats://127.0.0.1:4222
          plant_domain: plant-lab-3
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: NatsUrl = Field(
        "nats://127.0.0.1:4222",
        description="The plant's own nats-server (the leaf node), normally on this machine.",
    )
    plant_id: BusId | None = Field(
        None,
        description="The plant's id on the bus; default the site id (which then must not contain a dot).",
    )
    plant_domain: BusId | None = Field(
        None, description="JetStream domain of the plant's nats-server; default plant-<plant id>."
    )
    hub_domain: BusId = Field("hub", description="JetStream domain of the hub.")
    publish_timeout_s: float = Field(
        5.0, gt=0, le=60, description="How long one publish waits for the plant's JetStream to store it."
    )
    health_interval_s: float = Field(
        30.0, gt=0, le=3600, description="How often the cameras' and sensors' health is reported to the hub."
    )
    max_snapshot_bytes: int = Field(
        4_000_000,
        ge=0,
        description=f"Largest snapshot sent with an event (bigger ones stay on the plant); 0 sends none; at most "
        f"{MAX_SNAPSHOT_BYTES}. An event whose message would still be over the nats-server's max_payload "
        "(1 MiB unless configured) goes without its snapshot.",
    )
    signing_key: SigningKey | None = Field(
        None,
        description="The key this plant and the hub share (the hub's plants[].signing_key): every message "
        "between them is signed with it, so no other plant can speak for this one.",
    )
    retention_days: float = Field(
        30.0,
        gt=0,
        le=3650,
        description="How long the plant's stream keeps messages: the longest hub outage it bridges.",
    )

    @field_validator("max_snapshot_bytes")
    @classmethod
    def _check_max_snapshot_bytes(cls, value: int) -> int:
        """A snapshot must fit one bus message (base64, inside its event's JSON)."""
        if value > MAX_SNAPSHOT_BYTES:
            raise ValueError(
                f"must be at most {MAX_SNAPSHOT_BYTES} bytes, got {value}: a snapshot travels base64-encoded "
                "(a third larger) inside its event, and the message must fit the nats-server's max_payload "
                "(8 MiB as `anjian hub nats-config` writes it)"
            )
        return value
