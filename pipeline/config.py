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

Every rule shares the ``_RuleConfig`` fields: severity (one of the four colours, with an
optional escalation), an optional schedule (by name), how an incident clears, how often
an ongoing one is re-published, and a cooldown before the same key may raise again.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anjian.cameras.config import CameraConfig
from anjian.pipeline.engine_config import EngineConfig
from anjian.pipeline.event import RiskLevel

__all__ = [
    "AbsenceFromPostConfig",
    "Anchor",
    "BehavioursConfig",
    "BlockedExitConfig",
    "CameraPipelineConfig",
    "EscalationConfig",
    "EvidenceConfig",
    "FallenPersonConfig",
    "OpenFlameConfig",
    "PostConfig",
    "ReferenceConfig",
    "ScheduleConfig",
    "ScheduleWindowConfig",
    "SmokingConfig",
    "UncleanedDustConfig",
    "ZoneConfig",
    "check_time_zone",
]

Anchor = Literal["bottom_center", "center", "top_center"]
"""Which point of a box decides whether an object is in a zone (people stand on their feet)."""

BehaviourName = Literal[
    "open_flame",
    "smoking",
    "fallen_person",
    "blocked_exit",
    "uncleaned_dust",
    "absence_from_post",
    "overcrowding",
]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _PipelineModel(BaseModel):
    """Base of the pipeline config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_time_zone(name: str | None) -> str | None:
    """Reject unknown IANA names at load time rather than at the first schedule check."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; expected an IANA name such as 'Asia/Shanghai'"
        ) from None
    return name


class ZoneConfig(_PipelineModel):
    """A polygon in normalised image coordinates (0..1, origin top-left)."""

    id: str = Field(..., min_length=1, max_length=64, pattern=_ID_PATTERN)
    name: str = Field("", max_length=200, description="Shown in the control room.")
    kind: Literal["generic", "post", "exit", "dust", "no_smoking", "exclusion"] = Field(
        "generic", description="What the zone is for; rules pick the zones of their kind."
    )
    polygon: list[tuple[float, float]] = Field(
        ..., description="At least 3 (x, y) vertices, each coordinate in [0, 1]."
    )
    excludes: list[BehaviourName] = Field(
        default_factory=list,
        description="Exclusion zones only: the behaviours it suppresses (a furnace: open_flame; a bed: "
        "fallen_person). Empty: every behaviour.",
    )

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(polygon) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(polygon)}")
        for i, (x, y) in enumerate(polygon):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside [0, 1]; coordinates are normalised")
        return polygon

    @model_validator(mode="after")
    def _excludes_only_on_exclusions(self) -> ZoneConfig:
        if self.excludes and self.kind != "exclusion":
            raise ValueError(
                f"zone {self.id!r}: 'excludes' applies to kind 'exclusion' only, not {self.kind!r}"
            )
        return self


class ScheduleWindowConfig(_PipelineModel):
    """One recurring window, e.g. weekdays 08:00-18:00; an end at or before the start crosses midnight."""

    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS), description="Days the window starts on."
    )
    start: str = Field("00:00", description="Local start time, HH:MM.")
    end: str = Field("24:00", description="Local end time, HH:MM (24:00 = midnight at the end of the day).")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"expected a time as HH:MM (00:00..24:00), got {value!r}")
        return value


class ScheduleConfig(_PipelineModel):
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


class EscalationConfig(_PipelineModel):
    """Raise the risk colour of an incident that lasts too long."""

    after_s: float = Field(
        ..., gt=0, le=30 * 86_400, description="Incident duration after which it escalates."
    )
    severity: RiskLevel = Field(RiskLevel.RED, description="Risk colour once escalated.")


