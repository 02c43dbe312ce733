"""The site YAML: one file composing every package's config section, validated once at startup."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from anjian.cameras.fields import ShortDurationS, TcpPort
from anjian.cameras.url import camera_url_problem, mask_credentials, mask_url
from anjian.models.config import DetectorConfig
from anjian.pipeline.config import CameraPipelineConfig, check_time_zone
from anjian.pipeline.event import Behaviour
from anjian.pipeline.sensors.config import ReadingHistoryConfig, SensorConfig, SensorSourcesConfig
from anjian.service.bus.config import BusConfig
from anjian.service.bus.subjects import check_bus_id
from anjian.service.channels.config import ChannelsConfig
from anjian.service.delivery_policy import AttemptTimeoutS, MaxAttempts, RetryForS
from anjian.service.errors import ConfigError
from anjian.service.lifecycle import check_event_kinds
from anjian.service.node_config import NodesConfig, check_node_cameras
from anjian.service.one_line_text import OneLineText, check_one_line_names
from anjian.service.signing import SigningSecret
from anjian.service.webhook_url import WebhookUrl

__all__ = [
    "AnjianConfig",
    "ApiLimitsConfig",
    "ServerConfig",
    "SiteConfig",
    "SlaConfig",
    "StorageConfig",
    "WebhookConfig",
    "WorkshopConfig",
    "load_config",
    "read_yaml_mapping",
]


_YAML_KEY_LINE = re.compile(
    r"^(?P<prefix>[\s-]*[\"']?(?P<key>[A-Za-z_][A-Za-z0-9_]*)[\"']?\s*:\s*)(?P<value>.*)$"
)
_SECRET_KEYS = frozenset({"secret", "secrets", "password", "passwd", "pwd", "token", "api_key"})
_HOOK_PATH = re.compile(r"(?P<prefix>/hook/)[^/?#\s'\"]+")  # a Feishu robot's token is its URL's last segment
_SECRET_VALUE = re.compile(
    r"(?P<prefix>[\"']?(?:"
    + "|".join(sorted(_SECRET_KEYS))
    + r")[\"']?\s*:\s*)(?:\"[^\"]*\"?|'[^']*'?|[^,}\]]*)",
    re.IGNORECASE,
)
"""A secret key's value anywhere on a line (in a flow mapping too), quoted or plain, to the next , } or ]."""
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s\"']*(?:[ ][^/@\"']*)?@")
"""A URL's user:password@ (a password holding a space included)."""
_TEMPLATE_PLACEHOLDER = re.compile(r"\{(?:video:[^{}]*|storage)\}")
"""What the demo template (``service/demo/site.yaml``) leaves for ``anjian demo`` to fill in."""
_YAML_LINE_START = re.compile(r"^\s*(?:-\s*|(?:\"[^\"]*\"|'[^']*'|[A-Za-z_][A-Za-z0-9_-]*)\s*:|#|$|[\[{])")
"""A line that starts a key, a list item, a comment or a flow collection (anything else may continue a quoted value)."""


