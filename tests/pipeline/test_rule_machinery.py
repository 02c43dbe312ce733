"""The machinery rules share (``pipeline/rules/base.py``): how a spell is timed, how objects are
followed while their incident is open, and how object keys of a new run meet incidents resumed
from the journal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from anjian.pipeline.config import BlockedExitConfig, FallenPersonConfig, SmokingConfig
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.incident_journal import IncidentJournal
from anjian.pipeline.incidents import IncidentBook, UpdateKind
from anjian.pipeline.rules.base import Confirmation, ObjectMatcher
from anjian.pipeline.rules.blocked_exit import BlockedExitRule
from anjian.pipeline.rules.fallen_person import FallenPersonRule
from anjian.pipeline.rules.smoking import SmokingRule
from tests.pipeline.scripted import T0, dets, environment, kinds, run

EXIT = {"id": "door", "kind": "exit", "polygon": [(0.0, 0.0), (0.4, 0.0), (0.4, 1.0), (0.0, 1.0)]}
PALLET = ("pallet", (0, 30, 60, 100))  # about half of the exit zone
UPRIGHT = ("person", (80, 10, 120, 95))  # 40 x 85
CROUCHED = ("person", (60, 50, 140, 95))  # 80 x 45: as wide as a lying body
PERSON = ("person", (100, 10, 140, 95))
CIGARETTE = ("cigarette", (118, 18, 124, 22))  # at the person's mouth
LYING = ("fallen_person", (40, 60, 160, 95))


# ---------------------------------------------------------------- max_gap_s: a gap is a clear spell


def _blocked_exit(max_gap_s: float) -> BlockedExitRule:
    config = BlockedExitConfig(
        min_duration_s=10, max_gap_s=max_gap_s, clear_after_s=3, update_interval_s=1000, is_reference=False
    )
    return BlockedExitRule(config, environment(zones=[EXIT]))


@pytest.mark.parametrize("max_gap_s", [0.0, 0.5, 1.0])
def test_a_gap_shorter_than_the_frame_interval_still_raises_a_steady_blockage(max_gap_s: float) -> None:
    updates = run(_blocked_exit(max_gap_s), [dets(PALLET)] * 60)  # 1 fps: hits 1 s apart

    assert kinds(updates) == [(10, "opened")]


def test_with_no_gap_tolerated_one_clear_frame_restarts_the_duration() -> None:
    script = [dets(PALLET)] * 8 + [dets()] + [dets(PALLET)] * 12

    assert kinds(run(_blocked_exit(0.0), script)) == [(19, "opened")]  # timed afresh from frame 9


def test_consecutive_hits_never_end_a_spell_but_misses_past_max_gap_s_do() -> None:
    confirmation = Confirmation(min_duration_s=10, max_gap_s=0.0)
    assert [confirmation.update(T0 + 2 * s, True) for s in range(6)] == [False] * 5 + [True]
    assert confirmation.since == T0

    assert confirmation.update(T0 + 11, False) is False
    assert confirmation.since is None


# ---------------------------------------------------------------- min_duration_s: the k-of-n run


def test_a_long_flicker_does_not_count_towards_min_duration_s() -> None:
    rule = FallenPersonRule(FallenPersonConfig(k=3, n=5, min_duration_s=5), environment())
    # 5 fps: a worker crouching at a machine, wide on 1 frame in 4 for 8 s, then on 3 frames (0.6 s).
    script = ([dets(CROUCHED)] + [dets(UPRIGHT)] * 3) * 10 + [dets(CROUCHED)] * 3 + [dets(UPRIGHT)] * 10

    assert run(rule, script, fps=5.0) == []


def test_lying_after_a_flicker_is_timed_from_the_start_of_the_k_of_n_run() -> None:
    rule = FallenPersonRule(FallenPersonConfig(k=3, n=5, min_duration_s=5), environment())
    flicker = ([dets(CROUCHED)] + [dets(UPRIGHT)] * 3) * 10  # frames 0..39
    updates = run(rule, flicker + [dets(CROUCHED)] * 40, fps=5.0)  # lying from frame 40 (8 s)

    assert kinds(updates) == [(65, "opened")]  # 5 s after frame 40, not at once
    event = updates[0][1].event
    assert event.started_at == T0 + 8.0
    assert "for 5 s" in event.message


def test_k_of_n_run_starts_at_the_first_hit_of_its_first_window_and_ends_below_k() -> None:
    confirmation = Confirmation(k=2, n=3, min_duration_s=2)
    script = [(0, True), (1, False), (2, True), (3, False), (4, True)]

    assert [confirmation.update(T0 + t, hit) for t, hit in script] == [False, False, True, False, True]
    assert confirmation.since == T0 + 2, "the window 1..3 held one hit: the run restarted with 2's window"
    confirmation.update(T0 + 5, False)
    assert confirmation.since is None, "one hit in the last three"


# ---------------------------------------------------------------- an open incident keeps its object


def test_a_smoker_hidden_longer_than_the_matcher_remembers_continues_the_open_incident() -> None:
    rule = SmokingRule(SmokingConfig(k=3, n=5, clear_after_s=120, update_interval_s=1000), environment())
    script = [dets(PERSON, CIGARETTE)] * 10 + [dets()] * 40 + [dets(PERSON, CIGARETTE)] * 10

    assert kinds(run(rule, script)) == [(2, "opened")]
    assert len(rule.book.open_keys()) == 1


def test_a_fallen_person_hidden_by_a_first_aider_continues_the_open_incident() -> None:
    rule = FallenPersonRule(FallenPersonConfig(clear_after_s=60, update_interval_s=1000), environment())
    script = [dets(LYING)] * 10 + [dets()] * 35 + [dets(LYING)] * 10

    assert kinds(run(rule, script)) == [(5, "opened")]
    assert len(rule.book.open_keys()) == 1


def test_the_matcher_forgets_an_unseen_object_only_once_nothing_holds_it() -> None:
    box = np.array([[0.1, 0.1, 0.3, 0.9]])
    held: set[str] = set()
    matcher = ObjectMatcher(forget_after_s=30)
    matcher.is_held = held.__contains__
    (key,) = matcher.match(box, None, T0)
    held.add(key)

    assert matcher.match(box, None, T0 + 40) == [key], "held (an open incident): still the same object"
    held.clear()
    assert matcher.match(box, None, T0 + 80) != [key], "forgotten once nothing holds it"


# ---------------------------------------------------------------- object keys of a new run


ZONES = [
    {"id": "bay-A", "kind": "generic", "polygon": [(0, 0), (0.5, 0), (0.5, 1), (0, 1)]},
    {"id": "bay-B", "kind": "generic", "polygon": [(0.5, 0), (1, 0), (1, 1), (0.5, 1)]},
]
IN_A = ("fallen_person", (10, 60, 90, 95))
IN_B = ("fallen_person", (110, 60, 190, 95))


def _fallen_with(journal: IncidentJournal) -> FallenPersonRule:
    env = environment(zones=ZONES)
    env = dataclasses.replace(env, context=dataclasses.replace(env.context, journal=journal))
    return FallenPersonRule(FallenPersonConfig(min_duration_s=1, update_interval_s=1), env)


def test_object_keys_differ_between_runs() -> None:
    first, second = ObjectMatcher(), ObjectMatcher()
    box = np.array([[0.1, 0.1, 0.3, 0.9]])

    assert first.match(box, None, T0) != second.match(box, None, T0)
    assert first.match(box, np.array([3]), T0 + 60) != second.match(box, np.array([3]), T0 + 60)


def test_after_a_restart_a_new_casualty_gets_its_own_incident_and_the_old_one_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    first_run = IncidentJournal(path)
    before = [u for _, u in run(_fallen_with(first_run), [dets(IN_A)] * 20)]
    (opened_a,) = [u.event for u in before if u.kind is UpdateKind.OPENED]
    first_run.suspend()  # the service restarts with the bay-A incident open

    # Run 2 (untracked): a second person is down in bay B and listed first; bay A's is still down.
    updates = run(_fallen_with(IncidentJournal(path)), [dets(IN_B, IN_A)] * 9, t0=T0 + 21)

    (opened,) = [u.event for _, u in updates if u.kind is UpdateKind.OPENED]
    assert opened.zone_id == "bay-B" and opened.id != opened_a.id and opened.boxes[0].xyxy_norm[0] > 0.5
    resumed = [u.event for _, u in updates if u.event.id == opened_a.id]
    assert resumed and all(e.zone_id == "bay-A" and e.boxes[0].xyxy_norm[0] < 0.5 for e in resumed)
    assert all(u.kind is UpdateKind.UPDATED for _, u in updates if u.event.id == opened_a.id)
    assert not any(u.kind is UpdateKind.CLOSED for _, u in updates)


def test_an_incident_journalled_by_an_older_version_is_taken_over_by_zone(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    older = IncidentJournal(path)
    book = IncidentBook(
        behaviour=Behaviour.FALLEN_PERSON,
        severity=RiskLevel.RED,
        clear_after_s=10,
        update_interval_s=1,
        context=dataclasses.replace(environment().context, journal=older),
    )
    opened = book.observe("obj0", now=T0, is_confirmed=True, is_present=True, zone_id="bay-A")  # old key
    assert opened is not None
    older.suspend()

    updates = run(_fallen_with(IncidentJournal(path)), [dets(IN_A)] * 5, t0=T0 + 30)

    assert [(u.kind, u.event.id) for _, u in updates][:1] == [(UpdateKind.UPDATED, opened.event.id)]
    assert all(u.event.id == opened.event.id for _, u in updates), "no second incident for the same person"


def test_a_resumed_incident_is_not_taken_over_by_a_person_frame_of_another_zone(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    first_run = IncidentJournal(path)
    run(_fallen_with(first_run), [dets(IN_A)] * 5)
    first_run.suspend()

    second = _fallen_with(IncidentJournal(path))
    (resumed_key,) = second.book.open_keys()
    updates = run(second, [dets(IN_B)] * 5, t0=T0 + 10)

    (opened,) = [u.event for _, u in updates if u.kind is UpdateKind.OPENED]
    assert opened.zone_id == "bay-B"
    assert {u.event.id for _, u in updates} == {opened.id}, "the resumed bay-A incident is left alone"
    assert resumed_key in second.book.open_keys()
