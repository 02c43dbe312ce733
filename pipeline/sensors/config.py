"""Typed configuration of process sensors (gas, dust, temperature, level, pressure) and their connections.

Connections are declared once, at the top of the site YAML (one MQTT client per broker,
one Modbus TCP connection per device, however many sensors read through it); each
workshop lists its sensors, each naming its source, its limits and its faults:

.. code-block:: yaml

    sensor_sources:
      mqtt:
        - {id: plant-broker, url: "mqtt://anjian:s3cret@10.0.0.2:1883", subscribe: ["plant/#"]}
      modbus:
        - {id: plc-1, host: 10.0.0.3, port: 502, unit_id: 1, poll_interval_s: 1}
    site:
      workshops:
        - id: freezing-1
          sensors:
            - id: nh3-1
              quantity: ammonia
              unit: ppm
              source: {kind: mqtt, broker: plant-broker, topic: plant/nh3/1, json_path: data.value}
              thresholds: {yellow: 25, orange: 50, red: 150, hysteresis: 2, min_duration_s: 5}
              rate_of_rise: {per_minute: 20, severity: orange}
              faults: {stale_after_s: 60, flatline_after_s: 1800, min: 0, max: 1000}
              camera_ids: [freezer-cam-1]
            - id: level-1
              quantity: liquid level
              unit: "%"
              source: {kind: modbus, device: plc-1, address: 100, register_type: input, scale: 0.1}
              thresholds: {direction: low, yellow: 30, red: 10}
            - {id: p-1, quantity: pressure, unit: MPa, source: {kind: http}}   # pushed to /ingest/readings

Thresholds name the four colours; ``direction: high`` raises at or above a limit,
``low`` at or below it. The meaning of each limit is in ``anjian.pipeline.sensors.rules``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from anjian.cameras.config import ReconnectConfig
from anjian.cameras.fields import DurationOrZeroS, DurationS, HostName, TcpPort
from anjian.cameras.url import mask_url, network_url_problem, remember_secret, split_url
from anjian.pipeline.event import RiskLevel

__all__ = [
    "HttpSensorSource",
    "ModbusDeviceConfig",
    "ModbusSensorSource",
    "MqttBrokerConfig",
    "MqttSensorSource",
    "RateOfRiseConfig",
    "ReadingHistoryConfig",
    "SensorConfig",
    "SensorFaultsConfig",
    "SensorSourcesConfig",
    "ThresholdsConfig",
]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_ID = Field(..., min_length=1, max_length=64, pattern=_ID_PATTERN)
_COLOURS = ("blue", "yellow", "orange", "red")
Colour = Literal["blue", "yellow", "orange", "red"]


class SensorModel(BaseModel):
    """Base of the sensor config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- connections


def topic_filter_problem(topic: str) -> str | None:
    """What makes ``topic`` no MQTT topic filter (MQTT 3.1.1, 4.7), or ``None`` when it is one.

    A broker refuses the whole SUBSCRIBE of a bad filter, so every sensor on that broker, the
    good ones too, would read nothing while the client reconnected for ever.
    """
    if not topic or len(topic.encode("utf-8")) > 512:
        return "1 to 512 bytes"
    if "\x00" in topic:
        return "no NUL character"
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "'#' only as the whole last level"
        if "+" in level and level != "+":
            return "'+' only as a whole level"
    return None


