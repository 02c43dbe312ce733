"""The hub's YAML: its NATS server, its database, the plants it supervises and their groups.

Example::

    hub:
      name: City emergency-management bureau
      timezone: Asia/Shanghai
    bus:
      url: nats://127.0.0.1:4222
    storage:
      dir: /var/lib/anjian-hub
      database_url: postgresql+psycopg://anjian@127.0.0.1/anjian_hub
    plants:
      - id: lab-3
        name: Polishing workshop, Lab 3
        group: dust
      - id: cold-1
        name: Cold store 1
        group: ammonia
"""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from anjian.cameras.fields import DurationS, ShortDurationS
from anjian.pipeline.config import check_time_zone
from anjian.service.bus.config import BusId, NatsUrl, SecretKey, SigningKey
from anjian.service.bus.subjects import plant_domain
from anjian.service.config import ServerConfig, SlaConfig, StorageConfig, read_yaml_mapping
from anjian.service.errors import ConfigError

__all__ = ["HubBusConfig", "HubConfig", "HubSiteConfig", "PlantConfig", "load_hub_config"]


class _HubModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlantConfig(_HubModel):
    """One supervised plant."""

    id: BusId = Field(..., description="The plant's bus id.")
    name: str = Field("", max_length=200, description="Shown on the hub's view.")
    group: str = Field(
        "",
        max_length=64,
        pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]*)?$",
        description="A named group of plants (a district, a company): hub tokens may be limited to one.",
    )
    domain: BusId | None = Field(
        None, description="JetStream domain of the plant's leaf node; default plant-<id>."
    )

    leaf_password: SecretKey | None = Field(
        None,
        description="The password this plant's leaf node presents to the hub's nats-server (user: the plant "
        "id); set for every plant or none (`anjian hub nats-config --config` writes them).",
    )

    signing_key: SigningKey | None = Field(
        None,
        description="The key this plant signs its messages with (its bus.signing_key); the hub sets a message "
        "of this plant without a valid signature aside (stream HUB_UNSIGNED, bus.retention_days; a hub started "
        "with the right key stores it), and signs its remarks to it.",
    )

    @property
    def jetstream_domain(self) -> str:
        """The plant's JetStream domain."""
        return self.domain or plant_domain(self.id)


