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


@pytest.mark.parametrize(
    "box",
    [(70, 60, 130, 100), (70, 0, 130, 40), (70, 59, 130, 99.5)],
    ids=["bottom-edge", "top-edge", "within-the-margin"],
)
def test_a_person_cut_off_by_the_frame_edge_is_not_lying_by_geometry(
    box: tuple[float, float, float, float],
) -> None:
    # head and shoulders of a worker close to the camera: 60 x 40 px, touching the border
    cut_off = ("person", box)
    assert run(_rule(border_margin_fraction=0.01), [dets(cut_off)] * 12) == []


def test_a_fallen_class_box_at_the_frame_edge_still_raises() -> None:
    at_edge = ("fallen_person", (70, 60, 130, 100))
    assert kinds(run(_rule(border_margin_fraction=0.01), [dets(at_edge)] * 8)) == [(5, "opened")]


def test_upright_first_memory_holds_only_recent_tracks() -> None:
    passers_by = [dets(("person", (10, 10, 30, 90), 0.9, i), is_tracked=True) for i in range(100)]
    rule = _rule(is_upright_first=True)
    run(rule, passers_by)  # one upright passer-by a second, each a new track id
    assert len(rule._tracks) <= 11  # the tracks of the last upright_memory_s (10 s), not all 100
    rule = _rule()
    run(rule, passers_by)
    assert rule._tracks == {}  # nothing remembered when is_upright_first is off


def test_upright_first_keeps_a_long_lying_spell_past_the_memory() -> None:
    rule = _rule(is_upright_first=True, upright_memory_s=2)
    updates = run(rule, [dets(UPRIGHT, is_tracked=True)] + [dets(LYING, is_tracked=True)] * 20)
    assert kinds(updates) == [(6, "opened")]  # still lying 20 s on: the incident does not close


def test_upright_first_follows_a_person_the_tracker_renumbers_mid_fall() -> None:
    walking = [dets(("person", (40 + 3 * i, 10, 80 + 3 * i, 95), 0.9, 0), is_tracked=True) for i in range(15)]
    unseen = [dets()] * 20  # 4 s at 5 fps, longer than the tracker keeps a lost track
    lying = [dets(("person", (95, 62, 185, 98), 0.9, 1), is_tracked=True)] * 40  # a new id
    updates = run(_rule(is_upright_first=True), walking + unseen + lying, fps=5.0)
    assert kinds(updates) == [(60, "opened")]


def test_upright_first_does_not_hand_a_lost_track_history_to_a_body_elsewhere() -> None:
    walking = [dets(("person", (10, 10, 40, 95), 0.9, 0), is_tracked=True)] * 10
    elsewhere = [dets(("person", (100, 62, 190, 98), 0.9, 1), is_tracked=True)] * 40  # no overlap
    assert run(_rule(is_upright_first=True), walking + elsewhere, fps=5.0) == []
