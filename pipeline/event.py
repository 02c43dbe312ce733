"""Events: what the pipeline hands to the alert service, one per incident."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Behaviour", "Event", "EventBox", "IncidentFacts", "RiskLevel", "SensorFacts", "new_event_id"]


class Behaviour(StrEnum):
    """The unsafe behaviours anjian detects, camera faults, and the alerts of process sensors."""

    SMOKING = "smoking"
    OPEN_FLAME = "open_flame"
    BLOCKED_EXIT = "blocked_exit"
    FALLEN_PERSON = "fallen_person"
    UNCLEANED_DUST = "uncleaned_dust"
    ABSENCE_FROM_POST = "absence_from_post"
    OVERCROWDING = "overcrowding"
    CAMERA_FAULT = "camera_fault"
    SENSOR_THRESHOLD = "sensor_threshold"
    SENSOR_RATE_OF_RISE = "sensor_rate_of_rise"
    SENSOR_FAULT = "sensor_fault"

    @property
    def is_sensor(self) -> bool:
        """True for the alerts of process sensors (``anjian.pipeline.sensors``), not cameras."""
        return self in (Behaviour.SENSOR_THRESHOLD, Behaviour.SENSOR_RATE_OF_RISE, Behaviour.SENSOR_FAULT)


class RiskLevel(StrEnum):
    """The four risk colours of Chinese safety-supervision platforms, red the highest."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"

    @property
    def rank(self) -> int:
        """0 for blue up to 3 for red, for comparing and escalating levels."""
        return {RiskLevel.BLUE: 0, RiskLevel.YELLOW: 1, RiskLevel.ORANGE: 2, RiskLevel.RED: 3}[self]


@dataclass(frozen=True, slots=True)
class EventBox:
    """One detection that supports an event.

    Attributes:
        class_name: Detector class, e.g. ``"fire"``.
        confidence: Detector score in ``[0, 1]``.
        xyxy_norm: Box as ``(x1, y1, x2, y2)`` normalised to ``[0, 1]`` of the frame size.
    """

    class_name: str
    confidence: float
    xyxy_norm: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class SensorFacts:
    """What a sensor event is about: the reading, its worst, and the limit crossed.

    Attributes:
        sensor_id: The sensor (the event's ``camera_id`` holds it too: the source of the event).
        quantity: What it measures, e.g. ``"ammonia"``.
        unit: Unit of the values, e.g. ``"ppm"``.
        kind: ``high`` / ``low`` (a threshold), ``rate`` (rate of rise, ``value`` and ``peak``
            in units per minute), ``stale``, ``flatline`` or ``out_of_range`` (sensor faults).
        value: The latest reading (or rate) of the incident; ``None`` for ``stale``.
        peak: The worst reading (or rate) over the incident: highest for ``high`` and
            ``rate``, lowest for ``low``; ``None`` for ``stale``.
        threshold: The limit crossed, in ``unit`` (per minute for ``rate``); ``None`` for
            ``stale`` and ``flatline``.
        camera_ids: The cameras that watch the sensor's place (their snapshot rides on the event).
    """

    sensor_id: str
    quantity: str
    unit: str
    kind: str
    value: float | None
    peak: float | None
    threshold: float | None
    camera_ids: tuple[str, ...] = ()


def new_event_id() -> str:
    """Return a fresh, globally unique event id."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What every record of an incident states, whoever keeps it.

    The pipeline's ``Event`` (one revision) and the service's stored alert
    (``anjian.service.records.StoredEvent``) both begin with these fields, so they
    are declared once.

    Attributes:
        id: Stable id of the incident (hex uuid).
        revision: 1 when raised, incremented at each update.
        site_id: Site the camera belongs to.
        workshop_id: Workshop the camera belongs to.
        camera_id: Camera id.
        behaviour: What was detected.
        severity: Risk colour.
        started_at: Capture time of the first frame of the incident, epoch seconds.
        last_seen_at: Capture time of the latest frame supporting it, epoch seconds.
        confidence: Peak detector confidence over the incident.
    """

    id: str
    revision: int
    site_id: str
    workshop_id: str
    camera_id: str
    behaviour: Behaviour
    severity: RiskLevel
    started_at: float
    last_seen_at: float
    confidence: float


@dataclass(frozen=True, slots=True)
class Event(IncidentFacts):
    """One incident of one behaviour on one camera, as known at ``revision``.

    An incident that goes on is re-published with the same ``id`` and a higher
    ``revision`` (new ``last_seen_at``, peak ``confidence``); one that clears is
    re-published with ``ended_at`` set. It carries the ``IncidentFacts`` (id, revision,
    site, workshop, camera, behaviour, severity, times, confidence) and:

    Attributes:
        ended_at: When the incident cleared, epoch seconds; ``None`` while ongoing.
        boxes: Detections supporting the event, on the confirming frame.
        zone_id: Zone the incident happened in, if the rule is zone-based.
        model_version: Version string of the model that produced the detections.
        message: One human sentence for the control room.
        snapshot_jpeg: JPEG of the confirming frame with boxes drawn, or ``None``.
        clip_mp4: H.264 MP4 clip around the confirmation, or ``None``. It arrives on a
            later revision of its own (the clip needs the seconds after confirmation);
            other revisions leave it ``None``.
        track_id: Tracker id of the object the incident is about (a person), if any.
        sensor: The reading behind a sensor event (``Behaviour.is_sensor``); ``None`` for cameras.
            A sensor event's ``camera_id`` is its sensor's id.
    """

    boxes: tuple[EventBox, ...] = ()
    ended_at: float | None = None
    zone_id: str | None = None
    model_version: str = ""
    message: str = ""
    snapshot_jpeg: bytes | None = field(default=None, repr=False)
    clip_mp4: bytes | None = field(default=None, repr=False)
    track_id: int | None = None
    sensor: SensorFacts | None = None

    def __post_init__(self) -> None:
        if self.revision < 1:
            raise ValueError(f"revision must be >= 1, got {self.revision}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")
        if self.last_seen_at < self.started_at:
            raise ValueError(
                f"last_seen_at ({self.last_seen_at}) must not precede started_at ({self.started_at})"
            )
