"""Typed configuration of zones and behaviours, per camera (composed into the site YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cameras.config import CameraConfig
from pipeline.event import RiskLevel

__all__ = ["BehavioursConfig", "CameraPipelineConfig", "OpenFlameConfig", "ZoneConfig"]


class _PipelineModel(BaseModel):
    """Base of the pipeline config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneConfig(_PipelineModel):
    """A polygon in normalised image coordinates (0..1, origin top-left)."""

    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str = Field("", max_length=200, description="Shown in the control room.")
    kind: Literal["generic", "post", "exit", "dust", "no_smoking", "exclusion"] = Field(
        "generic", description="What the zone is for; rules pick the zones of their kind."
    )
    polygon: list[tuple[float, float]] = Field(
        ..., description="At least 3 (x, y) vertices, each coordinate in [0, 1]."
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


class OpenFlameConfig(_PipelineModel):
    """Open flame: a fire-class detection seen in ``k`` of the last ``n`` analysed frames."""

    enabled: bool = Field(True, description="Run this rule on the camera.")
    classes: list[str] = Field(["fire"], min_length=1, description="Detector classes that count as flame.")
    min_confidence: float = Field(0.35, gt=0, lt=1, description="Ignore flame detections below this score.")
    k: int = Field(3, ge=1, le=1000, description="Frames with flame needed in the window.")
    n: int = Field(5, ge=1, le=1000, description="Window length, in analysed frames.")
    clear_after_s: float = Field(
        10.0, gt=0, le=3600, description="The incident ends after this long with no flame frame."
    )
    update_interval_s: float = Field(
        5.0, gt=0, le=3600, description="Re-publish an ongoing incident at most this often."
    )
    severity: RiskLevel = Field(RiskLevel.RED, description="Risk colour of the event.")

    @model_validator(mode="after")
    def _k_within_n(self) -> OpenFlameConfig:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must be <= n ({self.n})")
        return self


class BehavioursConfig(_PipelineModel):
    """The rules run on one camera, with their parameters; absent means disabled."""

    open_flame: OpenFlameConfig | None = Field(None, description="Fire seen in k of n frames.")


class CameraPipelineConfig(CameraConfig):
    """A camera as the site YAML describes it: its source plus its zones and behaviours."""

    zones: list[ZoneConfig] = Field(default_factory=list, description="Named polygons of this view.")
    behaviours: BehavioursConfig = Field(default_factory=BehavioursConfig)

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> CameraPipelineConfig:
        seen: set[str] = set()
        for zone in self.zones:
            if zone.id in seen:
                raise ValueError(f"zone id {zone.id!r} appears twice on camera {self.id!r}")
            seen.add(zone.id)
        return self