class MqttBrokerConfig(SensorModel):
    """One MQTT broker: one client connection, subscribed to the given topic filters."""

    id: str = _ID
    url: SecretStr = Field(
        ...,
        description="mqtt://[user:password@]host[:port] (mqtts:// for TLS); the credentials are masked in logs.",
    )
    subscribe: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Topic filters to subscribe (e.g. plant/#); empty: the topics of the sensors that read "
        "through this broker. A message on a subscribed topic no sensor reads is counted as unknown.",
    )
    client_id: str = Field("", max_length=128, description="MQTT client id; empty: anjian-<broker id>.")
    qos: Literal[0, 1] = Field(1, description="QoS of the subscriptions.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval.")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        problem = network_url_problem(url, ("mqtt", "mqtts"), what="an MQTT broker")
        if problem is not None:
            raise ValueError(f"expected mqtt://[user:password@]host[:port], got {mask_url(url)}: {problem}")
        remember_secret(split_url(url).password)
        return value

    @field_validator("subscribe")
    @classmethod
    def _filters(cls, filters: list[str]) -> list[str]:
        for topic in filters:
            problem = topic_filter_problem(topic)
            if problem is not None:
                raise ValueError(f"not a topic filter: {topic!r} ({problem})")
        return filters

    @property
    def display_url(self) -> str:
        """The URL with its credentials masked, fit for logs and the API."""
        return mask_url(self.url.get_secret_value())


class ModbusDeviceConfig(SensorModel):
    """One Modbus TCP device (a PLC, a gas controller, a gateway): one connection, polled in turn."""

    id: str = _ID
    host: HostName = Field(..., description="Host name or address.")
    port: TcpPort = Field(502, description="Modbus TCP port.")
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    poll_interval_s: float = Field(1.0, ge=0.05, le=3600, description="How often every register is read.")
    timeout_s: float = Field(3.0, gt=0, le=60, description="Per-request timeout.")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)


class SensorSourcesConfig(SensorModel):
    """The site's sensor connections (``sensor_sources:``)."""

    mqtt: list[MqttBrokerConfig] = Field(default_factory=list, max_length=100)
    modbus: list[ModbusDeviceConfig] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _unique_ids(self) -> SensorSourcesConfig:
        for name, items in (("mqtt", self.mqtt), ("modbus", self.modbus)):
            ids = [item.id for item in items]
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ValueError(f"sensor_sources.{name}: id(s) {twice} appear twice")
        return self


# ------------------------------------------------------------------------- per sensor


class MqttSensorSource(SensorModel):
    """A sensor read from MQTT messages on one topic."""

    kind: Literal["mqtt"] = "mqtt"
    broker: str = Field(..., min_length=1, description="Id of the broker in sensor_sources.mqtt.")
    topic: str = Field(..., min_length=1, max_length=512, description="Exact topic (no wildcards).")
    json_path: str | None = Field(
        None,
        max_length=200,
        description="Dot path of the value in a JSON payload (data.nh3, values.0); null: the payload is the "
        "number itself (plain text like 12.5).",
    )

    @field_validator("json_path")
    @classmethod
    def _path_parts(cls, path: str | None) -> str | None:
        """An empty part ("data..nh3", "", a trailing dot) matched no payload: every reading was refused."""
        if path is not None and "" in path.split("."):
            raise ValueError(f"json_path {path!r} has an empty part; leave json_path out for a plain number")
        return path

    @field_validator("topic")
    @classmethod
    def _exact(cls, topic: str) -> str:
        if "+" in topic or "#" in topic:
            raise ValueError(f"a sensor reads one exact topic, got the filter {topic!r}")
        if "\x00" in topic:
            raise ValueError(f"a topic holds no NUL character, got {topic!r}")
        return topic


class ModbusSensorSource(SensorModel):
    """A sensor read from one or two registers of a Modbus TCP device: ``value = raw * scale + offset``."""

    kind: Literal["modbus"] = "modbus"
    device: str = Field(..., min_length=1, description="Id of the device in sensor_sources.modbus.")
    address: int = Field(..., ge=0, le=65535, description="Register address (0-based, as on the wire).")
    register_type: Literal["holding", "input"] = Field("holding", description="Function 3 or 4.")
    data_type: Literal["int16", "uint16", "int32", "uint32", "float32"] = Field(
        "uint16", description="How the register(s) encode the raw value (32-bit types read two)."
    )
    word_order: Literal["big", "little"] = Field(
        "big", description="Which register of a 32-bit value holds the high word (big: the first)."
    )
    scale: float = Field(1.0, allow_inf_nan=False, description="Multiplies the raw value.")
    offset: float = Field(0.0, allow_inf_nan=False, description="Added after scaling.")

    @model_validator(mode="after")
    def _readable(self) -> ModbusSensorSource:
        """Refuse what would read nothing, or read a constant, for as long as the plant runs."""
        if self.data_type in ("int32", "uint32", "float32") and self.address == 65535:
            raise ValueError(f"a {self.data_type} reads two registers, and address 65535 is the last one")
        if self.scale == 0:
            raise ValueError("scale 0 makes every reading the offset, whatever the device reads")
        return self


