"""The alert lifecycle: states, the actions that move between them, and the webhook kinds they announce.

::

    raised ──acknowledge──▶ acknowledged ──dispatch──▶ dispatched
      │                        │   │                       │   │
      │                        │   └──────resolve──────────┼───┼──▶ resolved ──close──▶ closed
      └──────false_alarm───────┴──────────false_alarm──────┴───┴──▶ false_alarm ─close─▶ closed

A control room acknowledges an alert, dispatches someone (assignee and a work-order
note), and records the disposal (resolved, with a note) or that it was a false alarm
(with the reason); a supervisor then closes it. An operator who settles an alert on
the spot may resolve it straight after acknowledging it, and mark an alert a false alarm in
one step, even before acknowledging it (the control room sees a reflection: one click, with
the reason; leaving ``raised`` counts as the acknowledgement for response times).
Escalation (an unacknowledged alert past its deadline) is not a transition: the
alert stays raised, one colour higher.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from anjian.pipeline.event import RiskLevel

__all__ = [
    "EVENT_KINDS",
    "Action",
    "AlertState",
    "allowed_actions",
    "check_event_kinds",
    "escalated_severity",
    "kind_of_action",
    "next_state",
]


class AlertState(StrEnum):
    """Where an alert stands in the control room."""

    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"
    CLOSED = "closed"


class Action(StrEnum):
    """What an operator does to an alert; each names the state it leads to."""

    ACKNOWLEDGE = "acknowledge"
    DISPATCH = "dispatch"
    RESOLVE = "resolve"
    FALSE_ALARM = "false_alarm"
    CLOSE = "close"


_TRANSITIONS: Final[dict[AlertState, dict[Action, AlertState]]] = {
    AlertState.RAISED: {
        Action.ACKNOWLEDGE: AlertState.ACKNOWLEDGED,
        Action.FALSE_ALARM: AlertState.FALSE_ALARM,
    },
    AlertState.ACKNOWLEDGED: {
        Action.DISPATCH: AlertState.DISPATCHED,
        Action.RESOLVE: AlertState.RESOLVED,
        Action.FALSE_ALARM: AlertState.FALSE_ALARM,
    },
    AlertState.DISPATCHED: {Action.RESOLVE: AlertState.RESOLVED, Action.FALSE_ALARM: AlertState.FALSE_ALARM},
    AlertState.RESOLVED: {Action.CLOSE: AlertState.CLOSED},
    AlertState.FALSE_ALARM: {Action.CLOSE: AlertState.CLOSED},
    AlertState.CLOSED: {},
}

_ACTION_KINDS: Final[dict[Action, str]] = {
    Action.ACKNOWLEDGE: "event.acknowledged",
    Action.DISPATCH: "event.dispatched",
    Action.RESOLVE: "event.resolved",
    Action.FALSE_ALARM: "event.false_alarm",
    Action.CLOSE: "event.closed",
}

EVENT_KINDS: Final[tuple[str, ...]] = (
    "event.created",
    "event.updated",
    "event.ended",
    *_ACTION_KINDS.values(),
    "event.escalated",
)
"""Every webhook kind, in lifecycle order: what a subscription's ``kinds`` filter may name."""


def check_event_kinds(kinds: list[str]) -> list[str]:
    """``kinds`` when each is one of ``EVENT_KINDS`` (a ``kinds`` filter of the site YAML).

    Raises:
        ValueError: Naming the unknown kinds and the known ones.
    """
    unknown = sorted(set(kinds) - set(EVENT_KINDS))
    if unknown:
        raise ValueError(f"unknown event kind(s) {unknown}; expected some of {list(EVENT_KINDS)}")
    return kinds


_ESCALATION: Final[dict[RiskLevel, RiskLevel]] = {
    RiskLevel.BLUE: RiskLevel.YELLOW,
    RiskLevel.YELLOW: RiskLevel.ORANGE,
    RiskLevel.ORANGE: RiskLevel.RED,
    RiskLevel.RED: RiskLevel.RED,
}


def allowed_actions(state: AlertState | str) -> list[Action]:
    """The actions possible from ``state``, in lifecycle order (empty once closed).

    Raises:
        ValueError: ``state`` is not an alert state.
    """
    return list(_TRANSITIONS[AlertState(state)])


def next_state(state: AlertState | str, action: Action | str) -> AlertState | None:
    """The state ``action`` leads to from ``state``, or ``None`` when it is not allowed there.

    Raises:
        ValueError: ``state`` or ``action`` is not a known value.
    """
    return _TRANSITIONS[AlertState(state)].get(Action(action))


def kind_of_action(action: Action | str) -> str:
    """The webhook kind announcing ``action``, e.g. ``"event.acknowledged"``."""
    return _ACTION_KINDS[Action(action)]


def escalated_severity(severity: RiskLevel | str) -> RiskLevel:
    """One colour up (blue → yellow → orange → red); red stays red."""
    return _ESCALATION[RiskLevel(severity)]
