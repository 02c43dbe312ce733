"""Typed configuration of zones, schedules, behaviours and evidence, per camera (composed into the site YAML).

A camera in the site YAML carries, besides its source (``anjian.cameras.config.CameraConfig``):

.. code-block:: yaml

    zones:
      - {id: duty-desk, kind: post, polygon: [[0.3, 0.5], [0.9, 0.5], [0.9, 1.0], [0.3, 1.0]]}
      - {id: furnace, kind: exclusion, excludes: [open_flame], polygon: [...]}
    schedules:
      day-shift:
        time_zone: null            # null: the site's time zone
        windows: [{days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00"}]
    behaviours:
      open_flame: {k: 3, n: 5}
      absence_from_post:
        min_duration_s: 300
        posts: [{zone: duty-desk, min_people: 1, schedule: day-shift}]
    evidence: {clip_pre_s: 5, clip_post_s: 5}

Every rule shares the ``RuleConfig`` fields: severity (one of the four colours, with an
optional escalation), an optional schedule (by name), how an incident clears, how often
an ongoing one is re-published, and a cooldown before the same key may raise again.

This module holds the building blocks. Each behaviour's own model lives in its rule module
(``anjian.pipeline.rules.open_flame.OpenFlameConfig``, ...), and the models that depend on
which behaviours exist (``BehavioursConfig``, ``ZoneConfig``, ``CameraPipelineConfig``) are
derived from the rule registry in ``anjian.pipeline.camera_config``; both are importable from
here too (they load on first use, as the registry imports the rules, which import this module).
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Mapping
from itertools import combinations
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from anjian.cameras.fields import DurationOrZeroS, DurationS, FractionOrZero, GreyLevel
from anjian.pipeline.event import RiskLevel

if TYPE_CHECKING:
    from anjian.pipeline.camera_config import BehavioursConfig, CameraPipelineConfig, ZoneConfig
    from anjian.pipeline.rules.absence_from_post import AbsenceFromPostConfig, PostConfig
    from anjian.pipeline.rules.blocked_exit import BlockedExitConfig
    from anjian.pipeline.rules.fallen_person import FallenPersonConfig
    from anjian.pipeline.rules.open_flame import OpenFlameConfig
    from anjian.pipeline.rules.smoking import SmokingConfig
    from anjian.pipeline.rules.uncleaned_dust import UncleanedDustConfig

__all__ = [
    "AbsenceFromPostConfig",
    "Anchor",
    "BaseZoneConfig",
    "BehavioursConfig",
    "BlockedExitConfig",
    "CameraPipelineConfig",
    "ClearAfterS",
    "EscalationConfig",
    "EvidenceConfig",
    "FallenPersonConfig",
    "MinDurationS",
    "OpenFlameConfig",
    "PipelineModel",
    "PostConfig",
    "ReferenceConfig",
    "RuleConfig",
    "ScheduleConfig",
    "ScheduleWindowConfig",
    "Severity",
    "SmokingConfig",
    "UncleanedDustConfig",
    "UpdateIntervalS",
    "WindowK",
    "WindowN",
    "WindowedConfig",
    "ZoneConfig",
    "check_time_zone",
]

_LATER = {
    "BehavioursConfig": "anjian.pipeline.camera_config",
    "CameraPipelineConfig": "anjian.pipeline.camera_config",
    "ZoneConfig": "anjian.pipeline.camera_config",
    "AbsenceFromPostConfig": "anjian.pipeline.rules.absence_from_post",
    "PostConfig": "anjian.pipeline.rules.absence_from_post",
    "BlockedExitConfig": "anjian.pipeline.rules.blocked_exit",
    "FallenPersonConfig": "anjian.pipeline.rules.fallen_person",
    "OpenFlameConfig": "anjian.pipeline.rules.open_flame",
    "SmokingConfig": "anjian.pipeline.rules.smoking",
    "UncleanedDustConfig": "anjian.pipeline.rules.uncleaned_dust",
}
"""Names that lived here before the rule registry, by the module that holds them now."""


def __getattr__(name: str) -> object:
    if name not in _LATER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LATER[name]), name)


Anchor = Literal["bottom_center", "center", "top_center"]
"""Which point of a box decides whether an object is in a zone (people stand on their feet)."""

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_MIN_ZONE_AREA = 1e-6  # of the image: about two pixels of a 1080p frame; less is a line or a point


class PipelineModel(BaseModel):
    """Base of the pipeline config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_time_zone(name: str | None) -> str | None:
    """Reject unknown IANA names at load time rather than at the first schedule check."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        raise ValueError(
            f"unknown time zone {name!r}; expected an IANA name such as 'Asia/Shanghai'"
        ) from None
    return name


# kind and excludes are plain strings here: anjian.pipeline.camera_config.ZoneConfig narrows them to the
# zone kinds and behaviours of the registered rules (and takes this docstring as its schema description).
class BaseZoneConfig(PipelineModel):
    """A polygon in normalised image coordinates (0..1, origin top-left)."""

    id: str = Field(..., min_length=1, max_length=64, pattern=_ID_PATTERN)
    name: str = Field("", max_length=200, description="Shown in the control room.")
    kind: str = Field("generic", description="What the zone is for; rules pick the zones of their kind.")
    polygon: list[tuple[float, float]] = Field(
        ...,
        description="At least 3 (x, y) vertices, each coordinate in [0, 1], in order around the zone's edge "
        "(edges must not cross, and the zone must enclose an area).",
    )
    excludes: list[str] = Field(
        default_factory=list,
        description="Exclusion zones only: the behaviours it suppresses (a furnace: open_flame; a bed: "
        "fallen_person). Empty: every behaviour.",
    )

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(
        cls, polygon: list[tuple[float, float]], info: ValidationInfo
    ) -> list[tuple[float, float]]:
        if len(polygon) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(polygon)}")
        for i, (x, y) in enumerate(polygon):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside [0, 1]; coordinates are normalised")
        problem = _polygon_problem(polygon)
        if problem is not None:  # a zone that silently covers half its area, or none, raises false alerts
            raise ValueError(f"zone {info.data.get('id', '?')!r}: {problem}")
        return polygon

    @model_validator(mode="after")
    def _excludes_only_on_exclusions(self) -> BaseZoneConfig:
        if self.excludes and self.kind != "exclusion":
            raise ValueError(
                f"zone {self.id!r}: 'excludes' applies to kind 'exclusion' only, not {self.kind!r}"
            )
        return self


def _polygon_problem(polygon: list[tuple[float, float]]) -> str | None:
    """Why ``polygon`` cannot be a zone (its edges cross or touch, or it encloses no area), or ``None``."""
    corners: list[int] = []  # indices of the corners, a corner repeated at once (a closing one) dropped
    for i, point in enumerate(polygon):
        if not corners or point != polygon[corners[-1]]:
            corners.append(i)
    if len(corners) > 1 and polygon[corners[-1]] == polygon[corners[0]]:
        corners.pop()
    m = len(corners)
    edges = [(corners[e], corners[(e + 1) % m]) for e in range(m)]
    for (a, (i, j)), (b, (k, n)) in combinations(enumerate(edges), 2):
        if b - a not in (1, m - 1) and _segments_meet(polygon[i], polygon[j], polygon[k], polygon[n]):
            return (
                f"its edges cross (point {i} to {j} meets point {k} to {n}): list the points in order "
                "around the zone's edge (e.g. clockwise), not row by row"
            )
    area = abs(sum(polygon[i][0] * polygon[j][1] - polygon[j][0] * polygon[i][1] for i, j in edges)) / 2
    if area < _MIN_ZONE_AREA:
        return f"it encloses no area ({area:.2g} of the image): its points lie on one line or one spot"
    return None  # an edge turning back over the previous one touches another edge (or leaves no area)


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """z of (a - o) x (b - o): > 0 when o→a→b turns counter-clockwise, 0 when they are collinear."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when ``p``, collinear with ``a``-``b``, lies within that segment's bounding box."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    """True when segments ``a``-``b`` and ``c``-``d`` cross or touch."""
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and _on_segment(a, c, d))
        or (d2 == 0 and _on_segment(b, c, d))
        or (d3 == 0 and _on_segment(c, a, b))
        or (d4 == 0 and _on_segment(d, a, b))
    )


