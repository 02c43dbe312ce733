"""Incidents of a camera that sends no frames (offline, stalled) end at their last sighting.

Without frames a smoker, a flame or a fallen person was reported ongoing through the whole
outage and ended only with the first frame back, at the recovery's time. Rules now
``expire`` what nothing keeps alive, the analyzer passes that on, and the runner calls it
for cameras that are down (it ticks only live ones)."""

from __future__ import annotations

import time

import numpy as np

from anjian.cameras.health import CameraState
from anjian.models.detections import Detections
from anjian.pipeline.analyzer import CameraAnalyzer
from anjian.pipeline.config import (
    BehavioursConfig,
    BlockedExitConfig,
    CameraPipelineConfig,
    SmokingConfig,
)
from anjian.pipeline.incidents import UpdateKind
from anjian.pipeline.rules.blocked_exit import BlockedExitRule
from anjian.pipeline.rules.open_flame import OpenFlameConfig, OpenFlameRule
from anjian.pipeline.rules.smoking import SmokingRule
from anjian.pipeline.sink import ListSink
from tests.pipeline.scripted import CONTEXT, T0, dets, environment, frame, kinds
from tests.support.pushed_camera import pushed_runner
from tests.support.waiting import wait_for

PERSON = ("person", (100, 10, 140, 95))
CIGARETTE = ("cigarette", (118, 18, 124, 22))
SMOKER = dets(PERSON, CIGARETTE)
EXIT = {"id": "door", "kind": "exit", "polygon": [(0.0, 0.0), (0.4, 0.0), (0.4, 1.0), (0.0, 1.0)]}
PALLET = ("pallet", (0, 30, 60, 100))


def _smoking() -> SmokingRule:
    return SmokingRule(SmokingConfig(k=3, n=5, clear_after_s=10, update_interval_s=1000), environment())


def test_ticks_without_frames_end_a_smoker_at_the_last_sighting() -> None:
    rule = _smoking()
    for i in range(5):
        rule.process(frame(T0 + i, i), SMOKER)

    ticked = [(s, u) for s in range(5, 3600) for u in rule.tick(T0 + s)]  # the camera stalled for an hour

    assert [(s, u.kind) for s, u in ticked] == [(14, UpdateKind.CLOSED)]  # unseen clear_after_s
    assert ticked[0][1].event.ended_at == ticked[0][1].event.last_seen_at == T0 + 4
    assert rule.book.open_keys() == []


def test_the_smoker_seen_again_after_the_outage_needs_a_fresh_confirmation() -> None:
    rule = _smoking()
    for i in range(5):
        rule.process(frame(T0 + i, i), SMOKER)
    (closed,) = rule.expire(T0 + 14)  # down for 15 s: still remembered as the same person

    back = [kinds([(i, u) for u in rule.process(frame(T0 + 20 + i, 20 + i), SMOKER)]) for i in range(3)]

    assert back == [[], [], [(2, "opened")]]  # k = 3 new frames, not the window from before the outage
    assert rule.book.event_of(rule.book.open_keys()[0]).id != closed.event.id  # type: ignore[union-attr]


def test_a_tick_never_ends_an_incident_while_frames_still_come() -> None:
    rule = _smoking()
    for i in range(6):
        rule.process(frame(T0 + i, i), SMOKER)  # last seen at T0 + 5
    for i in range(6, 15):
        rule.process(frame(T0 + i, i), dets())  # frames without the smoker up to T0 + 14

    # The wall clock runs ahead of a frame still in flight (captured at T0 + 14.9, the smoker back).
    assert rule.tick(T0 + 15.5) == []
    assert [u.kind for u in rule.process(frame(T0 + 14.9, 15), SMOKER)] in ([], [UpdateKind.UPDATED])
    assert len(rule.book.open_keys()) == 1


def _blocked_exit(max_gap_s: float = 3) -> BlockedExitRule:
    config = BlockedExitConfig(
        min_duration_s=10, max_gap_s=max_gap_s, clear_after_s=5, update_interval_s=1000, is_reference=False
    )
    return BlockedExitRule(config, environment(zones=[EXIT]))


def _feed(rule: BlockedExitRule, seconds: range, detections: Detections) -> list[tuple[int, str]]:
    return kinds([(s, u) for s in seconds for u in rule.process(frame(T0 + s, s), detections)])


def test_a_blockage_survives_an_outage_shorter_than_max_gap_s() -> None:
    rule = _blocked_exit()
    assert _feed(rule, range(5), dets(PALLET)) == []
    assert rule.expire(T0 + 5) + rule.expire(T0 + 6) == []  # down for 2 s

    assert _feed(rule, range(7, 12), dets(PALLET)) == [(10, "opened")]  # timed from T0


def test_a_blockage_is_timed_afresh_after_an_outage_longer_than_max_gap_s() -> None:
    rule = _blocked_exit()
    _feed(rule, range(5), dets(PALLET))
    for s in range(5, 10):
        assert rule.expire(T0 + s) == []  # down for 5 s: nothing shows the exit blocked
    assert rule.tick(T0 + 10) == [], "no occupancy from before the outage is fed"

    assert _feed(rule, range(10, 25), dets(PALLET)) == [(20, "opened")]


