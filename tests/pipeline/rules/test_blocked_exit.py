"""Blocked exit: an exit zone occupied by obstacles (a class, or a change from its clear image) for T."""

from __future__ import annotations

import re

import numpy as np

from anjian.models.detections import Detections
from anjian.pipeline.config import BlockedExitConfig, ReferenceConfig
from anjian.pipeline.event import Behaviour
from anjian.pipeline.incidents import IncidentUpdate
from anjian.pipeline.rules.blocked_exit import BlockedExitRule
from tests.pipeline.scripted import T0, dets, environment, frame, kinds

EXIT = {"id": "door", "kind": "exit", "polygon": [(0.0, 0.0), (0.4, 0.0), (0.4, 1.0), (0.0, 1.0)]}
PALLET = ("pallet", (0, 30, 60, 100))  # covers 60 x 70 of the 80 x 100 zone: about 52 %
_RNG = np.random.default_rng(0)
BACKGROUND = _RNG.integers(40, 200, (100, 200, 3), dtype=np.uint8)


def _image(*, box: tuple[int, int, int, int] | None = None, seed: int = 0) -> np.ndarray:
    """The scene with sensor noise, and a flat bright object at pixel ``box`` (x1, y1, x2, y2)."""
    noise = np.random.default_rng(seed).integers(-3, 4, BACKGROUND.shape)
    image = np.clip(BACKGROUND.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    if box is not None:
        x1, y1, x2, y2 = box
        image[y1:y2, x1:x2] = 250
    return image


def _rule(**overrides: object) -> BlockedExitRule:
    config = BlockedExitConfig(
        min_duration_s=10,
        max_gap_s=3,
        clear_after_s=3,
        update_interval_s=1000,
        reference=ReferenceConfig(learn_after_s=3, width_px=100),
        **overrides,
    )
    return BlockedExitRule(config, environment(zones=[EXIT]))


def _run(
    rule: BlockedExitRule, script: list[tuple[np.ndarray, Detections]]
) -> list[tuple[int, IncidentUpdate]]:
    out = []
    for i, (image, d) in enumerate(script):
        out += [(i, u) for u in rule.process(frame(T0 + i, i, image), d)]
    return out


CLEAR = [(_image(seed=i), dets()) for i in range(6)]  # the reference is learned here


def test_obstacle_class_raises_after_min_duration_and_clears() -> None:
    rule = _rule(is_reference=False)
    script = [(_image(), dets(PALLET))] * 12 + [(_image(), dets())] * 5
    updates = _run(rule, script)
    assert kinds(updates) == [(10, "opened"), (14, "closed")]
    event = updates[0][1].event
    assert event.behaviour is Behaviour.BLOCKED_EXIT and event.zone_id == "door"
    assert event.boxes[0].class_name == "pallet"
    assert re.search(r"door blocked: 5\d% of the zone occupied for 10 s", event.message)


def test_unknown_object_found_against_the_learned_clear_image() -> None:
    rule = _rule()
    box = (10, 20, 70, 100)  # 60 x 80 of the 80 x 100 zone
    updates = _run(rule, CLEAR + [(_image(box=box, seed=i), dets()) for i in range(14)])
    assert kinds(updates) == [(16, "opened")]
    event = updates[0][1].event
    assert event.boxes[-1].class_name == "obstruction"
    assert 0.5 < event.confidence < 0.7  # 60 % of the zone changed


def test_person_passing_through_is_masked_out() -> None:
    person_box = (10, 20, 70, 100)
    walking = [(_image(box=person_box, seed=i), dets(("person", person_box))) for i in range(14)]
    assert _run(_rule(), CLEAR + walking) == []


def test_short_blockage_and_tolerated_gaps() -> None:
    pallet, clear = (_image(), dets(PALLET)), (_image(), dets())
    assert _run(_rule(is_reference=False), [pallet] * 8 + [clear] * 5 + [pallet] * 8) == []
    updates = _run(_rule(is_reference=False), [pallet] * 5 + [clear] * 2 + [pallet] * 5)
    assert kinds(updates) == [(10, "opened")]  # a 2 s gap (< max_gap_s) keeps the spell from 0


def test_small_obstacle_below_the_fraction_is_fine() -> None:
    assert _run(_rule(is_reference=False), [(_image(), dets(("pallet", (0, 80, 20, 100))))] * 15) == []


def test_tick_keeps_a_still_blockage_counting() -> None:
    rule = _rule(is_reference=False)
    assert rule.process(frame(T0, 0, _image()), dets(PALLET)) == []
    ticks = [(s, u.kind.value) for s in range(1, 12) for u in rule.tick(T0 + s)]
    assert ticks == [(10, "opened")]


def test_reference_is_not_learned_while_the_zone_is_obstructed_and_can_be_reset() -> None:
    rule = _rule()
    box = (10, 20, 70, 100)
    _run(
        rule, [(_image(box=box, seed=i), dets(("forklift", box, 0.2, 0))) for i in range(6)]
    )  # below min conf
    assert not rule.references["door"].is_learned  # a detection covered the zone
    _run(rule, CLEAR)
    assert rule.references["door"].is_learned
    assert rule.reset_reference("door") and not rule.references["door"].is_learned
    assert not rule.reset_reference("elsewhere")