class ScheduleWindowConfig(PipelineModel):
    """One recurring window, e.g. weekdays 08:00-18:00; an end at or before the start crosses midnight."""

    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS),
        min_length=1,  # an empty list passed and made the window, and a schedule of it, never active
        description="Days the window starts on.",
    )
    start: str = Field("00:00", description="Local start time, HH:MM.")
    end: str = Field("24:00", description="Local end time, HH:MM (24:00 = midnight at the end of the day).")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"expected a time as HH:MM (00:00..24:00), got {value!r}")
        return value


class ScheduleConfig(PipelineModel):
    """Recurring active windows (a shift calendar) in a time zone, minus holidays."""

    time_zone: str | None = Field(
        None, max_length=64, description="IANA time zone; null uses the site's time zone."
    )
    windows: list[ScheduleWindowConfig] = Field(
        ..., min_length=1, max_length=64, description="Active windows."
    )
    exclude_dates: list[dt.date] = Field(
        default_factory=list, max_length=1000, description="Local dates on which no window starts (holidays)."
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return check_time_zone(value)


class EscalationConfig(PipelineModel):
    """Raise the risk colour of an incident that lasts too long."""

    after_s: float = Field(
        ..., gt=0, le=30 * 86_400, description="Incident duration after which it escalates."
    )
    severity: RiskLevel = Field(RiskLevel.RED, description="Risk colour once escalated.")


# Rule fields a behaviour may give its own default (or wording): their bounds are set here, once.
Severity = Annotated[RiskLevel, Field(description="Risk colour of the event.")]
ClearAfterS = Annotated[
    DurationS, Field(description="An incident ends after its condition has been absent this long.")
]
UpdateIntervalS = Annotated[
    DurationS, Field(description="Re-publish an ongoing incident at most this often.")
]
MinDurationS = Annotated[
    DurationOrZeroS, Field(description="The condition must also have lasted this long before raising.")
]
WindowK = Annotated[int, Field(ge=1, le=1000, description="Frames with the condition needed in the window.")]
WindowN = Annotated[int, Field(ge=1, le=1000, description="Window length, in analysed frames.")]


class RuleConfig(PipelineModel):
    """Fields every behaviour rule shares."""

    enabled: bool = Field(True, description="Run this rule on the camera.")
    severity: Severity = RiskLevel.ORANGE
    escalate: EscalationConfig | None = Field(
        None, description="Escalate an incident lasting past a threshold."
    )
    schedule: str | None = Field(
        None, max_length=64, description="Name of a camera schedule; the rule is active only inside it."
    )
    default_min_confidence: ClassVar[float] = 0.35
    """Score a detection needs when neither the site nor the model sets one."""
    min_confidence: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Ignore detections scoring below this. Unset: each class's calibrated threshold from the "
        "model's metadata, else the rule's default (0.35; smoking 0.3; absence from post 0.4).",
    )
    clear_after_s: ClearAfterS = 10.0
    update_interval_s: UpdateIntervalS = 10.0
    cooldown_s: DurationOrZeroS = Field(
        0.0,
        description="After an incident ends, the same key may not raise again for this long.",
    )

    def min_confidence_for(self, class_name: str, model_thresholds: Mapping[str, float]) -> float:
        """Score a ``class_name`` detection needs: the site's ``min_confidence``, else the model's
        calibrated threshold for the class, else the rule's default."""
        if self.min_confidence is not None:
            return self.min_confidence
        return model_thresholds.get(class_name, self.default_min_confidence)

    def named_schedules(self) -> list[tuple[str, str | None]]:
        """Camera schedules this config names, as ``(path under its behaviour, name or None)``.

        The camera checks each name exists; a rule naming more (a cleaning schedule, a
        schedule per post) adds them.
        """
        return [("schedule", self.schedule)]

    def named_zones(self) -> list[tuple[str, list[str], str]]:
        """Camera zones this config names, as ``(path under its behaviour, zone ids, kind they
        must have or "" for any)``; the camera checks each id exists and is of that kind."""
        return []

    def detector_classes(self) -> set[str]:
        """The detector classes this rule's settings name (every ``classes`` or ``*_classes`` list field).

        A model that does not detect one of them never gives the rule those detections: the
        pipeline warns at start and refuses a hot swap to a model that drops one.
        """
        named: set[str] = set()
        for name in type(self).model_fields:
            value = getattr(self, name)
            if (name == "classes" or name.endswith("_classes")) and isinstance(value, list):
                named.update(item for item in value if isinstance(item, str))
        return named


