"""The alert lifecycle in the store (SQLite and PostgreSQL): transitions, audit trail, announcements, SLA."""

from __future__ import annotations

import itertools

import pytest

from anjian.pipeline.event import RiskLevel
from anjian.service.config import SlaConfig
from anjian.service.errors import InvalidTransitionError
from anjian.service.lifecycle import (
    EVENT_KINDS,
    Action,
    AlertState,
    allowed_actions,
    escalated_severity,
    next_state,
)
from anjian.service.store import EventStore
from anjian.service.subscriptions import SubscriptionSpec
from tests.factories import make_event
from tests.service.conftest import FakeClock

HOOK = "http://127.0.0.1:9/hook"

_PATHS = {
    "ack-dispatch-resolve-close": [Action.ACKNOWLEDGE, Action.DISPATCH, Action.RESOLVE, Action.CLOSE],
    "ack-dispatch-false-close": [Action.ACKNOWLEDGE, Action.DISPATCH, Action.FALSE_ALARM, Action.CLOSE],
    "ack-resolve-close": [Action.ACKNOWLEDGE, Action.RESOLVE, Action.CLOSE],
    "ack-false-close": [Action.ACKNOWLEDGE, Action.FALSE_ALARM, Action.CLOSE],
    "false-close": [Action.FALSE_ALARM, Action.CLOSE],
}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (AlertState.RAISED, [Action.ACKNOWLEDGE, Action.FALSE_ALARM]),
        (AlertState.ACKNOWLEDGED, [Action.DISPATCH, Action.RESOLVE, Action.FALSE_ALARM]),
        (AlertState.DISPATCHED, [Action.RESOLVE, Action.FALSE_ALARM]),
        (AlertState.RESOLVED, [Action.CLOSE]),
        (AlertState.FALSE_ALARM, [Action.CLOSE]),
        (AlertState.CLOSED, []),
    ],
    ids=lambda v: v.value if isinstance(v, AlertState) else None,
)
def test_allowed_actions_per_state(state: AlertState, expected: list[Action]) -> None:
    assert allowed_actions(state) == expected
    for action in Action:
        assert (next_state(state, action) is not None) == (action in expected)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (RiskLevel.BLUE, RiskLevel.YELLOW),
        (RiskLevel.YELLOW, RiskLevel.ORANGE),
        (RiskLevel.ORANGE, RiskLevel.RED),
        (RiskLevel.RED, RiskLevel.RED),
    ],
    ids=["blue", "yellow", "orange", "red"],
)
def test_escalation_raises_one_colour(before: RiskLevel, after: RiskLevel) -> None:
    assert escalated_severity(before) is after


@pytest.mark.parametrize("path", list(_PATHS.values()), ids=list(_PATHS))
def test_each_lifecycle_path_ends_closed_with_one_audit_line_per_step(
    store: EventStore, clock: FakeClock, path: list[Action]
) -> None:
    event = make_event()
    store.upsert_event(event)

    for step, action in enumerate(path, start=1):
        clock.now += 10
        result = store.transition(
            event.id,
            action,
            actor=f"op-{step}",
            note=f"note {step}",
            assignee="team-b" if action is Action.DISPATCH else None,
        )
        assert result.event.version == step + 1
        assert result.event.state_changed_at == clock.now

    trail = store.audit_trail(event.id)
    assert [entry.action for entry in trail] == ["raise", *[a.value for a in path]]
    assert [entry.actor for entry in trail] == ["pipeline", *[f"op-{i}" for i in range(1, len(path) + 1)]]
    assert [entry.note for entry in trail[1:]] == [f"note {i}" for i in range(1, len(path) + 1)]
    assert trail[-1].to_state is AlertState.CLOSED
    assert all(a.to_state == b.from_state for a, b in itertools.pairwise(trail))
    assert trail[1].at == 1_800_000_010.0
    stored = store.get_event(event.id)
    assert stored is not None and stored.state is AlertState.CLOSED
    assert stored.acknowledged_at == 1_800_000_010.0


