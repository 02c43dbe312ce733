"""Smoking: a cigarette at a person's upper body, k of n frames, one event per smoker."""

from __future__ import annotations

import pytest

from anjian.models.detections import Detections
from anjian.pipeline.config import SmokingConfig
from anjian.pipeline.event import Behaviour
from anjian.pipeline.rules.smoking import SmokingRule
from tests.pipeline.scripted import Obj, dets, environment, kinds, run

PERSON = ("person", (100, 10, 140, 95), 0.9, 1)
AT_MOUTH = ("cigarette", (118, 18, 124, 22), 0.6, 9)
AT_FEET = ("cigarette", (118, 90, 124, 94), 0.6, 9)
ON_TABLE = ("cigarette", (20, 50, 26, 54), 0.6, 9)
SMOKING = dets(PERSON, AT_MOUTH, is_tracked=True)
PERSON_ONLY = dets(PERSON, is_tracked=True)


def _rule(**overrides: object) -> SmokingRule:
    config = SmokingConfig(k=3, n=5, update_interval_s=1000, clear_after_s=3, **overrides)
    return SmokingRule(config, environment())


def test_raised_once_per_smoker_with_person_and_cigarette_boxes() -> None:
    updates = run(_rule(), [SMOKING] * 8)
    assert kinds(updates) == [(2, "opened")]
    event = updates[0][1].event
    assert event.behaviour is Behaviour.SMOKING
    assert [b.class_name for b in event.boxes] == ["person", "cigarette"]
    assert event.confidence == pytest.approx(0.6)
    assert event.track_id == 1


@pytest.mark.parametrize(
    "script",
    [
        [dets(PERSON, AT_FEET, is_tracked=True)] * 8,
        [dets(PERSON, ON_TABLE, is_tracked=True)] * 8,
        [dets(AT_MOUTH, is_tracked=True)] * 8,
        [SMOKING, PERSON_ONLY, PERSON_ONLY, SMOKING, PERSON_ONLY, PERSON_ONLY, SMOKING, PERSON_ONLY],
        [dets(PERSON, ("cigarette", (118, 18, 124, 22), 0.1, 9), is_tracked=True)] * 8,
    ],
    ids=["cigarette-at-feet", "cigarette-on-table", "no-person", "flicker", "low-confidence"],
)
def test_stays_quiet_without_an_associated_confirmed_cigarette(script: list[Detections]) -> None:
    assert run(_rule(), script) == []


def test_two_smokers_give_two_events() -> None:
    other = ("person", (20, 10, 60, 95), 0.9, 2)
    other_cig = ("cigarette", (38, 18, 44, 22), 0.7, 8)
    updates = run(_rule(), [dets(PERSON, AT_MOUTH, other, other_cig, is_tracked=True)] * 4)
    assert kinds(updates) == [(2, "opened"), (2, "opened")]
    assert {u.event.track_id for _, u in updates} == {1, 2}


def test_track_id_switch_keeps_one_incident() -> None:
    switched = dets(("person", (101, 10, 141, 95), 0.9, 7), AT_MOUTH, is_tracked=True)
    updates = run(_rule(), [SMOKING] * 4 + [switched] * 4)
    assert kinds(updates) == [(2, "opened")]


def test_untracked_detections_work_by_overlap() -> None:
    updates = run(_rule(), [dets(PERSON, AT_MOUTH)] * 4 + [dets(PERSON)] * 5)
    assert kinds(updates) == [(2, "opened"), (6, "closed")]  # last seen at 3, clear after 3 s


def test_brief_occlusion_does_not_split_and_re_arms_after_clear() -> None:
    updates = run(
        _rule(), [SMOKING] * 3 + [PERSON_ONLY] * 2 + [SMOKING] * 2 + [PERSON_ONLY] * 4 + [SMOKING] * 3
    )
    assert kinds(updates) == [(2, "opened"), (9, "closed"), (13, "opened")]
    assert updates[0][1].event.id != updates[2][1].event.id


def test_direct_smoking_class_needs_no_cigarette() -> None:
    rule = SmokingRule(SmokingConfig(k=2, n=3, smoking_classes=["smoke"]), environment())
    assert kinds(run(rule, [dets(("smoke", (100, 10, 140, 95)))] * 3)) == [(1, "opened")]


def test_no_smoking_zones_only() -> None:
    zone = {
        "id": "ammonia",
        "kind": "no_smoking",
        "polygon": [(0.0, 0.0), (0.4, 0.0), (0.4, 1.0), (0.0, 1.0)],
    }
    rule = SmokingRule(SmokingConfig(k=2, n=3, is_no_smoking_zones_only=True), environment(zones=[zone]))
    outside = run(rule, [SMOKING] * 4)  # feet at x = 0.6
    inside = run(
        rule,
        [dets(("person", (20, 10, 60, 95), 0.9, 2), ("cigarette", (38, 18, 44, 22), 0.6, 9), is_tracked=True)]
        * 3,
    )
    assert outside == []
    assert kinds(inside) == [(1, "opened")] and inside[0][1].event.zone_id == "ammonia"


def test_untracked_minus_one_ids_are_not_one_shared_track() -> None:
    left = [("person", (20, 10, 60, 95), 0.9, -1), ("cigarette", (38, 18, 44, 22), 0.7, -1)]
    right = [("person", (140, 10, 180, 95), 0.9, -1), ("cigarette", (158, 18, 164, 22), 0.7, -1)]
    updates = run(_rule(), [dets(*left, *right, is_tracked=True)] * 3)
    assert kinds(updates) == [(2, "opened"), (2, "opened")]
    assert {u.event.track_id for _, u in updates} == {None}


def _direct_rule() -> SmokingRule:
    return SmokingRule(
        SmokingConfig(k=3, n=5, update_interval_s=1000, clear_after_s=3, smoking_classes=["smoke"]),
        environment(),
    )


UPPER_BODY_SMOKING = ("smoke", (98, 8, 142, 60), 0.7, 3)  # a "person smoking" box on the upper body: IoU 0.54
HEAD_AND_HAND = ("smoke", (104, 8, 136, 40), 0.7, 3)  # head and hand: IoU 0.28, 94 % inside the person


def test_a_smoking_box_on_a_smoker_with_a_cigarette_is_one_event() -> None:
    updates = run(_direct_rule(), [dets(PERSON, AT_MOUTH, UPPER_BODY_SMOKING, is_tracked=True)] * 6)
    assert kinds(updates) == [(2, "opened")]
    event = updates[0][1].event
    assert [b.class_name for b in event.boxes] == ["person", "cigarette", "smoke"]
    assert event.track_id == 1 and event.confidence == pytest.approx(0.7)  # the stronger evidence


@pytest.mark.parametrize("smoking", [UPPER_BODY_SMOKING, HEAD_AND_HAND], ids=["upper-body", "head-and-hand"])
def test_a_smoking_box_and_a_cigarette_on_alternate_frames_confirm_one_smoker(smoking: Obj) -> None:
    script = [dets(PERSON, AT_MOUTH, is_tracked=True), dets(PERSON, smoking, is_tracked=True)] * 4
    updates = run(_direct_rule(), script)
    assert kinds(updates) == [(2, "opened")]
    assert updates[0][1].event.track_id == 1


def test_a_smoking_box_away_from_people_is_its_own_event() -> None:
    elsewhere = ("smoke", (20, 10, 60, 60), 0.7, 3)
    updates = run(_direct_rule(), [dets(PERSON, elsewhere, is_tracked=True)] * 4)
    assert kinds(updates) == [(2, "opened")]
    assert [b.class_name for b in updates[0][1].event.boxes] == ["smoke"]
