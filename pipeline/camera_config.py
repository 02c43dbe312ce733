"""A camera as the site YAML describes it, with the models that depend on which behaviours exist.

``ZoneConfig`` (its kinds and exclusions) and ``BehavioursConfig`` (one section per rule)
are derived from the rule registry (``anjian.pipeline.rules.registry.REGISTRY``);
``CameraPipelineConfig`` checks that every zone and schedule a rule names exists, asking
each rule's config which it names. ``camera_config_model`` builds the same camera model
for another registry (a site with one more behaviour, a test's toy rule).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model, model_validator

from anjian.cameras.config import CameraConfig
from anjian.pipeline.config import Anchor, BaseZoneConfig, EvidenceConfig, ScheduleConfig
from anjian.pipeline.engine_config import EngineConfig
from anjian.pipeline.rules.registry import REGISTRY, BaseBehavioursConfig, BehaviourRegistry

__all__ = ["BehavioursConfig", "CameraPipelineConfig", "ZoneConfig", "camera_config_model"]

if TYPE_CHECKING:  # the registry builds them at run time; statically they are their bases
    ZoneConfig = BaseZoneConfig
    BehavioursConfig = BaseBehavioursConfig
else:
    ZoneConfig = REGISTRY.zone_model
    BehavioursConfig = REGISTRY.behaviours_model


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
        zones: dict[str, BaseZoneConfig] = {}
        for zone in self.zones:
            if zone.id in zones:
                raise ValueError(f"zone id {zone.id!r} appears twice on camera {self.id!r}")
            zones[zone.id] = zone
        configured = self.behaviours.configured()
        for spec, rule in configured:
            for where, name in rule.named_schedules():
                self._check_schedule(f"behaviours.{spec.key}.{where}", name)
        for spec, rule in configured:
            for where, ids, kind in rule.named_zones():
                for zone_id in ids:
                    if zone_id not in zones:
                        raise ValueError(
                            f"behaviours.{spec.key}.{where}: no zone {zone_id!r} on camera {self.id!r}"
                        )
                    if kind and zones[zone_id].kind != kind:
                        raise ValueError(
                            f"behaviours.{spec.key}.{where}: zone {zone_id!r} is of kind "
                            f"{zones[zone_id].kind!r}, expected {kind!r}"
                        )
        return self

    def _check_schedule(self, where: str, name: str | None) -> None:
        if name is not None and name not in self.schedules:
            known = sorted(self.schedules) or "none"
            raise ValueError(f"{where}: no schedule {name!r} on camera {self.id!r} (known: {known})")


@functools.cache
def camera_config_model(registry: BehaviourRegistry) -> type[CameraPipelineConfig]:
    """``CameraPipelineConfig`` for the behaviours of ``registry``: its zones and behaviours sections
    take their kinds and rules from it (``REGISTRY`` gives ``CameraPipelineConfig`` itself)."""
    if registry == REGISTRY:
        return CameraPipelineConfig
    fields = CameraPipelineConfig.model_fields
    overrides: dict[str, Any] = {
        "zones": (list[registry.zone_model], fields["zones"]),  # type: ignore[name-defined]
        "behaviours": (registry.behaviours_model, Field(default_factory=registry.behaviours_model)),
    }
    return create_model("CameraPipelineConfig", __base__=CameraPipelineConfig, **overrides)
