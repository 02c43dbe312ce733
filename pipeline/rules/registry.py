"""The registry of behaviour rules, and everything derived from it.

``REGISTRY`` lists the rule modules' specs once. From a registry come the models of a
camera's ``behaviours:`` section (one optional field per spec) and of a zone (the zone
kinds the specs watch, the behaviours an exclusion zone may name), and ``build_rules``,
which builds each enabled rule of a camera. A registry with one more spec is all a new
behaviour needs (see ``anjian.pipeline.camera_config.camera_config_model``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, create_model

from anjian.pipeline.config import BaseZoneConfig, PipelineModel, RuleConfig
from anjian.pipeline.incidents import EventContext
from anjian.pipeline.rules import (
    absence_from_post,
    blocked_exit,
    fallen_person,
    open_flame,
    smoking,
    uncleaned_dust,
)
from anjian.pipeline.rules.base import BaseRule, RuleEnvironment
from anjian.pipeline.rules.spec import BehaviourSpec
from anjian.pipeline.schedule import Schedule
from anjian.pipeline.zones import ZoneSet

if TYPE_CHECKING:
    from anjian.pipeline.camera_config import CameraPipelineConfig

__all__ = [
    "COMMON_ZONE_KINDS",
    "REGISTRY",
    "BaseBehavioursConfig",
    "BehaviourRegistry",
    "build_environment",
    "build_rules",
    "classes_not_detected",
]

COMMON_ZONE_KINDS = ("generic", "exclusion")
"""Zone kinds of every camera: a plain named area, and an area whose detections rules ignore."""


# A registry's behaviours_model adds one optional field per spec; the docstring is its schema description.
class BaseBehavioursConfig(PipelineModel):
    """The rules run on one camera, with their parameters; absent means disabled."""

    specs: ClassVar[tuple[BehaviourSpec[Any], ...]] = ()
    """The specs whose sections this model holds, in registry order."""

    if TYPE_CHECKING:  # the sections are fields of the registry's model, unknown to the type checker

        def __init__(self, **sections: RuleConfig | dict[str, Any] | None) -> None: ...

        def __getattr__(self, key: str) -> RuleConfig | None: ...

    def configured(self) -> list[tuple[BehaviourSpec[Any], RuleConfig]]:
        """Each spec whose section is present, with its config (enabled or not), in registry order."""
        present = ((spec, getattr(self, spec.key)) for spec in self.specs)
        return [(spec, config) for spec, config in present if config is not None]


@dataclass(frozen=True)
class BehaviourRegistry:
    """The behaviours a site may configure, in the order the schema lists them.

    Attributes:
        specs: One spec per behaviour, keys unique (two may raise the same event behaviour:
            a head-count limit and absence from post both raise overcrowding).
    """

    specs: tuple[BehaviourSpec[Any], ...]

    def __post_init__(self) -> None:
        keys = [spec.key for spec in self.specs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"behaviour keys must be unique, got {keys}")

    def with_spec(self, spec: BehaviourSpec[Any]) -> BehaviourRegistry:
        """This registry plus ``spec`` (listed last)."""
        return BehaviourRegistry((*self.specs, spec))

    @property
    def zone_kinds(self) -> tuple[str, ...]:
        """``generic``, the kinds the specs watch (in registry order, once each), then ``exclusion``."""
        watched = dict.fromkeys(kind for spec in self.specs for kind in spec.zone_kinds)
        return (
            COMMON_ZONE_KINDS[0],
            *(k for k in watched if k not in COMMON_ZONE_KINDS),
            COMMON_ZONE_KINDS[1],
        )

    @property
    def raised(self) -> tuple[str, ...]:
        """Wire values of the event behaviours the specs raise, once each (what an exclusion zone may name)."""
        return tuple(dict.fromkeys(behaviour.value for spec in self.specs for behaviour in spec.raises))

    @cached_property
    def behaviours_model(self) -> type[BaseBehavioursConfig]:
        """The model of a camera's ``behaviours:`` section: one optional field per spec, named by its key."""
        fields: dict[str, Any] = {
            spec.key: (spec.config | None, Field(None, description=spec.description)) for spec in self.specs
        }
        model = create_model(
            "BehavioursConfig",
            __base__=BaseBehavioursConfig,
            __doc__=BaseBehavioursConfig.__doc__,
            __module__="anjian.pipeline.camera_config",
            **fields,
        )
        model.specs = self.specs
        return model

    @cached_property
    def zone_model(self) -> type[BaseZoneConfig]:
        """``BaseZoneConfig`` with ``kind`` one of ``zone_kinds`` and ``excludes`` naming raised behaviours."""
        base = BaseZoneConfig.model_fields
        literal: Any = Literal  # subscripted with a run-time tuple, which the type checker cannot follow
        generic_list: Any = list
        kind, excludes = literal[self.zone_kinds], generic_list[literal[self.raised]]
        return create_model(
            "ZoneConfig",
            __base__=BaseZoneConfig,
            __doc__=BaseZoneConfig.__doc__,
            __module__="anjian.pipeline.camera_config",
            kind=(kind, base["kind"]),
            excludes=(excludes, base["excludes"]),
        )


REGISTRY = BehaviourRegistry(
    (
        open_flame.SPEC,
        smoking.SPEC,
        fallen_person.SPEC,
        blocked_exit.SPEC,
        uncleaned_dust.SPEC,
        absence_from_post.SPEC,
    )
)
"""The behaviours anjian ships; a new rule module adds its ``SPEC`` here."""


def build_environment(
    camera: CameraPipelineConfig, context: EventContext, class_thresholds: Mapping[str, float] | None = None
) -> RuleEnvironment:
    """The zones, anchors and schedules of one camera (schedules in the site's time zone by default),
    and the running model's calibrated per-class thresholds."""
    return RuleEnvironment(
        context=context,
        zones=ZoneSet(camera.zones, camera.anchors),
        schedules={name: Schedule(cfg, context.time_zone) for name, cfg in camera.schedules.items()},
        class_thresholds=dict(class_thresholds or {}),
    )


def classes_not_detected(
    cameras: Iterable[CameraPipelineConfig], class_names: Iterable[str]
) -> dict[tuple[str, str], list[str]]:
    """Classes the enabled rules of ``cameras`` name that a model with ``class_names`` does not detect.

    Returns:
        ``(behaviour key, class) -> camera ids``, sorted: each rule never sees those detections.
    """
    detected = set(class_names)
    missing: dict[tuple[str, str], list[str]] = {}
    for camera in cameras:
        for spec, config in camera.behaviours.configured():
            if config.enabled:
                for name in sorted(config.detector_classes() - detected):
                    missing.setdefault((spec.key, name), []).append(camera.id)
    return dict(sorted(missing.items()))


def build_rules(
    camera: CameraPipelineConfig, context: EventContext, class_thresholds: Mapping[str, float] | None = None
) -> list[BaseRule]:
    """Instantiate the enabled behaviour rules of one camera, for a model with ``class_thresholds``.

    The rules come from the specs of the camera's ``behaviours`` model, in registry order.
    """
    env = build_environment(camera, context, class_thresholds)
    return [spec.rule(config, env) for spec, config in camera.behaviours.configured() if config.enabled]