class _RuleConfig(_PipelineModel):
    """Fields every behaviour rule shares."""

    enabled: bool = Field(True, description="Run this rule on the camera.")
    severity: RiskLevel = Field(RiskLevel.ORANGE, description="Risk colour of the event.")
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
    clear_after_s: float = Field(
        10.0, gt=0, le=86_400, description="An incident ends after its condition has been absent this long."
    )
    update_interval_s: float = Field(
        10.0, gt=0, le=86_400, description="Re-publish an ongoing incident at most this often."
    )
    cooldown_s: float = Field(
        0.0,
        ge=0,
        le=86_400,
        description="After an incident ends, the same key may not raise again for this long.",
    )

    def min_confidence_for(self, class_name: str, model_thresholds: Mapping[str, float]) -> float:
        """Score a ``class_name`` detection needs: the site's ``min_confidence``, else the model's
        calibrated threshold for the class, else the rule's default."""
        if self.min_confidence is not None:
            return self.min_confidence
        return model_thresholds.get(class_name, self.default_min_confidence)


class _WindowedConfig(_RuleConfig):
    """A rule confirmed over ``k`` of the last ``n`` analysed frames and, optionally, a minimum duration."""

    k: int = Field(3, ge=1, le=1000, description="Frames with the condition needed in the window.")
    n: int = Field(5, ge=1, le=1000, description="Window length, in analysed frames.")
    min_duration_s: float = Field(
        0.0, ge=0, le=86_400, description="The condition must also have lasted this long before raising."
    )

    @model_validator(mode="after")
    def _k_within_n(self) -> _WindowedConfig:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must be <= n ({self.n})")
        return self


class OpenFlameConfig(_WindowedConfig):
    """Open flame: a fire-class detection seen in ``k`` of the last ``n`` analysed frames, that flickers."""

    severity: RiskLevel = Field(RiskLevel.RED, description="Risk colour of the event.")
    classes: list[str] = Field(
        ["fire"],
        min_length=1,
        description="Detector classes that count as flame (add 'smoke' to count smoke).",
    )
    update_interval_s: float = Field(
        5.0, gt=0, le=3600, description="Re-publish an ongoing incident this often."
    )
    is_temporal_check: bool = Field(
        True,
        description="Reject flames that do not change over the window (a static orange lamp, a painted sign, "
        "a steady reflection): a real flame flickers, in its box's size and brightness or in the pixels inside.",
    )
    min_variation: float = Field(
        0.03,
        ge=0,
        le=1,
        description="Smallest coefficient of variation (std/mean) of box area or brightness that counts as "
        "flickering.",
    )
    min_moving_fraction: float = Field(
        0.015,
        ge=0,
        le=1,
        description="Smallest median fraction of the flame box's pixels that move between flame frames (grey "
        "level changed by more than 25, brightness shifts and one-pixel camera shake discounted) that counts as "
        "flickering. Real flames measure 0.018 to 0.55, a still scene under sensor noise 0.000, shaken by a "
        "pixel 0.013. It is what a flame filling the view passes on: its box clipped by the border, bright all "
        "over.",
    )
    zones: list[str] = Field(default_factory=list, description="Only flames in these zones; empty: anywhere.")


class SmokingConfig(_WindowedConfig):
    """Smoking: a cigarette near a person's upper body (or a direct 'smoking' class), k of n frames."""

    k: int = Field(3, ge=1, le=1000, description="Frames with smoking needed in the window.")
    n: int = Field(6, ge=1, le=1000, description="Window length, in analysed frames.")
    default_min_confidence: ClassVar[float] = 0.3
    cigarette_classes: list[str] = Field(["cigarette"], description="Classes that must sit near a person.")
    smoking_classes: list[str] = Field(
        default_factory=list, description="Classes that already mean 'a person smoking' (no person needed)."
    )
    person_classes: list[str] = Field(["person"], min_length=1, description="Classes that are people.")
    upper_body_fraction: float = Field(
        0.6, gt=0, le=1, description="Top fraction of a person box that counts as the upper body."
    )
    margin_fraction: float = Field(
        0.25, ge=0, le=2, description="The upper-body box is widened by this fraction of the person width."
    )
    is_no_smoking_zones_only: bool = Field(
        False, description="Only raise for people standing in zones of kind no_smoking."
    )

    @model_validator(mode="after")
    def _some_class(self) -> SmokingConfig:
        if not self.cigarette_classes and not self.smoking_classes:
            raise ValueError("smoking needs cigarette_classes or smoking_classes")
        return self


