"""The wire form of an event revision: the JSON a pipeline POSTs to the alert service, as one pydantic model.

``EventWire`` is the one definition of that JSON. The pipeline's HTTP sink writes
it (``EventWire.from_event``), ``anjian replay`` prints it, and the service's
``POST /ingest/events`` and ``POST /ingest/batch`` take it as their body, so an
ingested revision is validated once, by this model, before ``to_event`` hands the
frame path's ``Event`` on. The pipeline never imports the service, so the pipeline
owns the format.

Times stay epoch seconds (floats survive JSON exactly); evidence travels as base64
(``snapshot_jpeg_b64``, ``clip_mp4_b64``; the model holds the bytes). Numbers are
strict (``"1"`` and ``true`` are not numbers), unknown fields are refused, and
``schema_version`` is ``EVENT_WIRE_VERSION`` (bumped only by an incompatible change).

The described field types (``IncidentId`` … ``TrackId``, ``BoxClassName`` …) are the
facts an event carries wherever it is shown: the service's ``EventOut`` reuses them.
The wire adds on top the bounds a body from another process must meet (id pattern,
lengths, ranges); the API's output does not re-check them.

Example:
    >>> data = EventWire.from_event(event).model_dump(mode="json")  # ready for json.dumps
    >>> EventWire.model_validate(data).to_event() == event
    True
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    Strict,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_serializer,
)
from pydantic_core import PydanticCustomError, PydanticKnownError

from anjian.pipeline.event import Behaviour, Event, EventBox, RiskLevel, SensorFacts

__all__ = [
    "EVENT_WIRE_VERSION",
    "ID_PATTERN",
    "BehaviourKind",
    "BoxClassName",
    "BoxConfidence",
    "CameraId",
    "Confidence",
    "DetectedSeverity",
    "EventBoxWire",
    "EventWire",
    "IncidentId",
    "Message",
    "ModelVersion",
    "Revision",
    "SensorFactsWire",
    "SensorReading",
    "SiteId",
    "TrackId",
    "WorkshopId",
    "XyxyNorm",
    "ZoneId",
    "jpeg_problem",
    "mp4_problem",
]

EVENT_WIRE_VERSION: Final = 1
"""Bumped when the wire form changes incompatibly."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""What a site, workshop, camera, zone or event id looks like (as the site config requires)."""

MAX_BOXES = 100
"""Most boxes one revision may carry."""

# ------------------------------------------------- the facts, described once (the API reuses them)

IncidentId = Annotated[str, Field(description="Stable id of the incident (hex uuid).")]
Revision = Annotated[int, Field(ge=1, description="1 when raised, incremented at each update.")]
SiteId = Annotated[str, Field(description="Site the camera belongs to.")]
WorkshopId = Annotated[str, Field(description="Workshop the camera belongs to.")]
CameraId = Annotated[str, Field(description="Camera that saw the incident.")]
BehaviourKind = Annotated[Behaviour, Field(description="What was detected.")]
DetectedSeverity = Annotated[RiskLevel, Field(description="The colour the pipeline gave the incident.")]
Confidence = Annotated[float, Field(ge=0, le=1, description="Peak detector confidence over the incident.")]
ZoneId = Annotated[
    str | None, Field(description="Zone the incident happened in, if the rule is zone-based; else null.")
]
ModelVersion = Annotated[str, Field(description="Version of the model that produced the detections.")]
Message = Annotated[str, Field(description="One human sentence for the control room.")]
TrackId = Annotated[
    int | None,
    Field(
        description="Tracker id of the person or object the incident is about (stable while the tracker "
        "follows it; restarts with the pipeline); null when the rule is not about one object."
    ),
]
BoxClassName = Annotated[str, Field(description='Detector class, e.g. "fire".')]
BoxConfidence = Annotated[float, Field(ge=0, le=1, description="Detector score.")]
_XYXY_NORM = Field(description="(x1, y1, x2, y2) normalised to [0, 1] of the frame size, origin top-left.")
XyxyNorm = Annotated[tuple[float, float, float, float], _XYXY_NORM]

# ------------------------------------------------------------------- the wire's bounds

_ID = StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)
_UNIT = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
_EPOCH_S = Annotated[float, Strict(), Field(ge=0, le=1e11, allow_inf_nan=False)]
_MAX_SNAPSHOT_B64_CHARS = 16_000_000
_MAX_CLIP_B64_CHARS = 200_000_000


