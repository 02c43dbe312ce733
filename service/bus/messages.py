"""What travels on the bus, as pydantic models: the JSON of every message, validated where it is read.

Plant to hub (the plant's events stream):

- ``EventChange``: one announcement of an event from the plant's outbox (a detection revision or a
  lifecycle change), the same ``WebhookPayload`` a webhook receives, with the snapshot
  for detection revisions; its ``key`` is the outbox row's idempotency key, also its ``Nats-Msg-Id``.
- ``HealthReport``: the health of the plant's cameras and sensors, every ``bus.health_interval_s``
  (``sensors`` empty from a plant without sensors, or one older than them).
- ``RemarkReceipt``: the plant's word that a supervisor's remark reached it (written into the
  incident's audit trail, or not: the plant has no such incident).

Hub to plant (the hub's commands stream, sourced into the plant's):

- ``SupervisorRemark``: a supervisor's remark on an incident, or a press for action.

Hub to plant, core request/reply (``anjian.service.bus.clips``):

- ``ClipRequest``: a part of an incident's clip; the plant answers with the bytes.

Every time is epoch seconds between 0 and ``MAX_EPOCH_S`` (the year 5138): a report "from the
year 31 million" is refused where it is read, rather than stored and failing every response
that shows it. The models refuse unknown fields, so a typo in the code that builds a message
fails at once; the hub reads a plant's message with ``parse_plant_message`` and a plant reads a
remark with ``parse_hub_remark``, which leave out the fields they do not know instead (the other
side, upgraded first, may send more), and say which.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from anjian.cameras.health import CameraState
from anjian.pipeline.sensors.health import SensorState
from anjian.service.schemas import WebhookPayload

__all__ = [
    "BUS_SCHEMA_VERSION",
    "MAX_EPOCH_S",
    "BusMessage",
    "CameraReport",
    "ClipRequest",
    "EventChange",
    "HealthReport",
    "RemarkReceipt",
    "SensorReport",
    "SupervisorRemark",
    "parse_hub_remark",
    "parse_plant_message",
]

BUS_SCHEMA_VERSION: Literal[1] = 1
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
MAX_EPOCH_S: Final = 1e11
"""The latest time a message may carry, epoch seconds: the year 5138, past any real clock and well inside
what a date can hold (the API shows every time as one)."""
_EXTRA_FORBIDDEN: Final = "extra_forbidden"  # pydantic's error type of an unknown field
_REMARK_ID = r"^[0-9a-f]{32}$"

_Parsed = TypeVar("_Parsed")

_EpochS = Annotated[float, Field(ge=0, le=MAX_EPOCH_S)]
"""A time in a message: epoch seconds, from 1970 to ``MAX_EPOCH_S``."""


def _decode_b64(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("base64", "expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PydanticCustomError("base64", "not base64: {reason}", {"reason": str(exc)}) from exc


_Jpeg = Annotated[
    bytes,
    PlainValidator(_decode_b64),
    PlainSerializer(lambda data: base64.b64encode(data).decode("ascii"), return_type=str),
]


class _BusModel(BaseModel):
    """Every bus message: no unknown fields (``parse_plant_message`` leaves them out instead), and no
    NaN or infinite number (a time of ``Infinity`` would otherwise order after every later report for good)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EventChange(_BusModel):
    """An event announcement from a plant's outbox."""

    type: Literal["event"] = "event"
    schema_version: Literal[1] = BUS_SCHEMA_VERSION
    plant_id: str = Field(..., pattern=_ID, max_length=64)
    key: str = Field(..., min_length=1, max_length=200, description="The outbox idempotency key.")
    sent_at: _EpochS = Field(..., description="When the plant published it, epoch seconds.")
    payload: WebhookPayload
    snapshot_jpeg: _Jpeg | None = Field(None, description="The event's snapshot (detection revisions).")


class CameraReport(_BusModel):
    """One camera's health as the plant last saw it."""

    camera_id: str = Field(..., pattern=_ID, max_length=64)
    name: str | None = Field(None, max_length=200, description="The site config's name of the camera.")
    state: CameraState
    since: _EpochS
    fps: float = Field(0.0, ge=0)
    reconnects: int = Field(0, ge=0)
    last_error: str | None = Field(None, max_length=1000)
    last_frame_at: _EpochS | None = None


class SensorReport(_BusModel):
    """One sensor's health as the plant last saw it (``anjian.pipeline.sensors.health``)."""

    sensor_id: str = Field(..., pattern=_ID, max_length=64)
    workshop_id: str = Field(..., pattern=_ID, max_length=64)
    quantity: str = Field(..., min_length=1, max_length=64)
    unit: str = Field("", max_length=32)
    source: str = Field(
        ..., min_length=1, max_length=80, description="mqtt:<broker>, modbus:<device> or http."
    )
    state: SensorState
    is_source_connected: bool | None = None
    last_reading_at: _EpochS | None = None
    last_value: float | None = None
    open_kinds: list[str] = Field(default_factory=list, max_length=16)


class HealthReport(_BusModel):
    """The health of a plant's cameras and sensors."""

    type: Literal["health"] = "health"
    schema_version: Literal[1] = BUS_SCHEMA_VERSION
    plant_id: str = Field(..., pattern=_ID, max_length=64)
    sent_at: _EpochS
    cameras: list[CameraReport] = Field(default_factory=list, max_length=10_000)
    sensors: list[SensorReport] = Field(default_factory=list, max_length=10_000)