def test_dispatch_records_assignee_and_work_order(store: EventStore) -> None:
    event = make_event()
    store.upsert_event(event)
    store.transition(event.id, Action.ACKNOWLEDGE, actor="op")

    result = store.transition(
        event.id, Action.DISPATCH, actor="op", note="WO-17: extinguish", assignee=" Li Wei "
    )

    assert result.event.assignee == "Li Wei"
    assert (result.audit.assignee, result.audit.note) == ("Li Wei", "WO-17: extinguish")


@pytest.mark.parametrize(
    ("done", "action"),
    [
        ([], Action.DISPATCH),
        ([], Action.RESOLVE),
        ([], Action.CLOSE),
        ([Action.ACKNOWLEDGE], Action.ACKNOWLEDGE),
        ([Action.ACKNOWLEDGE], Action.CLOSE),
        ([Action.ACKNOWLEDGE, Action.RESOLVE], Action.DISPATCH),
        ([Action.ACKNOWLEDGE, Action.RESOLVE, Action.CLOSE], Action.ACKNOWLEDGE),
    ],
    ids=[
        "raised-dispatch",
        "raised-resolve",
        "raised-close",
        "ack-twice",
        "ack-close",
        "resolved-dispatch",
        "closed-ack",
    ],
)
def test_invalid_transition_is_refused_naming_the_allowed_actions(
    store: EventStore, done: list[Action], action: Action
) -> None:
    event = make_event()
    store.upsert_event(event)
    for previous in done:
        store.transition(event.id, previous, actor="op", note="x")
    before = store.get_event(event.id)

    with pytest.raises(InvalidTransitionError) as caught:
        store.transition(event.id, action, actor="op", assignee="a")

    assert before is not None
    assert caught.value.state == before.state.value
    assert caught.value.allowed == [a.value for a in allowed_actions(before.state)]
    assert store.get_event(event.id) == before, "a refused action changes nothing"
    assert len(store.audit_trail(event.id)) == 1 + len(done)


def test_transition_of_unknown_event_is_a_key_error(store: EventStore) -> None:
    with pytest.raises(KeyError, match="no event"):
        store.transition("nope", Action.ACKNOWLEDGE, actor="op")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"assignee": None}, "dispatch needs an assignee"),
        ({"assignee": "a", "note": "x" * 4001}, "at most 4000"),
    ],
    ids=["no-assignee", "long-note"],
)
def test_transition_rejects_bad_arguments(store: EventStore, kwargs: dict[str, object], message: str) -> None:
    event = make_event()
    store.upsert_event(event)
    store.transition(event.id, Action.ACKNOWLEDGE, actor="op")

    with pytest.raises(ValueError, match=message):
        store.transition(event.id, Action.DISPATCH, actor="op", **kwargs)  # type: ignore[arg-type]


def test_every_lifecycle_change_is_announced_with_its_audit_line(store: EventStore) -> None:
    subscription = store.subscriptions.create(SubscriptionSpec(url=HOOK))
    event = make_event()
    store.upsert_event(event)
    for action in _PATHS["ack-dispatch-resolve-close"]:
        store.transition(event.id, action, actor="op", note="n", assignee="team")

    deliveries = store.outbox.list(event_id=event.id)

    assert [d.kind for d in deliveries] == [
        "event.created",
        "event.acknowledged",
        "event.dispatched",
        "event.resolved",
        "event.closed",
    ]
    trail = store.audit_trail(event.id)
    for delivery, audit in zip(deliveries[1:], trail[1:], strict=True):
        assert delivery.idempotency_key == f"{event.id}:a{audit.id}:{subscription.id}"
        assert delivery.payload["change"]["id"] == audit.id
        assert delivery.payload["change"]["actor"] == "op"
        assert delivery.payload["event"]["state"] == audit.to_state.value
    assert {d.kind for d in deliveries} <= set(EVENT_KINDS)


def test_pipeline_updates_keep_the_lifecycle_state(store: EventStore) -> None:
    event = make_event()
    store.upsert_event(event)
    store.transition(event.id, Action.ACKNOWLEDGE, actor="op")

    result = store.upsert_event(make_event(id=event.id, revision=2, ended_at=1_700_000_050.0))

    assert result.event.state is AlertState.ACKNOWLEDGED
    assert result.event.ended_at == 1_700_000_050.0