def jpeg_problem(data: bytes) -> str | None:
    """Why ``data`` is not JPEG data (it must start with the SOI marker FF D8), or ``None`` when it is."""
    if data.startswith(b"\xff\xd8"):
        return None
    return f"expected JPEG bytes (starting FF D8), got {data[:4]!r} ({len(data)} bytes)"


def mp4_problem(data: bytes) -> str | None:
    """Why ``data`` is not an ISO media file (an ``ftyp`` box at byte 4), or ``None`` when it is."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return None
    return f"expected MP4 bytes (an ftyp box at byte 4), got {data[:12]!r}"


def _base64_decoder(max_chars: int, problem_of: Callable[[bytes], str | None]) -> PlainValidator:
    """Decode a base64 string of at most ``max_chars`` characters to bytes that ``problem_of`` accepts.

    Errors name what is wrong: evidence that is not what its field says would be
    dropped when it is written, with only a log line to tell.
    """

    def decode(value: object) -> bytes:
        if not isinstance(value, str):
            raise PydanticKnownError("string_type")
        if len(value) > max_chars:
            raise PydanticKnownError("string_too_long", {"max_length": max_chars})
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PydanticCustomError("base64", "not base64: {reason}", {"reason": str(exc)}) from exc
        problem = problem_of(data)
        if problem is not None:
            raise PydanticCustomError("evidence_format", "{problem}", {"problem": problem})
        return data

    return PlainValidator(decode)


def _base64_text(data: bytes) -> str:
    """The base64 text of evidence bytes."""
    return base64.b64encode(data).decode("ascii")


_AS_BASE64 = PlainSerializer(_base64_text, return_type=str)
_SnapshotJpeg = Annotated[
    bytes,
    _base64_decoder(_MAX_SNAPSHOT_B64_CHARS, jpeg_problem),
    _AS_BASE64,
    WithJsonSchema({"type": "string", "contentEncoding": "base64", "maxLength": _MAX_SNAPSHOT_B64_CHARS}),
]
_ClipMp4 = Annotated[
    bytes,
    _base64_decoder(_MAX_CLIP_B64_CHARS, mp4_problem),
    _AS_BASE64,
    WithJsonSchema({"type": "string", "contentEncoding": "base64", "maxLength": _MAX_CLIP_B64_CHARS}),
]


class _WireModel(BaseModel):
    """Base of the wire models: unknown fields are errors, instances are immutable, keys are the wire's."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)


class EventBoxWire(_WireModel):
    """One detection supporting an event (``anjian.pipeline.event.EventBox`` on the wire)."""

    class_name: Annotated[BoxClassName, StringConstraints(min_length=1, max_length=64)]
    confidence: Annotated[BoxConfidence, Strict(), Field(allow_inf_nan=False)]
    xyxy_norm: Annotated[tuple[_UNIT, _UNIT, _UNIT, _UNIT], _XYXY_NORM]

    @classmethod
    def from_box(cls, box: EventBox) -> EventBoxWire:
        """The wire form of a pipeline box (trusted: built without validation)."""
        return cls.model_construct(
            class_name=box.class_name, confidence=box.confidence, xyxy_norm=box.xyxy_norm
        )

    def to_box(self) -> EventBox:
        """The pipeline's box."""
        return EventBox(class_name=self.class_name, confidence=self.confidence, xyxy_norm=self.xyxy_norm)


_SENSOR_KINDS = Literal["high", "low", "rate", "stale", "flatline", "out_of_range"]
_READING = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-1e15, le=1e15)]