class _ServiceModel(BaseModel):
    """Base of the service config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkshopConfig(_ServiceModel):
    """A workshop (a polishing hall, a freezing room, a duty room) and its cameras."""

    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: OneLineText = Field(
        "", max_length=200, description="Shown in the control room and alert messages; one line."
    )
    kind: Literal["polishing", "freezing", "other"] = Field("other", description="Kind of workshop.")
    cameras: list[CameraPipelineConfig] = Field(default_factory=list)
    sensors: list[SensorConfig] = Field(
        default_factory=list, description="Process sensors (gas, dust, temperature, level, pressure)."
    )

    @model_validator(mode="after")
    def _one_line_names(self) -> WorkshopConfig:
        """Camera, zone and sensor names go into e-mail subjects and card titles: refuse line breaks."""
        names: list[tuple[str, str]] = []
        for i, camera in enumerate(self.cameras):
            names.append((f"cameras[{i}].name (camera {camera.id!r})", camera.name))
            names += [
                (f"cameras[{i}].zones[{j}].name (zone {zone.id!r})", zone.name)
                for j, zone in enumerate(camera.zones)
            ]
        names += [(f"sensors[{i}].name (sensor {s.id!r})", s.name) for i, s in enumerate(self.sensors)]
        check_one_line_names(f"workshop {self.id!r}", names)
        return self


class SiteConfig(_ServiceModel):
    """One plant."""

    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: OneLineText = Field(
        "", max_length=200, description="Shown in the control room and alert messages; one line."
    )
    timezone: str = Field("UTC", description="IANA time zone of the site, for schedules.")
    language: Literal["en", "zh-CN"] = Field(
        "en",
        description="Language of the texts anjian writes into events (their messages), webhooks and robots.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        return check_time_zone(value) or "UTC"

    workshops: list[WorkshopConfig] = Field(..., min_length=1)


class WebhookConfig(_ServiceModel):
    """A control-room endpoint that receives events (and their lifecycle changes) as signed JSON.

    Filters narrow what is sent: an empty list means "all".
    """

    url: WebhookUrl = Field(..., description="http(s) URL the events are POSTed to.")
    secret: SigningSecret | None = Field(
        None,
        description=(
            "Signing secret: `whsec_<base64>` (Standard Webhooks) or any string; several separated by "
            "spaces while rotating (every delivery is signed with each)."
        ),
    )
    timeout_s: AttemptTimeoutS = 5.0
    retry_for_s: RetryForS = 86_400.0
    max_attempts: MaxAttempts = None
    kinds: list[str] = Field(
        default_factory=list,
        description='Event kinds sent, e.g. ["event.created", "event.escalated"]; empty: all.',
    )
    site_ids: list[str] = Field(default_factory=list, description="Only these sites; empty: all.")
    camera_ids: list[str] = Field(default_factory=list, description="Only these cameras; empty: all.")
    behaviours: list[str] = Field(default_factory=list, description="Only these behaviours; empty: all.")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        return check_event_kinds(kinds)

    @field_validator("behaviours")
    @classmethod
    def _known_behaviours(cls, behaviours: list[str]) -> list[str]:
        known = [b.value for b in Behaviour]
        unknown = sorted(set(behaviours) - set(known))
        if unknown:
            raise ValueError(f"unknown behaviour(s) {unknown}; expected some of {known}")
        return behaviours


class StorageConfig(_ServiceModel):
    """Where events and evidence live."""

    dir: Path = Field(Path("data"), description="Folder for the database and evidence files.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL (e.g. postgresql+psycopg://user:pw@host/db); default: a SQLite file in `dir`.",
    )
    is_auto_migrate: bool = Field(
        True, description="Apply pending database migrations at start (else run `anjian db upgrade`)."
    )

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_url(cls, url: str | None) -> str | None:
        """A URL SQLAlchemy can parse, for a driver it knows; the message never shows the password."""
        if url is None:
            return url
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            parsed = make_url(url)
            parsed.get_dialect()
        except NoSuchModuleError:  # an ArgumentError too: caught first
            scheme = url.split("://", 1)[0]
            raise ValueError(f"no database driver {scheme!r} (postgresql+psycopg or sqlite)") from None
        except (ArgumentError, ValueError):  # ValueError: a port that is no number
            raise ValueError(
                "not a SQLAlchemy database URL (e.g. postgresql+psycopg://user:pw@host/db)"
            ) from None
        if parsed.port is not None and not 1 <= parsed.port <= 65535:  # else refused only at start
            raise ValueError("the port is out of range (1-65535)")
        return url

    keep_deliveries_days: float = Field(
        30.0,
        ge=1,
        le=3650,
        description="Webhook, robot and e-mail deliveries that were delivered or given up are deleted this long "
        "after (each revision of an ongoing incident is one per subscription, ~1 kB: months of them filled the "
        "database); pending ones are never deleted. Incidents and their audit trails are kept.",
    )
    keep_evidence_days: float | None = Field(
        None,
        ge=1,
        le=36_500,
        description="The snapshot and clip of an alert that is settled (resolved, false alarm or closed) are "
        "deleted once the alert has not changed for this long (no revision, action or escalation), oldest "
        "first, checked every hour; the alert then shows no snapshot or clip. Age is counted to the clock, but "
        "never past one day after the newest change stored, so a clock far ahead deletes nothing early. "
        "Evidence of an alert still open is never deleted, however old. Incidents and their audit trails are "
        "kept (`anjian dataset harvest` needs the snapshots: harvest before they go). null (the default): no "
        "deletion by age; evidence goes only when the disk needs the space (`reclaim_below_mb`).",
    )
    max_evidence_gb: float | None = Field(
        None,
        ge=0.001,  # 1 MB: a smaller cap rounds to 0 bytes
        le=1_000_000,
        description="Past this many GB of snapshots and clips, the evidence of the settled alerts that changed "
        "longest ago is deleted (checked every hour) until it fits, whatever `keep_evidence_days` says; evidence "
        "of open alerts is never deleted. null: no cap.",
    )
    min_free_mb: int = Field(
        500,
        ge=0,
        le=100 * 1024 * 1024,
        description="With less free space than this on the file system of `dir`, `/readyz` answers 503 and "
        "says why (logged once when it changes): below it the database soon cannot store alerts. "
        "`anjian_storage_free_bytes` in `/metrics` shows the free space. 0: no check.",
    )
    reclaim_below_mb: int | None = Field(
        None,
        ge=0,
        le=100 * 1024 * 1024,
        description="With less free space than this on the file system of `dir` (the reading `/readyz` uses), "
        "the evidence of the settled alerts that changed longest ago is deleted, oldest first (checked every "
        "hour), until this much is free again, like a video recorder overwriting its oldest footage; evidence of "
        "open alerts is never deleted. This is the only deletion by default. null (the default): twice "
        "`min_free_mb` (1000 MB), so space is freed before `/readyz` fails; 0: never.",
    )
    max_spool_mb: int = Field(
        1024,
        ge=1,
        le=1024 * 1024,
        description="A pipeline sending to a service (`anjian run --service-url`) keeps undelivered events in "
        "`dir`/spool, taking at most this much disk (refused ones in spool/rejected a quarter of it again); "
        "past half of it events are kept without their snapshots and clips, and at it the oldest undelivered "
        "are dropped to keep the newest (logged as an ERROR), so a service away for days cannot fill the disk. "
        "An event without pictures takes one 4 KiB block: 1024 MB is ~250,000 revisions after the pictures.",
    )


class ApiLimitsConfig(_ServiceModel):
    """What the HTTP API accepts: body sizes, failed token attempts, dashboard session lifetime."""

    max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest request body of every route but ingest (actions, notes, tokens, subscriptions).",
    )
    max_ingest_body_bytes: int = Field(
        64 * 1024 * 1024,
        ge=64 * 1024,
        le=2 * 1024 * 1024 * 1024,
        description="Largest event revision a pipeline may POST (snapshot and clip inline, base64).",
    )
    failed_auth_burst: int = Field(
        20, ge=1, le=10_000, description="Failed token attempts a client address may make in a row."
    )
    failed_auth_per_minute: float = Field(
        6.0, gt=0, le=60_000, description="Failed attempts a client address earns back per minute."
    )
    session_ttl_s: float = Field(
        12 * 3600.0, ge=60, le=7 * 86_400, description="Lifetime of a dashboard session cookie."
    )


class ServerConfig(_ServiceModel):
    """Where the HTTP API listens."""

    host: str = Field("127.0.0.1", description="Bind address.")
    port: TcpPort = Field(8000, description="TCP port; ANJIAN_PORT overrides it.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API; empty: CORS off."
    )
    limits: ApiLimitsConfig = Field(default_factory=ApiLimitsConfig)


class SlaConfig(_ServiceModel):
    """How long an alert may stay unacknowledged before it is escalated one colour and re-notified."""

    blue_s: float = Field(3600.0, gt=0, le=7 * 86_400, description="Acknowledge deadline of a blue alert.")
    yellow_s: float = Field(
        1800.0, gt=0, le=7 * 86_400, description="Acknowledge deadline of a yellow alert."
    )
    orange_s: float = Field(
        900.0, gt=0, le=7 * 86_400, description="Acknowledge deadline of an orange alert."
    )
    red_s: float = Field(300.0, gt=0, le=7 * 86_400, description="Acknowledge deadline of a red alert.")
    max_escalations: int = Field(
        3, ge=0, le=100, description="Escalations per alert at most (a red alert is re-notified, not raised)."
    )
    check_interval_s: ShortDurationS = Field(15.0, description="How often overdue alerts are looked for.")

    def deadline_s(self, severity: str) -> float:
        """The acknowledge deadline of a severity (``"red"`` … ``"blue"``)."""
        return float(getattr(self, f"{severity}_s"))


class AnjianConfig(_ServiceModel):
    """Everything one anjian deployment needs, as read from the site YAML."""

    site: SiteConfig
    model: DetectorConfig = Field(default_factory=DetectorConfig)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    channels: ChannelsConfig = Field(
        default_factory=ChannelsConfig,
        description="Group robots (DingTalk, WeCom, Feishu) and e-mail, delivered through the webhook outbox.",
    )
    storage: StorageConfig = Field(default_factory=StorageConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    sla: SlaConfig = Field(default_factory=SlaConfig)
    sensor_sources: SensorSourcesConfig = Field(
        default_factory=SensorSourcesConfig,
        description="MQTT brokers and Modbus TCP devices the workshops' sensors read through.",
    )
    sensor_history: ReadingHistoryConfig = Field(
        default_factory=ReadingHistoryConfig,
        description="How long sensor readings are kept raw, then downsampled, then deleted.",
    )
    bus: BusConfig | None = Field(
        None, description="The plant's NATS leaf node, to a supervising hub (`anjian hub`); none: no hub."
    )
    nodes: NodesConfig | None = Field(
        None,
        description="Several pipeline nodes sharing the plant's cameras, with leases on the bus (needs `bus:`); "
        "none: one node runs every camera.",
    )

    @model_validator(mode="after")
    def _nodes_known(self) -> AnjianConfig:
        if self.nodes is None:
            return self
        if self.bus is None:
            raise ValueError(
                "nodes: needs a bus: section (the camera leases live in the plant's NATS JetStream)"
            )
        check_node_cameras(self.nodes, (camera.id for _, camera in self.cameras()))
        return self

    @model_validator(mode="after")
    def _bus_plant_id(self) -> AnjianConfig:
        if self.bus is not None and self.bus.plant_id is None:
            check_bus_id("site id (set bus.plant_id to use another id on the bus)", self.site.id)
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> AnjianConfig:
        workshops: set[str] = set()
        cameras: set[str] = set()
        for workshop in self.site.workshops:
            if workshop.id in workshops:
                raise ValueError(f"workshop id {workshop.id!r} appears twice")
            workshops.add(workshop.id)
            for camera in workshop.cameras:
                if camera.id in cameras:
                    raise ValueError(f"camera id {camera.id!r} appears twice")
                cameras.add(camera.id)
        return self

    @model_validator(mode="after")
    def _sensors_known(self) -> AnjianConfig:
        cameras = {camera.id for _, camera in self.cameras()}
        brokers = {broker.id for broker in self.sensor_sources.mqtt}
        devices = {device.id for device in self.sensor_sources.modbus}
        seen: set[str] = set()
        for _, sensor in self.sensors():
            where = f"sensor {sensor.id!r}"
            if sensor.id in seen or sensor.id in cameras:
                raise ValueError(
                    f"{where}: the id is taken by another sensor or a camera (its events carry it)"
                )
            seen.add(sensor.id)
            source = sensor.source
            if source.kind == "mqtt" and source.broker not in brokers:
                raise ValueError(
                    f"{where}: MQTT broker {source.broker!r} is not in sensor_sources.mqtt {sorted(brokers)}"
                )
            if source.kind == "modbus" and source.device not in devices:
                raise ValueError(
                    f"{where}: Modbus device {source.device!r} is not in sensor_sources.modbus {sorted(devices)}"
                )
            unknown = sorted(set(sensor.camera_ids) - cameras)
            if unknown:
                raise ValueError(f"{where}: camera(s) {unknown} are not cameras of the site")
        return self

    @model_validator(mode="after")
    def _channel_workshops(self) -> AnjianConfig:
        workshops = {w.id: w for w in self.site.workshops}
        for channel in [*self.channels.robots, *self.channels.email]:
            for workshop_id in channel.workshop_ids:
                if workshop_id not in workshops:
                    raise ValueError(f"channel {channel.name}: workshop {workshop_id!r} is not in the site")
                if not workshops[workshop_id].cameras and not workshops[workshop_id].sensors:
                    raise ValueError(
                        f"channel {channel.name}: workshop {workshop_id!r} has no cameras or sensors"
                    )
        return self

    def cameras(self) -> list[tuple[WorkshopConfig, CameraPipelineConfig]]:
        """Every configured camera with its workshop, in file order."""
        return [(w, c) for w in self.site.workshops for c in w.cameras]

    def sensors(self) -> list[tuple[WorkshopConfig, SensorConfig]]:
        """Every configured sensor with its workshop, in file order."""
        return [(w, s) for w in self.site.workshops for s in w.sensors]


def _format_validation_error(path: Path, error: ValidationError) -> str:
    """One line per error: its field path and message (never its input, which may be a camera URL)."""
    lines = [f"{path}: {error.error_count()} error(s) in the site config"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {location}: {mask_credentials(item['msg'])}")
    return "\n".join(lines)


def _mask_yaml_line(line: str) -> str:
    """A YAML line fit to echo: every secret value, URL credential and robot hook token on it masked.

    A broken line may hold a whole flow mapping (``- {url: ..., secret: ...}``), so every
    ``key: value`` on it is looked at, not only the first. A line that is neither a key nor a
    list item may be the continuation of a quoted secret: it is not shown at all.
    """
    if not _YAML_LINE_START.match(line):
        return "(a continuation line, not shown)"
    match = _YAML_KEY_LINE.match(line)
    if match is not None and match.group("key").lower().endswith(
        "url"
    ):  # the whole value: a password may hold / or ': '
        value = match.group("value")
        quote = value[: len(value) - len(value.lstrip("\"'"))]
        line = match.group("prefix") + quote + mask_url(value[len(quote) :])
    line = _SECRET_VALUE.sub(lambda m: m.group("prefix") + "***", line)
    line = _USERINFO.sub(r"\g<scheme>***:***@", line)  # a password with spaces or quotes too
    line = _HOOK_PATH.sub(r"\g<prefix>***", line)
    return mask_credentials(line)


def _describe_yaml_error(path: Path, text: str, error: yaml.YAMLError) -> str:
    """Where the YAML breaks and why, echoing the offending lines with their credentials masked."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is None or problem is None:
        return f"{path}: not valid YAML: {mask_credentials(str(error))}"
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    why = str(problem)
    if context:
        at = f" (line {context_mark.line + 1})" if context_mark is not None else ""
        why = f"{context}{at}: {problem}"
    lines = text.splitlines()
    echoed: list[int] = []
    for line_index in (context_mark.line if context_mark is not None else -1, mark.line):
        if 0 <= line_index < len(lines) and lines[line_index].strip() and line_index not in echoed:
            echoed.append(line_index)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {why}"
    return "\n".join([where, *(f"    {_mask_yaml_line(lines[i]).strip()}" for i in echoed)])