def test_unacknowledged_alert_is_escalated_one_colour_per_deadline_and_renotified(
    store: EventStore, clock: FakeClock
) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK, kinds=("event.escalated",)))
    sla = SlaConfig(blue_s=600, yellow_s=300, orange_s=120, red_s=60, max_escalations=5)
    event = make_event(severity=RiskLevel.BLUE)
    store.upsert_event(event)

    clock.now += 599
    assert store.escalate_overdue(sla) == []
    clock.now += 1
    (first,) = store.escalate_overdue(sla)
    assert (first.severity, first.detected_severity, first.escalations) == (
        RiskLevel.YELLOW,
        RiskLevel.BLUE,
        1,
    )
    clock.now += 299
    assert store.escalate_overdue(sla) == [], "the yellow deadline runs from the escalation"
    clock.now += 1
    (second,) = store.escalate_overdue(sla)
    assert second.severity is RiskLevel.ORANGE

    trail = store.audit_trail(event.id)
    assert [(a.action, a.actor, a.severity) for a in trail[1:]] == [
        ("escalate", "system", RiskLevel.YELLOW),
        ("escalate", "system", RiskLevel.ORANGE),
    ]
    assert "not acknowledged within 600 s" in trail[1].note
    escalations = store.outbox.list(event_id=event.id)
    assert [d.kind for d in escalations] == ["event.escalated", "event.escalated"]
    assert escalations[1].payload["event"]["severity"] == "orange"


def test_the_deadline_of_a_colour_the_pipeline_raised_runs_from_that_raise(
    store: EventStore, clock: FakeClock
) -> None:
    """A blue alert raised to red 50 min after it was stored was escalated 15 s later as 'not acknowledged
    within 300 s': the red deadline ran from the creation."""
    sla = SlaConfig(blue_s=3600, red_s=300)
    event = make_event(severity=RiskLevel.BLUE)
    store.upsert_event(event)
    clock.now += 3000
    store.upsert_event(make_event(id=event.id, revision=2, severity=RiskLevel.RED))

    clock.now += 299
    assert store.escalate_overdue(sla) == []
    clock.now += 1
    (escalated,) = store.escalate_overdue(sla)
    assert escalated.escalations == 1


def test_after_the_clock_goes_back_the_deadline_runs_from_the_step_not_from_a_time_still_ahead(
    store: EventStore, clock: FakeClock
) -> None:
    """A red alert raised just before the clock was set back 8 h escalated 8 h 05 min later, not 5 min."""
    sla = SlaConfig(red_s=300)
    store.upsert_event(make_event(severity=RiskLevel.RED))
    clock.now -= 8 * 3600  # NTP corrects a clock that ran on local time read as UTC

    assert store.escalate_overdue(sla) == []
    clock.now += 299
    assert store.escalate_overdue(sla) == []
    clock.now += 1
    (escalated,) = store.escalate_overdue(sla)
    assert escalated.escalations == 1


def test_acknowledged_alert_is_never_escalated_and_escalations_are_capped(
    store: EventStore, clock: FakeClock
) -> None:
    sla = SlaConfig(red_s=60, max_escalations=2)
    acked, ignored = make_event(), make_event()
    store.upsert_event(acked)
    store.upsert_event(ignored)
    store.transition(acked.id, Action.ACKNOWLEDGE, actor="op")

    counts = []
    for _ in range(4):
        clock.now += 61
        counts.append(len(store.escalate_overdue(sla)))

    assert counts == [1, 1, 0, 0]
    red = store.get_event(ignored.id)
    assert red is not None and (red.severity, red.escalations) == (RiskLevel.RED, 2)
    assert store.get_event(acked.id).escalations == 0  # type: ignore[union-attr]


def test_a_later_revision_does_not_undo_an_escalation(store: EventStore, clock: FakeClock) -> None:
    event = make_event(severity=RiskLevel.YELLOW)
    store.upsert_event(event)
    clock.now += 10_000
    store.escalate_overdue(SlaConfig())

    result = store.upsert_event(make_event(id=event.id, revision=2, severity=RiskLevel.YELLOW))

    assert (result.event.severity, result.event.detected_severity) == (RiskLevel.ORANGE, RiskLevel.YELLOW)
