"""Behaviour rules, one module per behaviour, and the factory that builds a camera's rules."""

from pipeline.config import CameraPipelineConfig
from pipeline.incidents import EventContext
from pipeline.rules.base import Rule, boxes_of
from pipeline.rules.open_flame import OpenFlameRule

__all__ = ["OpenFlameRule", "Rule", "boxes_of", "build_rules"]


def build_rules(camera: CameraPipelineConfig, context: EventContext) -> list[Rule]:
    """Instantiate the enabled behaviour rules of one camera."""
    rules: list[Rule] = []
    behaviours = camera.behaviours
    if behaviours.open_flame is not None and behaviours.open_flame.enabled:
        rules.append(OpenFlameRule(behaviours.open_flame, context))
    return rules