class HttpSensorSource(SensorModel):
    """A sensor whose gateway POSTs readings to ``/ingest/readings`` (a pipeline token)."""

    kind: Literal["http"] = "http"


SensorSource = Annotated[
    MqttSensorSource | ModbusSensorSource | HttpSensorSource, Field(discriminator="kind")
]


class ThresholdsConfig(SensorModel):
    """Limits in the four colours, with hysteresis and a minimum duration.

    A colour holds once the reading is at or beyond its limit for ``min_duration_s``;
    it lets go only when the reading is back ``hysteresis`` units inside the limit,
    so a reading wavering at a limit raises one incident. The incident takes the
    highest colour held (it never drops while it lasts) and ends once no colour has
    held for ``clear_after_s``.
    """

    direction: Literal["high", "low"] = Field(
        "high", description="high: raise at or above; low: at or below."
    )
    blue: float | None = Field(None, allow_inf_nan=False, description="Blue limit, in the sensor's unit.")
    yellow: float | None = Field(None, allow_inf_nan=False, description="Yellow limit.")
    orange: float | None = Field(None, allow_inf_nan=False, description="Orange limit.")
    red: float | None = Field(None, allow_inf_nan=False, description="Red limit.")
    hysteresis: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="Units back inside a limit to let go."
    )
    min_duration_s: DurationOrZeroS = Field(5.0, description="Seconds beyond a limit before it holds.")
    clear_after_s: DurationOrZeroS = Field(10.0, description="Seconds with no colour held before the end.")

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdsConfig:
        limits = self.limits()
        if not limits:
            raise ValueError("give at least one of blue, yellow, orange, red")
        values = [limit for _, limit in limits]
        is_ordered = (
            values == sorted(values) if self.direction == "high" else values == sorted(values, reverse=True)
        )
        if not is_ordered or len(set(values)) != len(values):
            want = "rise" if self.direction == "high" else "fall"
            raise ValueError(
                f"limits must strictly {want} from blue to red for direction {self.direction}, got {values}"
            )
        return self

    def limits(self) -> list[tuple[RiskLevel, float]]:
        """The configured ``(colour, limit)`` pairs, lowest colour first."""
        return [(RiskLevel(c), getattr(self, c)) for c in _COLOURS if getattr(self, c) is not None]


class RateOfRiseConfig(SensorModel):
    """An alert when the reading climbs faster than ``per_minute`` (a leak before the limit is reached)."""

    per_minute: float = Field(
        ..., gt=0, allow_inf_nan=False, description="Rise per minute, in the unit, that raises."
    )
    window_s: float = Field(60.0, ge=2, le=3600, description="The rise is measured over this window.")
    severity: Colour = Field("orange", description="Colour of the alert.")
    clear_after_s: DurationOrZeroS = Field(30.0, description="Seconds below the rate before the end.")