class FallenPersonConfig(_WindowedConfig):
    """Fallen person: a lying person (class and/or box geometry), persisting at least ``min_duration_s``."""

    severity: RiskLevel = Field(RiskLevel.RED, description="Risk colour of the event.")
    k: int = Field(3, ge=1, le=1000, description="Lying frames needed in the window.")
    n: int = Field(5, ge=1, le=1000, description="Window length, in analysed frames.")
    min_duration_s: float = Field(5.0, ge=0, le=3600, description="Lying must last this long.")
    fallen_classes: list[str] = Field(["fallen_person"], description="Classes that mean a person lying down.")
    person_classes: list[str] = Field(
        ["person"], description="Upright-person classes, for the geometry check."
    )
    is_geometry: bool = Field(True, description="Also count a person box much wider than tall as lying.")
    lying_aspect_ratio: float = Field(
        1.3, gt=0.5, le=10, description="Width / height at or above which a person box counts as lying."
    )
    is_upright_first: bool = Field(
        False,
        description="Geometry only counts for a track first seen upright (needs tracking); the fallen "
        "class always counts.",
    )
    match_iou: float = Field(
        0.3, gt=0, le=1, description="Box overlap that links a lying person across frames without a track id."
    )


class ReferenceConfig(_PipelineModel):
    """How a zone's reference image (clear exit, clean floor) is learned and compared."""

    width_px: int = Field(160, ge=32, le=1280, description="Width the frame is scaled to before comparing.")
    pixel_threshold: float = Field(
        20.0,
        gt=0,
        le=255,
        description="Mean grey-level difference (over a pixel's 5x5 neighbourhood of the scaled frame) at which "
        "it counts as changed from the reference.",
    )
    learn_after_s: float = Field(
        10.0,
        ge=0,
        le=86_400,
        description="The zone must be seen unobstructed and still this long to learn it.",
    )
    still_max_diff: float = Field(
        4.0, gt=0, le=255, description="Mean frame-to-frame grey change below which the zone counts as still."
    )
    adapt_rate: float = Field(
        0.02, ge=0, le=1, description="While clear, blend this fraction of each frame into the reference."
    )
    person_margin: float = Field(
        0.15, ge=0, le=2, description="People boxes are widened by this fraction before being masked out."
    )


class BlockedExitConfig(_RuleConfig):
    """Blocked exit: an exit zone occupied over a fraction of its area for at least ``min_duration_s``."""

    obstacle_classes: list[str] = Field(
        ["pallet", "forklift", "box", "cart"], description="Classes that obstruct (a person never does)."
    )
    person_classes: list[str] = Field(
        ["person"], description="Classes masked out of the reference comparison."
    )
    min_occupied_fraction: float = Field(
        0.3, gt=0, le=1, description="Fraction of the zone covered by obstacles that counts as blocked."
    )
    min_duration_s: float = Field(120.0, ge=0, le=86_400, description="Blocked this long before raising.")
    max_gap_s: float = Field(
        10.0, ge=0, le=3600, description="A clear spell shorter than this does not restart the duration."
    )
    is_reference: bool = Field(
        True, description="Also compare the zone with its learned 'clear' image (finds unknown objects)."
    )
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    clear_after_s: float = Field(
        30.0, gt=0, le=86_400, description="The incident ends after this long clear."
    )
    update_interval_s: float = Field(
        60.0, gt=0, le=86_400, description="Re-publish an ongoing incident this often."
    )
    zones: list[str] = Field(
        default_factory=list, description="Exit zones to watch; empty: every 'exit' zone."
    )