def test_an_open_blocked_exit_ends_at_its_last_sighting_while_the_camera_is_down() -> None:
    rule = _blocked_exit(max_gap_s=60)  # the outage alone does not restart the spell
    assert _feed(rule, range(12), dets(PALLET)) == [(10, "opened")]

    expired = [u for s in range(12, 30) for u in rule.expire(T0 + s)]

    assert [u.kind for u in expired] == [UpdateKind.CLOSED]
    assert expired[0].event.ended_at == T0 + 11
    assert _feed(rule, range(30, 35), dets(PALLET)) == [], "the next one needs min_duration_s again"


def test_the_analyzer_expires_every_rule_of_a_camera_that_is_down() -> None:
    camera = CameraPipelineConfig(
        id="cam",
        url="x.mp4",
        behaviours=BehavioursConfig(smoking=SmokingConfig(k=1, n=1, clear_after_s=10)),
    )
    analyzer = CameraAnalyzer(camera, CONTEXT)
    (opened,) = analyzer.process(frame(T0, 0), SMOKER)

    assert [e for e in analyzer.expire(T0 + 9) if e.ended_at is not None] == []  # its clip may finish
    (ended,) = [e for e in analyzer.expire(T0 + 10) if e.ended_at is not None]

    assert (ended.id, ended.ended_at) == (opened.id, T0)


def test_absence_and_dust_keep_their_incidents_through_an_outage() -> None:
    """Their own tick times them (absence ends by restored_after_s, an unscoreable dirty zone stays dirty)."""
    camera = CameraPipelineConfig.model_validate(
        {
            "id": "cam",
            "url": "x.mp4",
            "zones": [
                {"id": "desk", "kind": "post", "polygon": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]},
                {"id": "floor", "kind": "dust", "polygon": [[0, 0], [0.4, 0], [0.4, 1], [0, 1]]},
            ],
            "behaviours": {
                "absence_from_post": {"min_duration_s": 5, "posts": [{"zone": "desk", "min_people": 1}]},
                "uncleaned_dust": {"k": 1, "n": 1, "is_reference": False, "clear_after_s": 10},
            },
        }
    )
    analyzer = CameraAnalyzer(camera, CONTEXT)
    dust = dets(("dust", (10, 40, 50, 90)))
    opened = [e for s in range(8) for e in analyzer.process(frame(T0 + s, s), dust) if e.revision == 1]
    assert {e.behaviour for e in opened} == {"absence_from_post", "uncleaned_dust"}

    ended = [e for s in range(8, 3600, 60) for e in analyzer.expire(T0 + s) if e.ended_at is not None]

    assert ended == []
    assert all(rule.book.open_keys() for rule in analyzer.rules)


class _SmokerDetector:
    """A smoker (person and cigarette) on every image."""

    def __init__(self) -> None:
        self.version = "fake@1"
        self.class_names = {0: "person", 1: "cigarette"}
        self.class_thresholds: dict[str, float] = {}

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        boxes = np.array([[40, 10, 80, 85], [58, 18, 64, 22]], np.float32)
        return [
            Detections(boxes, np.array([0.9, 0.9], np.float32), np.array([0, 1], np.int32), self.class_names)
            for _ in images
        ]


def test_the_runner_ends_the_incidents_of_a_camera_gone_offline_at_their_last_sighting() -> None:
    camera = CameraPipelineConfig(
        id="cam",
        url="rtsp://cam/cam",
        behaviours=BehavioursConfig(smoking=SmokingConfig(k=1, n=1, clear_after_s=0.5)),
    )
    sink = ListSink()
    runner, sources = pushed_runner("site", "ws", [camera], _SmokerDetector(), sink)
    runner.start()
    try:
        sources["cam"].push(np.full((90, 160, 3), 100, np.uint8))
        assert wait_for(lambda: any(e.behaviour == "smoking" for e in sink.events))
        sources["cam"]._health.set_state(CameraState.OFFLINE, time.time())  # the camera drops off

        assert wait_for(lambda: any(e.behaviour == "smoking" and e.ended_at for e in sink.events))
    finally:
        runner.stop()

    smoking = [e for e in sink.events if e.behaviour == "smoking"]
    ended = next(e for e in smoking if e.ended_at is not None)
    assert ended.id == smoking[0].id and ended.ended_at == ended.last_seen_at


def test_a_flame_seen_again_after_the_outage_needs_a_fresh_confirmation() -> None:
    """The flame's window of hits survived an incident ended by expire: one flame frame after the outage
    raised it again at once."""
    rule = OpenFlameRule(
        OpenFlameConfig(k=2, n=3, is_temporal_check=False, clear_after_s=10, update_interval_s=1000), CONTEXT
    )
    fire = dets(("fire", (20, 10, 60, 50)))
    opened = [u.kind for i in range(3) for u in rule.process(frame(T0 + i, i), fire)]
    assert opened == [UpdateKind.OPENED]
    assert [u.kind for u in rule.expire(T0 + 13)] == [UpdateKind.CLOSED]  # the camera went down

    back = [kinds([(i, u) for u in rule.process(frame(T0 + 60 + i, 60 + i), fire)]) for i in range(2)]

    assert back == [[], [(1, "opened")]]