class SensorFactsWire(_WireModel):
    """The reading behind a sensor event (``anjian.pipeline.event.SensorFacts`` on the wire)."""

    sensor_id: Annotated[str, _ID] = Field(..., description="The sensor.")
    quantity: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        ..., description='What it measures, e.g. "ammonia".'
    )
    unit: Annotated[str, StringConstraints(max_length=32)] = Field(..., description='Unit, e.g. "ppm".')
    kind: _SENSOR_KINDS = Field(
        ...,
        description="high / low (a threshold), rate (rate of rise, per minute), stale, flatline or "
        "out_of_range (sensor faults).",
    )
    value: _READING | None = Field(..., description="Latest reading of the incident (null when stale).")
    peak: _READING | None = Field(..., description="Worst reading over the incident (null when stale).")
    threshold: _READING | None = Field(
        ..., description="Limit crossed, in the unit (null: a fault without one)."
    )
    camera_ids: list[Annotated[str, _ID]] = Field(
        default_factory=list, max_length=16, description="Cameras watching the sensor's place."
    )

    @classmethod
    def from_facts(cls, facts: SensorFacts) -> SensorFactsWire:
        """The wire form of a pipeline's sensor facts (trusted: built without validation)."""
        values = {field.name: getattr(facts, field.name) for field in dataclasses.fields(facts)}
        values["camera_ids"] = list(facts.camera_ids)
        return cls.model_construct(**values)

    def to_facts(self) -> SensorFacts:
        """The pipeline's sensor facts."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(SensorFacts)}
        values["camera_ids"] = tuple(self.camera_ids)
        return SensorFacts(**values)


SensorReading = Annotated[
    SensorFactsWire | None,
    Field(
        description="The reading behind a sensor event (value, peak, threshold crossed, unit); null for cameras."
    ),
]


class EventWire(_WireModel):
    """One event revision as a pipeline sends it (``anjian.pipeline.event.Event`` on the wire).

    Fields are in the order of the JSON the sink writes. ``snapshot_jpeg`` and
    ``clip_mp4`` hold bytes and travel as ``snapshot_jpeg_b64`` / ``clip_mp4_b64``.
    """

    schema_version: Literal[1] = Field(..., description="Wire-form version (EVENT_WIRE_VERSION).")
    id: Annotated[IncidentId, _ID]
    revision: Annotated[Revision, Strict(), Field(le=1_000_000_000)]
    site_id: Annotated[SiteId, _ID]
    workshop_id: Annotated[WorkshopId, _ID]
    camera_id: Annotated[CameraId, _ID]
    behaviour: BehaviourKind
    severity: DetectedSeverity
    started_at: _EPOCH_S = Field(..., description="Capture time of the first frame, epoch seconds.")
    last_seen_at: _EPOCH_S = Field(
        ..., description="Capture time of the latest supporting frame, epoch seconds; not before started_at."
    )
    ended_at: _EPOCH_S | None = Field(
        None, description="When the incident cleared, epoch seconds; null while ongoing."
    )
    confidence: Annotated[Confidence, Strict(), Field(allow_inf_nan=False)]
    boxes: list[EventBoxWire] = Field(
        default_factory=list,
        max_length=MAX_BOXES,
        description="Detections supporting it, on the confirming frame.",
    )
    zone_id: Annotated[ZoneId, _ID] = None
    model_version: Annotated[ModelVersion, StringConstraints(max_length=128)] = ""
    message: Annotated[Message, StringConstraints(max_length=2000)] = ""
    snapshot_jpeg: _SnapshotJpeg | None = Field(
        None, alias="snapshot_jpeg_b64", description="JPEG of the confirming frame with boxes drawn, base64."
    )
    clip_mp4: _ClipMp4 | None = Field(
        None,
        alias="clip_mp4_b64",
        description="H.264 MP4 clip around the confirmation, base64; it comes on a later revision of its own.",
    )
    track_id: Annotated[TrackId, Strict(), Field(ge=-(2**63), le=2**63 - 1)] = None
    sensor: SensorReading = None

    @model_serializer(mode="wrap")
    def _without_absent_sensor(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A camera event's JSON has no ``sensor`` key, so services that predate sensors still take it."""
        data: dict[str, Any] = handler(self)
        if data.get("sensor") is None:
            data.pop("sensor", None)
        return data

    @field_validator("last_seen_at", mode="after")
    @classmethod
    def _not_before_start(cls, last_seen_at: float, info: ValidationInfo) -> float:
        started_at = info.data.get("started_at")
        if started_at is not None and last_seen_at < started_at:
            raise PydanticCustomError(
                "time_order",
                "last_seen_at ({last_seen_at}) must not precede started_at ({started_at})",
                {"last_seen_at": last_seen_at, "started_at": started_at},
            )
        return last_seen_at

    @classmethod
    def from_event(cls, event: Event) -> EventWire:
        """The wire form of a pipeline event (its fields have the same names).

        Built without validation: the event is the pipeline's own, and the sink that
        serialises it must not fail on the frame path; the receiving service
        validates (and refuses with 422 what it cannot take).
        """
        values = {field.name: getattr(event, field.name) for field in dataclasses.fields(event)}
        values["boxes"] = [EventBoxWire.from_box(box) for box in event.boxes]
        values["sensor"] = None if event.sensor is None else SensorFactsWire.from_facts(event.sensor)
        return cls.model_construct(schema_version=EVENT_WIRE_VERSION, **values)

    def to_event(self) -> Event:
        """The pipeline's ``Event`` of this revision (every field the wire carries)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(Event)}
        values["boxes"] = tuple(box.to_box() for box in self.boxes)
        values["sensor"] = None if self.sensor is None else self.sensor.to_facts()
        return Event(**values)