class HubSiteConfig(_HubModel):
    """The supervising office."""

    name: str = Field("anjian hub", max_length=200, description="Shown on the hub's view.")
    timezone: str | None = Field(
        None,
        description="IANA time zone the hub's view shows times in (the supervising office's, e.g. "
        "Asia/Shanghai); unset: each browser's own. The view names the zone either way.",
    )
    silent_after_s: DurationS = Field(
        120.0,
        description="A plant not heard from for this long is shown silent (it reports its cameras' and "
        "sensors' health every bus.health_interval_s, 30 s by default).",
    )
    max_clip_bytes: int = Field(
        200_000_000,
        ge=1,
        le=10_000_000_000,
        description="A larger clip is refused (413) rather than fetched from its plant.",
    )
    clip_timeout_s: float = Field(
        15.0, gt=0, le=600, description="How long each part of a clip may take to come from its plant."
    )
    clip_fetches_per_plant: int = Field(
        2,
        ge=1,
        le=32,
        description="Clips fetched from one plant at once (its uplink, often slow, also carries its alerts); "
        "a request for another waits up to clip_timeout_s for its turn, then gets 503 with Retry-After.",
    )
    max_clip_fetches: int = Field(
        16,
        ge=1,
        le=256,
        description="Requests fetching clips (or waiting for their plant's turn) at once, from all plants, each "
        "in a thread of the hub's own, never one of the API's; one more gets 503 with Retry-After at once.",
    )
    clip_part_bytes: int = Field(
        512 * 1024,
        ge=4096,
        le=64 * 1024 * 1024,
        description="Bytes of a clip per bus message (lowered to what the nats-server's max_payload carries).",
    )
    clip_cache_bytes: int = Field(
        2_000_000_000,
        ge=0,
        description="Clips fetched are kept in {storage.dir}/clips up to this total; the least recently "
        "served go first. 0: keep none (each request fetches again).",
    )
    response_window_days: float = Field(
        30.0,
        gt=0,
        le=3650,
        description="The median times to acknowledge and to resolve are over the incidents raised in the last "
        "this many days (at most each plant's latest 1,000), so the overview costs the same after years.",
    )
    keep_closed_days: float = Field(
        90.0,
        ge=1,
        le=36500,
        description="Incidents resolved, false alarms and closed ones, with their snapshots and audit trails, are "
        "deleted this long after the hub last heard of them (checked every hour); open ones are never deleted.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str | None) -> str | None:
        return check_time_zone(value)

    @model_validator(mode="after")
    def _window_within_keeping(self) -> HubSiteConfig:
        if self.response_window_days > self.keep_closed_days:
            raise ValueError(
                f"response_window_days ({self.response_window_days:g}) is longer than keep_closed_days "
                f"({self.keep_closed_days:g}): the incidents it would cover are deleted before"
            )
        return self


class HubBusConfig(_HubModel):
    """The hub's own nats-server (which the plants' leaf nodes connect to)."""

    url: NatsUrl = Field("nats://127.0.0.1:4222", description="The hub's own nats-server.")
    domain: BusId = Field("hub", description="The hub's JetStream domain (the plants' bus.hub_domain).")
    fetch_batch: int = Field(256, ge=1, le=5000, description="Messages taken per database transaction.")
    ack_wait_s: ShortDurationS = Field(30.0, description="Redelivery delay of a message not acked.")
    retention_days: float = Field(
        14.0,
        gt=0,
        le=3650,
        description="How long the hub's events stream (and its set-aside one) keeps messages: the longest stop "
        "of the hub service it bridges (what it stored is in its database; the stream is only the way in). "
        "Remarks to the plants: remark_retention_days.",
    )
    remark_retention_days: float = Field(
        30.0,
        ge=1,
        le=3650,
        description="How long the hub's commands stream keeps a supervisor's remark for a plant that is offline "
        "(remarks are small). A remark its plant has not confirmed is published again every half of this, so "
        "a plant shut down for longer still gets it when it returns (plants older than the hub never confirm: "
        "theirs are published again the same way, and written once).",
    )
    max_stream_bytes: int = Field(
        20_000_000_000,
        ge=100_000_000,
        le=10**15,
        description="The most the hub's events stream holds on the nats-server's disk (snapshots included); "
        "past it the oldest messages go first, normally ones the hub has stored. A hub service stopped "
        "while more than this comes in loses the oldest it had not stored. Messages set aside as unsigned "
        "get a tenth of it.",
    )


class HubConfig(_HubModel):
    """Everything one hub needs."""

    hub: HubSiteConfig = Field(default_factory=HubSiteConfig)
    bus: HubBusConfig = Field(default_factory=HubBusConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    sla: SlaConfig = Field(default_factory=SlaConfig, description="Acknowledge deadlines: what is overdue.")
    plants: list[PlantConfig] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique_plants(self) -> HubConfig:
        seen: set[str] = set()
        domains: set[str] = set()
        for plant in self.plants:
            if plant.id in seen:
                raise ValueError(f"plant id {plant.id!r} appears twice")
            if plant.jetstream_domain in domains or plant.jetstream_domain == self.bus.domain:
                raise ValueError(f"plant {plant.id}: JetStream domain {plant.jetstream_domain!r} is taken")
            seen.add(plant.id)
            domains.add(plant.jetstream_domain)
        with_password = {plant.leaf_password is not None for plant in self.plants}
        if len(with_password) > 1:
            raise ValueError(
                "set leaf_password for every plant or for none (the hub accepts leaf nodes one way)"
            )
        return self

    def leaf_users(self) -> dict[str, str]:
        """Plant id to leaf password, for the hub's nats-server (empty when the plants have none)."""
        return {p.id: p.leaf_password.get_secret_value() for p in self.plants if p.leaf_password is not None}

    def plant(self, plant_id: str) -> PlantConfig | None:
        """The plant with this id, or ``None``."""
        return next((p for p in self.plants if p.id == plant_id), None)

    @property
    def groups(self) -> list[str]:
        """The named groups, sorted."""
        return sorted({p.group for p in self.plants if p.group})


def load_hub_config(path: str | Path) -> HubConfig:
    """Read and validate a hub YAML (a relative ``storage.dir`` resolves against the file's folder).

    Raises:
        ConfigError: The file is missing, is not YAML or breaks the schema; each error with its field path.
    """
    path = Path(path)
    raw = read_yaml_mapping(path, "hub config")
    storage = raw.get("storage")
    if (
        isinstance(storage, dict)
        and isinstance(storage.get("dir"), str)
        and not Path(storage["dir"]).is_absolute()
    ):
        storage["dir"] = str((path.resolve().parent / storage["dir"]).resolve())
    try:
        return HubConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {exc.error_count()} error(s) in the hub config"]
        for item in exc.errors():
            location = ".".join(str(part) for part in item["loc"]) or "(top level)"
            lines.append(f"  {location}: {item['msg']}")
        raise ConfigError("\n".join(lines)) from None