class UncleanedDustConfig(_RuleConfig):
    """Uncleaned dust: a dust zone dirtier than its clean reference after cleaning, or a dust detection."""

    severity: RiskLevel = Field(RiskLevel.YELLOW, description="Risk colour of the event.")
    dust_classes: list[str] = Field(["dust"], description="Detector classes that are dust.")
    k: int = Field(3, ge=1, le=1000, description="Frames with a dust detection needed in the window.")
    n: int = Field(5, ge=1, le=1000, description="Window length, in analysed frames.")
    is_reference: bool = Field(True, description="Score each zone against its learned clean image.")
    reference: ReferenceConfig = Field(
        default_factory=lambda: ReferenceConfig(adapt_rate=0.0),
        description="Clean-image parameters; adapt_rate 0 so slowly settling dust is not learned as clean "
        "(the reference is refreshed instead at each check that finds the zone clean).",
    )
    score_threshold: float = Field(
        0.3, gt=0, le=1, description="Dirtiness (fraction of the zone changed vs clean) that raises."
    )
    cleaning_schedule: str | None = Field(
        None,
        max_length=64,
        description="Schedule of cleaning windows: the score is checked at the end of each. Null: checked "
        "every check_interval_s.",
    )
    check_interval_s: float = Field(
        600.0, gt=0, le=86_400, description="Check period without cleaning windows."
    )
    max_occluded_fraction: float = Field(
        0.5, ge=0, le=1, description="Defer a check while people cover more than this fraction of the zone."
    )
    clear_after_s: float = Field(60.0, gt=0, le=86_400, description="Resolved after being clean this long.")
    update_interval_s: float = Field(
        300.0, gt=0, le=86_400, description="Re-publish an ongoing incident this often."
    )
    zones: list[str] = Field(
        default_factory=list, description="Dust zones to watch; empty: every 'dust' zone."
    )


class PostConfig(_PipelineModel):
    """One staffed post (or a room with a head-count limit)."""

    zone: str = Field(..., min_length=1, max_length=64, description="Zone id of the post.")
    min_people: int = Field(1, ge=0, le=1000, description="Fewer people than this for too long: absence.")
    max_people: int | None = Field(
        None, ge=0, le=10_000, description="More than this for too long: overcrowding."
    )
    schedule: str | None = Field(
        None, max_length=64, description="When the post must be staffed; null: always."
    )

    @model_validator(mode="after")
    def _bounds(self) -> PostConfig:
        if self.max_people is not None and self.max_people < self.min_people:
            raise ValueError(f"max_people ({self.max_people}) must be >= min_people ({self.min_people})")
        return self


class AbsenceFromPostConfig(_RuleConfig):
    """Absence from post (and its twin, overcrowding): the head count of a zone out of bounds for too long."""

    severity: RiskLevel = Field(RiskLevel.YELLOW, description="Risk colour of absence events.")
    overcrowding_severity: RiskLevel = Field(
        RiskLevel.ORANGE, description="Risk colour of overcrowding events."
    )
    person_classes: list[str] = Field(["person"], min_length=1, description="Classes counted as people.")
    default_min_confidence: ClassVar[float] = 0.4
    min_duration_s: float = Field(
        300.0, ge=0, le=86_400, description="Out of bounds this long before raising."
    )
    restored_after_s: float = Field(
        3.0,
        ge=0,
        le=3600,
        description="The count must be back in bounds this long to end an incident or restart the timer "
        "(a person missed on one frame, or a passer-by, changes nothing).",
    )
    clear_after_s: float = Field(
        0.1,
        gt=0,
        le=86_400,
        description="Unused by this rule: restored_after_s decides when an incident ends.",
    )
    update_interval_s: float = Field(
        60.0, gt=0, le=86_400, description="Re-publish an ongoing incident this often."
    )
    posts: list[PostConfig] = Field(
        default_factory=list, description="Posts to watch; empty: every 'post' zone with min_people 1."
    )


class BehavioursConfig(_PipelineModel):
    """The rules run on one camera, with their parameters; absent means disabled."""

    open_flame: OpenFlameConfig | None = Field(None, description="Fire seen in k of n frames, flickering.")
    smoking: SmokingConfig | None = Field(None, description="Cigarette at a person's upper body.")
    fallen_person: FallenPersonConfig | None = Field(None, description="A person lying for seconds.")
    blocked_exit: BlockedExitConfig | None = Field(None, description="Exit zone obstructed for minutes.")
    uncleaned_dust: UncleanedDustConfig | None = Field(None, description="Dust zone dirty after cleaning.")
    absence_from_post: AbsenceFromPostConfig | None = Field(
        None, description="Post head count out of bounds."
    )


