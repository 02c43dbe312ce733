"""Absence from post: raised once the post stays unstaffed for T, ended when staffed; overcrowding likewise."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from anjian.pipeline.config import (
    AbsenceFromPostConfig,
    CameraPipelineConfig,
    PostConfig,
    ScheduleConfig,
    ScheduleWindowConfig,
)
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.incident_journal import IncidentJournal
from anjian.pipeline.rules import build_environment
from anjian.pipeline.rules.absence_from_post import AbsenceFromPostRule, post_keys
from tests.pipeline.scripted import CONTEXT, T0, dets, environment, frame, kinds, run

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


DAY_AND_NIGHT = {  # T0 is 22:13:20 UTC: night
    "day": ScheduleConfig(windows=[ScheduleWindowConfig(start="08:00", end="20:00")]),
    "night": ScheduleConfig(windows=[ScheduleWindowConfig(start="20:00", end="08:00")]),
}


def _shifts_rule(journal: IncidentJournal | None = None) -> AbsenceFromPostRule:
    """The desk needs 2 people on the day shift and 1 at night: two posts on one zone."""
    posts = [
        PostConfig(zone="desk", min_people=2, schedule="day"),
        PostConfig(zone="desk", min_people=1, schedule="night"),
    ]
    config = AbsenceFromPostConfig(min_duration_s=10, update_interval_s=1000, posts=posts)
    camera = CameraPipelineConfig(id="cam", url="x.mp4", zones=[DESK], schedules=DAY_AND_NIGHT)
    return AbsenceFromPostRule(config, build_environment(camera, replace(CONTEXT, journal=journal)))


def test_two_posts_on_one_zone_raise_one_incident_not_one_per_frame() -> None:
    updates = run(_shifts_rule(), [EMPTY] * 20)
    assert kinds(updates) == [(10, "opened")], "the off-shift post must not end the on-shift post's incident"
    event = updates[0][1].event
    assert event.zone_id == "desk" and "desk unstaffed: 0 of 1" in event.message


def test_two_posts_on_one_zone_at_once_each_keep_their_own_incident() -> None:
    posts = [PostConfig(zone="desk", min_people=2), PostConfig(zone="desk", min_people=1)]
    config = AbsenceFromPostConfig(min_duration_s=10, restored_after_s=3, update_interval_s=1000, posts=posts)
    rule = AbsenceFromPostRule(config, environment(zones=[DESK]))
    updates = run(rule, [EMPTY] * 12 + [STAFFED] * 6)
    # Both short from 0; one person back at 12 staffs the 1-person post (ended at 15), not the 2-person one.
    assert kinds(updates) == [(10, "opened"), (10, "opened"), (15, "closed")]
    two, one, closed = (u.event for _, u in updates)
    assert two.id != one.id and closed.id == one.id
    assert two.zone_id == one.zone_id == "desk"
    assert post_keys(posts) == ["desk#0", "desk#1"]


def test_an_open_absence_of_a_single_post_resumes_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    first_run = IncidentJournal(path)
    context = replace(CONTEXT, journal=first_run)
    config = AbsenceFromPostConfig(min_duration_s=10, restored_after_s=3, update_interval_s=1000)
    camera = CameraPipelineConfig(id="cam", url="x.mp4", zones=[DESK])
    before = AbsenceFromPostRule(config, build_environment(camera, context))
    opened = run(before, [EMPTY] * 12)
    assert kinds(opened) == [(10, "opened")]
    first_run.suspend()  # the pipeline stops
    assert before.close(T0 + 12) == []

    after = AbsenceFromPostRule(
        config, build_environment(camera, replace(CONTEXT, journal=IncidentJournal(path)))
    )
    updates = run(after, [EMPTY] * 10, t0=T0 + 60)
    assert [(i, u.kind.value, u.event.id) for i, u in updates] == [(0, "updated", opened[0][1].event.id)]
    assert updates[0][1].event.started_at == T0


def test_a_resumed_absence_of_a_post_no_longer_configured_ends(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    first_run = IncidentJournal(path)
    single = AbsenceFromPostConfig(min_duration_s=10, update_interval_s=1000)
    camera = CameraPipelineConfig(id="cam", url="x.mp4", zones=[DESK])
    old = run(
        AbsenceFromPostRule(single, build_environment(camera, replace(CONTEXT, journal=first_run))),
        [EMPTY] * 11,
    )
    first_run.suspend()

    # Restarted with the desk split into day and night posts: the old "desk" incident has no post any more.
    updates = run(_shifts_rule(IncidentJournal(path)), [EMPTY] * 12, t0=T0 + 60)
    assert [(i, u.kind.value, u.event.id == old[0][1].event.id) for i, u in updates] == [
        (1, "closed", True),
        (10, "opened", False),
    ]


def test_a_sporadic_double_count_does_not_raise_overcrowding() -> None:
    room = {"id": "room", "kind": "post", "polygon": [(0, 0), (1, 0), (1, 1), (0, 1)]}
    config = AbsenceFromPostConfig(
        min_duration_s=60, restored_after_s=3, posts=[PostConfig(zone="room", max_people=1)]
    )
    one, duplicate = ("person", (80, 10, 120, 95)), ("person", (82, 12, 110, 60))
    # One worker; on 1 frame in 10 (every 2 s at 5 fps, never 3 s clear) the detector adds a partial box.
    script = ([dets(one, duplicate)] + [dets(one)] * 9) * 60
    assert run(AbsenceFromPostRule(config, environment(zones=[room])), script, fps=5.0) == []


def test_overcrowding_seen_most_of_the_time_still_raises() -> None:
    room = {"id": "room", "kind": "post", "polygon": [(0, 0), (1, 0), (1, 1), (0, 1)]}
    config = AbsenceFromPostConfig(
        min_duration_s=60, restored_after_s=3, posts=[PostConfig(zone="room", max_people=1)]
    )
    two = dets(("person", (20, 10, 60, 95)), ("person", (120, 10, 160, 95)))
    one = dets(("person", (20, 10, 60, 95)))
    # Two workers; the second is missed on 2 frames in 5 (the over-count holds 60 % of the time).
    updates = run(
        AbsenceFromPostRule(config, environment(zones=[room])), [two, one, two, one, two] * 80, fps=5.0
    )
    assert kinds(updates) == [(300, "opened")]
    assert updates[0][1].event.started_at == T0
