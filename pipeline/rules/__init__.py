"""Behaviour rules, one module per behaviour, the registry of their specs and the factory that builds a
camera's rules (``anjian.pipeline.rules.registry``)."""

from anjian.pipeline.rules.absence_from_post import AbsenceFromPostRule
from anjian.pipeline.rules.base import BaseRule, Confirmation, Rule, RuleEnvironment, boxes_of
from anjian.pipeline.rules.blocked_exit import BlockedExitRule
from anjian.pipeline.rules.fallen_person import FallenPersonRule
from anjian.pipeline.rules.open_flame import OpenFlameRule
from anjian.pipeline.rules.registry import REGISTRY, BehaviourRegistry, build_environment, build_rules
from anjian.pipeline.rules.smoking import SmokingRule
from anjian.pipeline.rules.spec import BehaviourSpec
from anjian.pipeline.rules.uncleaned_dust import UncleanedDustRule

__all__ = [
    "REGISTRY",
    "AbsenceFromPostRule",
    "BaseRule",
    "BehaviourRegistry",
    "BehaviourSpec",
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