class EvidenceConfig(_PipelineModel):
    """The clip kept as evidence: a ring buffer of the analysed frames, JPEG-compressed and downscaled."""

    is_clip: bool = Field(True, description="Attach an MP4 clip to each new incident (a later revision).")
    clip_pre_s: float = Field(5.0, ge=0, le=120, description="Seconds of video before the confirmation.")
    clip_post_s: float = Field(5.0, ge=0, le=120, description="Seconds of video after the confirmation.")
    clip_fps: float = Field(5.0, gt=0, le=30, description="Most frames per second kept in the buffer.")
    clip_width_px: int = Field(640, ge=64, le=3840, description="Frames wider than this are scaled down.")
    jpeg_quality: int = Field(70, ge=10, le=100, description="JPEG quality of buffered frames.")
    max_buffer_mb: float = Field(32.0, gt=0, le=4096, description="Memory cap of the camera's ring buffer.")


def _default_anchors() -> dict[str, Anchor]:
    """People are in a zone where their feet are."""
    return {"person": "bottom_center"}


class CameraPipelineConfig(CameraConfig):
    """A camera as the site YAML describes it: its source plus its zones, schedules, behaviours, evidence."""

    zones: list[ZoneConfig] = Field(default_factory=list, description="Named polygons of this view.")
    anchors: dict[str, Anchor] = Field(
        default_factory=_default_anchors,
        description="Point of a box that decides zone membership, per class; unlisted classes: center.",
    )
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict, description="Named schedules.")
    behaviours: BehavioursConfig = Field(default_factory=BehavioursConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    engine: EngineConfig = Field(
        default_factory=EngineConfig, description="Tracking and motion gating of this camera's frames."
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> CameraPipelineConfig:
        zones: dict[str, ZoneConfig] = {}
        for zone in self.zones:
            if zone.id in zones:
                raise ValueError(f"zone id {zone.id!r} appears twice on camera {self.id!r}")
            zones[zone.id] = zone
        b = self.behaviours
        rules: list[tuple[str, _RuleConfig | None]] = [
            ("open_flame", b.open_flame),
            ("smoking", b.smoking),
            ("fallen_person", b.fallen_person),
            ("blocked_exit", b.blocked_exit),
            ("uncleaned_dust", b.uncleaned_dust),
            ("absence_from_post", b.absence_from_post),
        ]
        for name, rule in rules:
            if rule is None:
                continue
            self._check_schedule(f"behaviours.{name}.schedule", rule.schedule)
        if b.uncleaned_dust is not None:
            self._check_schedule(
                "behaviours.uncleaned_dust.cleaning_schedule", b.uncleaned_dust.cleaning_schedule
            )
        wanted: list[tuple[str, list[str], str]] = []
        if b.open_flame is not None:
            wanted.append(("open_flame.zones", b.open_flame.zones, ""))
        if b.blocked_exit is not None:
            wanted.append(("blocked_exit.zones", b.blocked_exit.zones, "exit"))
        if b.uncleaned_dust is not None:
            wanted.append(("uncleaned_dust.zones", b.uncleaned_dust.zones, "dust"))
        if b.absence_from_post is not None:
            for post in b.absence_from_post.posts:
                self._check_schedule(
                    f"behaviours.absence_from_post.posts[{post.zone}].schedule", post.schedule
                )
            wanted.append(("absence_from_post.posts", [p.zone for p in b.absence_from_post.posts], ""))
        for where, ids, kind in wanted:
            for zone_id in ids:
                if zone_id not in zones:
                    raise ValueError(f"behaviours.{where}: no zone {zone_id!r} on camera {self.id!r}")
                if kind and zones[zone_id].kind != kind:
                    raise ValueError(
                        f"behaviours.{where}: zone {zone_id!r} is of kind {zones[zone_id].kind!r}, expected {kind!r}"
                    )
        return self

    def _check_schedule(self, where: str, name: str | None) -> None:
        if name is not None and name not in self.schedules:
            known = sorted(self.schedules) or "none"
            raise ValueError(f"{where}: no schedule {name!r} on camera {self.id!r} (known: {known})")
