"""The ``bus:`` section of a plant's site YAML: where its NATS leaf node is and how the service uses it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from anjian.service.bus.subjects import BUS_ID_PATTERN

__all__ = ["BusConfig"]


class BusConfig(BaseModel):
    """How a plant's service reaches the plant's NATS server (a leaf node of the hub, with its own JetStream domain).

    Example (site YAML)::

        bus:
          url: nats://127.0.0.1:4222
          plant_domain: plant-lab-3
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        "nats://127.0.0.1:4222",
        pattern=r"^(nats|tls)://[^\s]+$",
        description="The plant's own nats-server (the leaf node), normally on this machine.",
    )
    plant_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=BUS_ID_PATTERN,
        description="The plant's id on the bus; default the site id (which then must not contain a dot).",
    )
    plant_domain: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=BUS_ID_PATTERN,
        description="JetStream domain of the plant's nats-server; default plant-<plant id>.",
    )
    hub_domain: str = Field(
        "hub", min_length=1, max_length=64, pattern=BUS_ID_PATTERN, description="JetStream domain of the hub."
    )
    publish_timeout_s: float = Field(
        5.0, gt=0, le=60, description="How long one publish waits for the plant's JetStream to store it."
    )
    health_interval_s: float = Field(
        30.0, gt=0, le=3600, description="How often the cameras' health is reported to the hub."
    )
    max_snapshot_bytes: int = Field(
        4_000_000,
        ge=0,
        le=7_000_000,
        description="Largest snapshot sent with an event (bigger ones stay on the plant); 0 sends none.",
    )
    signing_key: SecretStr | None = Field(
        None,
        min_length=16,
        max_length=200,
        description="The key this plant and the hub share (the hub's plants[].signing_key): every message "
        "between them is signed with it, so no other plant can speak for this one.",
    )
    retention_days: float = Field(
        30.0,
        gt=0,
        le=3650,
        description="How long the plant's stream keeps messages: the longest hub outage it bridges.",
    )
