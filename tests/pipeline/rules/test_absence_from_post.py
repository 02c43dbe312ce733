"""Absence from post: raised once the post stays unstaffed for T, ended when staffed; overcrowding likewise."""

from __future__ import annotations

import pytest

from anjian.pipeline.config import AbsenceFromPostConfig, PostConfig, ScheduleConfig, ScheduleWindowConfig
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.rules.absence_from_post import AbsenceFromPostRule
from tests.pipeline.scripted import T0, dets, environment, frame, kinds, run

DESK = {"id": "desk", "kind": "post", "polygon": [(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)]}
AT_DESK = ("person", (120, 20, 160, 90))  # feet at (0.7, 0.9): in the post
WALKING_PAST = ("person", (20, 20, 60, 90))  # feet at (0.2, 0.9): elsewhere
STAFFED, EMPTY = dets(AT_DESK), dets()


def _rule(**overrides: object) -> AbsenceFromPostRule:
    config = AbsenceFromPostConfig(min_duration_s=10, restored_after_s=3, update_interval_s=1000, **overrides)
    return AbsenceFromPostRule(config, environment(zones=[DESK]))


def test_absence_raised_after_min_duration_and_ended_when_staffed() -> None:
    rule = _rule()
    updates = run(rule, [STAFFED] * 5 + [EMPTY] * 15 + [STAFFED] * 6)
    assert kinds(updates) == [(15, "opened"), (23, "closed")]
    opened, closed = updates[0][1].event, updates[1][1].event
    assert opened.behaviour is Behaviour.ABSENCE_FROM_POST
    assert opened.severity is RiskLevel.YELLOW
    assert opened.zone_id == "desk"
    assert opened.started_at == T0 + 5
    assert "desk unstaffed: 0 of 1" in opened.message
    assert closed.id == opened.id and closed.ended_at == T0 + 23  # staffed again at 20, for 3 s


def test_feet_decide_membership_so_a_person_elsewhere_does_not_staff_the_post() -> None:
    updates = run(_rule(), [dets(WALKING_PAST)] * 12)
    assert kinds(updates) == [(10, "opened")]


@pytest.mark.parametrize(
    "script",
    [
        [STAFFED] * 30,
        [STAFFED, EMPTY, STAFFED] * 10,
        [STAFFED] * 5 + [EMPTY] * 9 + [STAFFED] + [EMPTY] * 9,
    ],
    ids=["staffed", "flickering-detection", "returns-just-in-time"],
)
def test_stays_quiet_while_someone_is_there(script: list) -> None:
    assert run(_rule(), script) == []


def test_passer_by_does_not_end_a_raised_absence() -> None:
    updates = run(_rule(), [EMPTY] * 12 + [STAFFED] * 2 + [EMPTY] * 5)
    assert kinds(updates) == [(10, "opened")]


def test_tick_keeps_counting_without_frames() -> None:
    rule = _rule()
    assert rule.process(frame(T0), EMPTY) == []
    assert rule.tick(T0 + 9) == []
    [update] = rule.tick(T0 + 10)
    assert update.kind.value == "opened" and update.event.started_at == T0


def test_no_frame_yet_means_no_absence() -> None:
    assert _rule().tick(T0 + 1000) == []


def test_schedule_bounds_the_absence() -> None:
    # T0 is 22:13:20 UTC; the shift ends at 22:30 (T0 + 1000 s).
    schedules = {"shift": ScheduleConfig(windows=[ScheduleWindowConfig(start="22:00", end="22:30")])}
    config = AbsenceFromPostConfig(min_duration_s=10, posts=[PostConfig(zone="desk", schedule="shift")])
    rule = AbsenceFromPostRule(config, environment(zones=[DESK], schedules=schedules))
    updates = run(rule, [EMPTY] * 30, t0=T0 + 980)
    assert kinds(updates) == [(10, "opened"), (20, "closed")]
    assert updates[1][1].event.ended_at == T0 + 1000
    assert run(rule, [EMPTY] * 30, t0=T0 + 1100) == []  # off shift: empty is fine


def test_overcrowding_uses_the_same_machinery() -> None:
    config = AbsenceFromPostConfig(
        min_duration_s=5, restored_after_s=2, posts=[PostConfig(zone="desk", min_people=0, max_people=1)]
    )
    rule = AbsenceFromPostRule(config, environment(zones=[DESK]))
    two = dets(AT_DESK, ("person", (150, 20, 190, 95)))
    updates = run(rule, [two] * 3 + [STAFFED] + [two] * 4 + [STAFFED] * 4)
    assert kinds(updates) == [(5, "opened"), (10, "closed")]  # one frame at 1 person does not restart it
    event = updates[0][1].event
    assert event.behaviour is Behaviour.OVERCROWDING and event.severity is RiskLevel.ORANGE
    assert len(event.boxes) == 2 and "Too many people in desk: 2 (limit 1)" in event.message


def test_cooldown_and_escalation() -> None:
    rule = _rule(cooldown_s=30, escalate={"after_s": 20, "severity": "red"})
    updates = run(rule, [EMPTY] * 25 + [STAFFED] * 4 + [EMPTY] * 35)
    # Empty again from 29: it would raise at 39, but the cooldown holds it until 28 + 30.
    assert kinds(updates) == [(10, "opened"), (20, "updated"), (28, "closed"), (58, "opened")]
    assert updates[1][1].event.severity is RiskLevel.RED  # escalated at 20 s
    assert updates[3][1].event.started_at == T0 + 29
    assert updates[3][1].event.severity is RiskLevel.RED  # already 29 s long when it opens