class SupervisorRemark(_BusModel):
    """A supervisor's remark on a plant's incident; ``is_press_for_action`` when it presses the plant to act."""

    type: Literal["remark"] = "remark"
    schema_version: Literal[1] = BUS_SCHEMA_VERSION
    id: str = Field(..., pattern=_REMARK_ID, description="Unique id (hex uuid): the Nats-Msg-Id.")
    plant_id: str = Field(..., pattern=_ID, max_length=64)
    event_id: str = Field(..., pattern=_ID, max_length=64)
    actor: str = Field(..., min_length=1, max_length=200, description="The supervisor (hub token name).")
    note: str = Field(..., min_length=1, max_length=4000)
    is_press_for_action: bool = False
    at: _EpochS = Field(..., description="When the supervisor wrote it, epoch seconds.")


class RemarkReceipt(_BusModel):
    """A plant's word that a supervisor's remark reached it.

    ``recorded``: it is in the incident's audit trail (written now, or there already: the remark
    came again). ``no_such_event``: the plant has no such incident (deleted there by its retention).
    """

    type: Literal["remark_receipt"] = "remark_receipt"
    schema_version: Literal[1] = BUS_SCHEMA_VERSION
    plant_id: str = Field(..., pattern=_ID, max_length=64)
    event_id: str = Field(..., pattern=_ID, max_length=64)
    remark_id: str = Field(..., pattern=_REMARK_ID, description="The remark's id.")
    outcome: Literal["recorded", "no_such_event"]
    sent_at: _EpochS = Field(..., description="When the plant published it, epoch seconds.")


class ClipRequest(_BusModel):
    """The hub asks for ``length`` bytes of an incident's clip from ``offset`` (the first asks also size and hash)."""

    type: Literal["clip_request"] = "clip_request"
    schema_version: Literal[1] = BUS_SCHEMA_VERSION
    plant_id: str = Field(..., pattern=_ID, max_length=64)
    event_id: str = Field(..., pattern=_ID, max_length=64)
    offset: int = Field(0, ge=0)
    length: int = Field(..., ge=1, le=64 * 1024 * 1024)


BusMessage = EventChange | HealthReport | RemarkReceipt
"""What a plant sends the hub."""

_PLANT_MESSAGE: TypeAdapter[BusMessage] = TypeAdapter(Annotated[BusMessage, Field(discriminator="type")])
_HUB_REMARK: TypeAdapter[SupervisorRemark] = TypeAdapter(SupervisorRemark)


def parse_plant_message(data: bytes) -> tuple[BusMessage, tuple[str, ...]]:
    """The plant message in ``data`` (JSON), told apart by its ``type``, leaving out fields this version lacks.

    A plant upgraded before its hub may send fields the hub does not know yet: they are
    left out (the hub stores what it knows) rather than the message refused and lost.
    Every other error refuses the message.

    Returns:
        The message, and the dotted paths of the fields left out (``payload.event.shift``;
        empty for a message of this version).

    Raises:
        ValueError: Not a plant message (a ``pydantic.ValidationError`` naming the fields that
            are wrong), or a time that no date can hold.
    """
    try:
        # each error's place starts with the message's ``type`` (the union's tag), then the field's path
        return _validate_leaving_out_unknown(_PLANT_MESSAGE, data, tag_parts=1)
    except OverflowError as exc:  # a time in the plant's record (``UtcTime``) past what a date holds
        raise ValueError(f"a time out of range: {exc}") from exc


def parse_hub_remark(data: bytes) -> tuple[SupervisorRemark, tuple[str, ...]]:
    """The hub's remark in ``data`` (JSON), leaving out fields this version lacks.

    A hub upgraded before its plants may send fields the plant does not know yet: they are
    left out (the plant records what it knows) rather than the remark refused and lost.
    Every other error refuses the remark.

    Returns:
        The remark, and the names of the fields left out (empty for a remark of this version).

    Raises:
        ValueError: Not a remark (a ``pydantic.ValidationError`` naming the fields that are wrong).
    """
    return _validate_leaving_out_unknown(_HUB_REMARK, data, tag_parts=0)


def _validate_leaving_out_unknown(
    adapter: TypeAdapter[_Parsed], data: bytes, *, tag_parts: int
) -> tuple[_Parsed, tuple[str, ...]]:
    """``data`` validated by ``adapter`` without the fields it does not know, and their paths.

    ``tag_parts``: how many leading parts of an error's place name the union's member, not a field.
    """
    try:
        return adapter.validate_json(data), ()
    except ValidationError as exc:
        unknown = [
            error["loc"][tag_parts:]
            for error in exc.errors(include_input=False, include_url=False)
            if error["type"] == _EXTRA_FORBIDDEN
        ]
        document = json.loads(data) if unknown else None
        if document is None or not all(_drop_field(document, path) for path in unknown):
            raise
    return (
        adapter.validate_json(json.dumps(document)),  # still refused for any other error
        tuple(".".join(str(part) for part in path) for path in unknown),
    )


def _drop_field(document: object, path: tuple[str | int, ...]) -> bool:
    """Delete the field at ``path`` (keys and list indexes) from parsed JSON; whether it was there."""
    *parents, name = path or ("",)
    node = document
    for part in parents:
        is_key = isinstance(node, dict) and isinstance(part, str) and part in node
        is_index = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (is_key or is_index):
            return False
        node = node[part]  # type: ignore[index]
    if not (isinstance(node, dict) and isinstance(name, str) and name in node):
        return False
    del node[name]
    return True
