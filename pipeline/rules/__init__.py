"""Behaviour rules, one module per behaviour, and the factory that builds a camera's rules."""

from collections.abc import Mapping

from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.incidents import EventContext
from anjian.pipeline.rules.absence_from_post import AbsenceFromPostRule
from anjian.pipeline.rules.base import BaseRule, Confirmation, Rule, RuleEnvironment, boxes_of
from anjian.pipeline.rules.blocked_exit import BlockedExitRule
from anjian.pipeline.rules.fallen_person import FallenPersonRule
from anjian.pipeline.rules.open_flame import OpenFlameRule
from anjian.pipeline.rules.smoking import SmokingRule
from anjian.pipeline.rules.uncleaned_dust import UncleanedDustRule
from anjian.pipeline.schedule import Schedule
from anjian.pipeline.zones import ZoneSet

__all__ = [
    "AbsenceFromPostRule",
    "BaseRule",
    "BlockedExitRule",
    "Confirmation",
    "FallenPersonRule",
    "OpenFlameRule",
    "Rule",
    "RuleEnvironment",
    "SmokingRule",
    "UncleanedDustRule",
    "boxes_of",
    "build_environment",
    "build_rules",
]


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


def build_rules(
    camera: CameraPipelineConfig, context: EventContext, class_thresholds: Mapping[str, float] | None = None
) -> list[BaseRule]:
    """Instantiate the enabled behaviour rules of one camera, for a model with ``class_thresholds``."""
    env = build_environment(camera, context, class_thresholds)
    b = camera.behaviours
    candidates: list[BaseRule | None] = [
        OpenFlameRule(b.open_flame, env) if b.open_flame and b.open_flame.enabled else None,
        SmokingRule(b.smoking, env) if b.smoking and b.smoking.enabled else None,
        FallenPersonRule(b.fallen_person, env) if b.fallen_person and b.fallen_person.enabled else None,
        BlockedExitRule(b.blocked_exit, env) if b.blocked_exit and b.blocked_exit.enabled else None,
        UncleanedDustRule(b.uncleaned_dust, env) if b.uncleaned_dust and b.uncleaned_dust.enabled else None,
        AbsenceFromPostRule(b.absence_from_post, env)
        if b.absence_from_post and b.absence_from_post.enabled
        else None,
    ]
    return [rule for rule in candidates if rule is not None]
