"""Fallen person: lying (class or geometry) for at least N seconds, not on a bed, one event per person."""

from __future__ import annotations

import pytest

from anjian.models.detections import Detections
from anjian.pipeline.config import FallenPersonConfig
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.rules.fallen_person import FallenPersonRule
from tests.pipeline.scripted import dets, environment, kinds, run

UPRIGHT = ("person", (100, 10, 130, 95), 0.9, 1)
LYING = ("person", (80, 70, 160, 95), 0.8, 1)  # 80 x 25: aspect 3.2
FALLEN = ("fallen_person", (80, 70, 160, 95), 0.7, 1)
BENCH = {
    "id": "bench",
    "kind": "exclusion",
    "excludes": ["fallen_person"],
    "polygon": [(0.3, 0.6), (0.9, 0.6), (0.9, 1.0), (0.3, 1.0)],
}


def _rule(**overrides: object) -> FallenPersonRule:
    config = FallenPersonConfig(
        min_duration_s=5, k=3, n=5, clear_after_s=3, update_interval_s=1000, **overrides
    )
    return FallenPersonRule(config, environment())


@pytest.mark.parametrize(
    "lying",
    [dets(LYING, is_tracked=True), dets(FALLEN, is_tracked=True), dets(LYING)],
    ids=["geometry", "fallen-class", "untracked"],
)
def test_raised_after_lying_for_min_duration(lying: Detections) -> None:
    updates = run(_rule(), [dets(UPRIGHT, is_tracked=True)] * 3 + [lying] * 10)
    assert kinds(updates) == [(8, "opened")]  # lying from frame 3, 5 s later
    event = updates[0][1].event
    assert event.behaviour is Behaviour.FALLEN_PERSON and event.severity is RiskLevel.RED
    assert event.started_at == updates[0][1].event.last_seen_at - 5


@pytest.mark.parametrize(
    "script",
    [
        [dets(UPRIGHT, is_tracked=True)] * 12,
        [dets(LYING, is_tracked=True)] * 4 + [dets(UPRIGHT, is_tracked=True)] * 8,
        [dets(LYING, is_tracked=True), dets(UPRIGHT, is_tracked=True), dets(UPRIGHT, is_tracked=True)] * 4,
    ],
    ids=["upright", "bends-down-briefly", "flicker"],
)
def test_stays_quiet_when_not_lying_long_enough(script: list[Detections]) -> None:
    assert run(_rule(), script) == []


def test_brief_occlusion_keeps_the_spell() -> None:
    lying = dets(LYING, is_tracked=True)
    updates = run(_rule(), [lying] * 3 + [dets()] + [lying] * 4)
    assert kinds(updates) == [(5, "opened")]


def test_one_event_per_person_through_a_track_id_switch_and_a_class_change() -> None:
    switched = dets(("fallen_person", (82, 70, 161, 95), 0.8, 42), is_tracked=True)
    updates = run(_rule(), [dets(LYING, is_tracked=True)] * 7 + [switched] * 5)
    assert kinds(updates) == [(5, "opened")]


def test_person_and_fallen_box_on_one_body_is_one_person() -> None:
    updates = run(_rule(), [dets(LYING, FALLEN, is_tracked=True)] * 8)
    assert kinds(updates) == [(5, "opened")]


@pytest.mark.parametrize("body", [LYING, FALLEN], ids=["geometry", "fallen-class"])
def test_a_partial_upright_box_inside_a_lying_body_is_that_body(body: tuple[object, ...]) -> None:
    part = (
        "person",
        (125, 66, 155, 97),
        0.9,
        None,
    )  # a second, upright box on the legs: IoU 0.34, 81% inside
    script = [dets(body)] * 2 + [dets(part, body)] * 8  # the part, listed first, would take the body's place
    assert kinds(run(_rule(), script)) == [(5, "opened")]  # the spell is not restarted at frame 2


def test_someone_standing_beside_a_lying_person_is_kept_apart() -> None:
    beside = ("person", (150, 10, 180, 95), 0.9, None)  # upright, its feet touching the lying box
    updates = run(_rule(), [dets(LYING, beside)] * 10)
    assert kinds(updates) == [(5, "opened")]
    assert len(updates[0][1].event.boxes) == 1  # the event is about the lying person only


def test_lying_on_a_bench_is_ignored() -> None:
    rule = FallenPersonRule(FallenPersonConfig(min_duration_s=2), environment(zones=[BENCH]))
    assert run(rule, [dets(LYING)] * 10) == []


def test_upright_first_rejects_someone_lying_from_the_start() -> None:
    rule = FallenPersonRule(FallenPersonConfig(min_duration_s=2, is_upright_first=True), environment())
    assert run(rule, [dets(LYING, is_tracked=True)] * 10) == []
    rule = FallenPersonRule(FallenPersonConfig(min_duration_s=2, is_upright_first=True), environment())
    updates = run(rule, [dets(UPRIGHT, is_tracked=True)] + [dets(LYING, is_tracked=True)] * 5)
    assert kinds(updates) == [(3, "opened")]


def test_incident_closes_when_the_person_gets_up_and_re_arms() -> None:
    lying, up = dets(LYING, is_tracked=True), dets(UPRIGHT, is_tracked=True)
    updates = run(_rule(), [lying] * 6 + [up] * 4 + [lying] * 6)
    assert kinds(updates) == [(5, "opened"), (8, "closed"), (15, "opened")]