class SensorFaultsConfig(SensorModel):
    """When a sensor's own trouble becomes a ``sensor_fault`` alert."""

    enabled: bool = Field(True, description="Raise sensor_fault events for this sensor.")
    stale_after_s: DurationS = Field(60.0, description="Raise once no reading came for this long.")
    flatline_after_s: float | None = Field(
        None,
        gt=0,
        le=30 * 86_400,
        description="Raise once the reading has not moved for this long; null: off.",
    )
    flatline_tolerance: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="Moves this small count as none."
    )
    min: float | None = Field(None, allow_inf_nan=False, description="Lowest physically possible reading.")
    max: float | None = Field(None, allow_inf_nan=False, description="Highest physically possible reading.")
    severity: Colour = Field("orange", description="Colour of sensor_fault events.")
    clear_after_s: DurationOrZeroS = Field(10.0, description="Seconds fine before a fault ends.")

    @model_validator(mode="after")
    def _range(self) -> SensorFaultsConfig:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class SensorConfig(SensorModel):
    """One sensor of a workshop: its source, limits, faults and the cameras that watch its place."""

    id: str = _ID
    name: str = Field("", max_length=200, description="Shown in the control room.")
    quantity: str = Field(..., min_length=1, max_length=64, description="What it measures: ammonia, dust ...")
    unit: str = Field("", max_length=32, description="Unit of the readings: ppm, mg/m3, %LEL, C, %, MPa.")
    source: SensorSource
    thresholds: ThresholdsConfig | None = None
    rate_of_rise: RateOfRiseConfig | None = None
    faults: SensorFaultsConfig = Field(default_factory=SensorFaultsConfig)
    camera_ids: list[str] = Field(
        default_factory=list, max_length=16, description="Cameras of the site watching the sensor's place."
    )
    update_interval_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="How often an ongoing incident is re-published with its latest reading.",
    )

    @model_validator(mode="after")
    def _limits_within_range(self) -> SensorConfig:
        """Every limit must be reachable, and let go of, by a reading ``faults.min``..``faults.max`` allows.

        A reading beyond that range is a sensor fault and never reaches the limits: a red limit
        above ``max`` could never raise, and a limit whose hysteresis reaches below ``min`` could
        never let go (its alarm would stay open for ever).
        """
        thresholds, low, high = self.thresholds, self.faults.min, self.faults.max
        if thresholds is None:
            return self
        band = thresholds.hysteresis
        for colour, limit in thresholds.limits():
            name = f"thresholds.{colour.value}"
            if thresholds.direction == "high":
                if high is not None and limit > high:
                    raise ValueError(
                        f"{name} ({limit:g}) is above faults.max ({high:g}): it could never be reached"
                    )
                if low is not None and limit - band <= low:
                    raise ValueError(
                        f"{name} ({limit:g}) minus thresholds.hysteresis ({band:g}) is not above faults.min "
                        f"({low:g}): its alarm could never let go"
                    )
            else:
                if low is not None and limit < low:
                    raise ValueError(
                        f"{name} ({limit:g}) is below faults.min ({low:g}): it could never be reached"
                    )
                if high is not None and limit + band >= high:
                    raise ValueError(
                        f"{name} ({limit:g}) plus thresholds.hysteresis ({band:g}) is not below faults.max "
                        f"({high:g}): its alarm could never let go"
                    )
        return self

    @property
    def display_name(self) -> str:
        """The name, or the id when it has none."""
        return self.name or self.id


class ReadingHistoryConfig(SensorModel):
    """How long readings are kept, and at which resolution (``sensor_history:`` in the site YAML)."""

    raw_for_s: float = Field(86_400.0, ge=60, le=30 * 86_400, description="Raw readings are kept this long.")
    bucket_s: int = Field(
        60,
        ge=1,
        le=86_400,
        description="Older readings are kept as the mean, min and max of buckets this long.",
    )
    keep_for_s: float = Field(
        90 * 86_400.0, ge=3600, le=10 * 365 * 86_400, description="Buckets older than this are deleted."
    )
    flush_interval_s: float = Field(0.5, gt=0, le=60, description="How often queued readings are written.")
    compact_interval_s: DurationS = Field(300.0, description="How often old readings are downsampled.")

    @model_validator(mode="after")
    def _order(self) -> ReadingHistoryConfig:
        if self.keep_for_s < self.raw_for_s:
            raise ValueError(f"keep_for_s ({self.keep_for_s}) must be >= raw_for_s ({self.raw_for_s})")
        return self