def _unfilled_placeholders(node: object, where: str = "") -> list[str]:
    """``field.path holds '{video:cam-1}'`` for each demo-template placeholder left in a parsed site YAML.

    A site started from a copy of the demo template otherwise passed ``config check`` and ran
    with cameras reading a file named ``{video:cam-1}`` and the store in a folder ``{storage}``.
    """
    if isinstance(node, str):  # only the placeholder is quoted: the rest may be a URL's credentials
        found = _TEMPLATE_PLACEHOLDER.search(node)
        return [f"{where or 'the file'} holds {found.group(0)!r}"] if found else []
    if isinstance(node, dict):
        items: list[tuple[str, object]] = [(str(k), v) for k, v in node.items()]
    elif isinstance(node, list):
        items = [(str(i), v) for i, v in enumerate(node)]
    else:
        return []
    return [
        found for key, value in items for found in _unfilled_placeholders(value, f"{where}.{key}".lstrip("."))
    ]


def _list_in(node: object, key: str) -> list[Any]:
    """``node[key]`` when ``node`` is a mapping holding a list there, else none (the schema names what is wrong)."""
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, list) else []


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make file paths in the YAML relative to the YAML's own folder, as a reader expects.

    Raises:
        ConfigError: A path holds a NUL character (no file system takes one), naming its field.
    """

    def resolved(value: str, where: str) -> str:
        if "\x00" in value:
            raise ConfigError(f"{where}: holds a NUL character (U+0000), which no file path can")
        return str((base / value).resolve())

    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("path"), str):
        model_path = model["path"]
        if not model_path.startswith("builtin:") and not os.path.isabs(model_path):
            model["path"] = resolved(model_path, "model.path")
    if isinstance(model, dict) and isinstance(model.get("registry"), str):
        registry = os.path.expanduser(model["registry"])
        model["registry"] = registry if os.path.isabs(registry) else resolved(registry, "model.registry")
    storage = raw.get("storage")
    if (
        isinstance(storage, dict)
        and isinstance(storage.get("dir"), str)
        and not os.path.isabs(storage["dir"])
    ):
        storage["dir"] = resolved(storage["dir"], "storage.dir")
    site = raw.get("site")
    for w, workshop in enumerate(_list_in(site, "workshops")):
        for c, camera in enumerate(_list_in(workshop, "cameras")):
            url = camera.get("url") if isinstance(camera, dict) else None
            # a "name:..." URL is no path: it is left for the camera's own check to name
            if (
                isinstance(url, str)
                and "://" not in url
                and not os.path.isabs(url)
                and camera_url_problem(url) is None
            ):
                camera["url"] = resolved(url, f"site.workshops.{w}.cameras.{c}.url")
    return raw


class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no type hints
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps the last).

    A second ``cameras:`` under a workshop would otherwise drop the first list without a word.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    f"while reading the mapping that starts at line {node.start_mark.line + 1}",
                    first.start_mark,
                    f"the key {key!r} is given twice (again at line {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """The mapping a YAML config file holds (``what``: "site config", "hub config"), read as a person wrote it.

    UTF-8 only; a key given twice in one mapping is refused (PyYAML would keep the last, dropping
    the first without a word); a broken line is echoed with its secrets masked; lists or
    mappings nested too deep to read are refused rather than ending in a ``RecursionError``.

    Raises:
        ConfigError: The file cannot be read, is not UTF-8 or not YAML, or holds no mapping; the
            message starts with the file's path.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start : exc.start + 1]!r}); "
            "save the file as UTF-8"
        ) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no tags build objects
    except yaml.YAMLError as exc:
        raise ConfigError(_describe_yaml_error(path, text, exc)) from None
    except RecursionError:
        raise ConfigError(f"{path}: lists or mappings nested too deep to read (hundreds of levels)") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def load_config(path: str | Path) -> AnjianConfig:
    """Read and validate a site YAML.

    Args:
        path: The YAML file. Relative paths inside it (model, storage dir, file
            cameras) resolve against its folder.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The file is missing, is not YAML, or breaks the schema; the
            message names the file, each field path and what was expected.
    """
    path = Path(path)
    raw = read_yaml_mapping(path, "site config")
    unfilled = _unfilled_placeholders(raw)
    if unfilled:
        raise ConfigError(
            f"{path}: {'; '.join(unfilled)}: the demo template's placeholders are filled in only by "
            "`anjian demo`; put each camera's rtsp:// URL (or video file) and the data folder there"
        )
    raw = _resolve_relative_paths(raw, path.resolve().parent)
    try:
        return AnjianConfig.model_validate(raw)
    except ValidationError as exc:  # not chained: its text quotes inputs, camera URLs included
        raise ConfigError(_format_validation_error(path, exc)) from None