class WindowedConfig(RuleConfig):
    """A rule confirmed over ``k`` of the last ``n`` analysed frames and, optionally, a minimum duration."""

    k: WindowK = 3
    n: WindowN = 5
    min_duration_s: MinDurationS = 0.0

    @model_validator(mode="after")
    def _k_within_n(self) -> WindowedConfig:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must be <= n ({self.n})")
        return self


class ReferenceConfig(PipelineModel):
    """How a zone's reference image (clear exit, clean floor) is learned and compared."""

    width_px: int = Field(160, ge=32, le=1280, description="Width the frame is scaled to before comparing.")
    pixel_threshold: GreyLevel = Field(
        20.0,
        description="Mean grey-level difference (over a pixel's 5x5 neighbourhood of the scaled frame) at which "
        "it counts as changed from the reference.",
    )
    learn_after_s: DurationOrZeroS = Field(
        10.0,
        description="The zone must be seen unobstructed and still this long to learn it.",
    )
    still_max_diff: GreyLevel = Field(
        4.0, description="Mean frame-to-frame grey change below which the zone counts as still."
    )
    adapt_rate: FractionOrZero = Field(
        0.02, description="While clear, blend this fraction of each frame into the reference."
    )
    person_margin: float = Field(
        0.15, ge=0, le=2, description="People boxes are widened by this fraction before being masked out."
    )


class EvidenceConfig(PipelineModel):
    """The clip kept as evidence: a ring buffer of the analysed frames, JPEG-compressed and downscaled."""

    is_clip: bool = Field(True, description="Attach an MP4 clip to each new incident (a later revision).")
    clip_pre_s: float = Field(5.0, ge=0, le=120, description="Seconds of video before the confirmation.")
    clip_post_s: float = Field(5.0, ge=0, le=120, description="Seconds of video after the confirmation.")
    clip_fps: float = Field(5.0, gt=0, le=30, description="Most frames per second kept in the buffer.")
    clip_width_px: int = Field(640, ge=64, le=3840, description="Frames wider than this are scaled down.")
    jpeg_quality: int = Field(70, ge=10, le=100, description="JPEG quality of buffered frames.")
    max_buffer_mb: float = Field(32.0, gt=0, le=4096, description="Memory cap of the camera's ring buffer.")
