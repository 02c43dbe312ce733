"""What a behaviour rule module declares about itself, in one place: ``BehaviourSpec``.

Each rule module ends with one ``SPEC``: the key of its section under a camera's
``behaviours:`` in the site YAML, its config model, the rule class (or any factory)
built from that config, the event behaviours it raises, and the zone kinds it watches.
``anjian.pipeline.rules.registry`` collects the specs; the ``behaviours:`` model, the
zone kinds a zone may have, the behaviours an exclusion zone may name and
``build_rules`` are all derived from them, so a new behaviour is one module (and its
tests) plus, when it raises a new kind of event, its wire value in ``Behaviour``.

Rule modules load with the site config (``anjian config check`` and the service's start-up
import them for their config models), so a rule imports heavy libraries (OpenCV,
supervision) inside the functions that use them; ``tests/service/test_startup.py`` checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from anjian.pipeline.config import RuleConfig
from anjian.pipeline.event import Behaviour
from anjian.pipeline.rules.base import BaseRule, RuleEnvironment

__all__ = ["BehaviourSpec"]

C = TypeVar("C", bound=RuleConfig)


@dataclass(frozen=True)
class BehaviourSpec(Generic[C]):
    """One behaviour rule as the registry knows it.

    Attributes:
        key: Its section under a camera's ``behaviours:`` (snake case, e.g. ``"open_flame"``);
            by convention the wire value of the first behaviour it raises.
        config: Its pydantic config model (unknown keys are errors, like every pipeline model).
        rule: Builds the rule from its config and the camera's environment (the rule class).
        description: One line for the ``behaviours:`` section's JSON schema.
        raises: The event behaviours it raises, main one first (absence from post also
            raises overcrowding); an exclusion zone may name any of them.
        zone_kinds: Zone kinds it watches, besides ``generic`` and ``exclusion`` which every
            camera may use (blocked exit: ``exit``).
    """

    key: str
    config: type[C]
    rule: Callable[[C, RuleEnvironment], BaseRule]
    description: str
    raises: tuple[Behaviour, ...]
    zone_kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.key.isidentifier() or not self.key.islower():
            raise ValueError(f"behaviour key {self.key!r} must be a lower-case identifier (a YAML key)")
        if not self.raises:
            raise ValueError(f"behaviour {self.key!r} raises no event behaviour")
