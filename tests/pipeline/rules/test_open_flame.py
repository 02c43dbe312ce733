"""Open flame fires once per incident after k of n frames, updates while it burns, closes after it."""

from __future__ import annotations

import numpy as np
import pytest

from cameras.frame import Frame
from models.detections import Detections
from pipeline.config import (
    CameraPipelineConfig,
    OpenFlameConfig,
    ScheduleConfig,
    ScheduleWindowConfig,
    ZoneConfig,
)
from pipeline.event import Behaviour, RiskLevel
from pipeline.incidents import EventContext, IncidentUpdate, UpdateKind
from pipeline.rules import build_environment
from pipeline.rules.open_flame import OpenFlameRule

NAMES = {0: "fire", 1: "smoke", 2: "person"}
CONTEXT = EventContext(site_id="s", workshop_id="w", camera_id="cam", model_version="m@1")
IMAGE = np.zeros((100, 200, 3), np.uint8)


def _frame(t: float, index: int) -> Frame:
    return Frame(camera_id="cam", image=IMAGE, captured_at=t, pts_s=t, index=index)


def _dets(*boxes: tuple[str, float]) -> Detections:
    ids = {v: k for k, v in NAMES.items()}
    n = len(boxes)
    return Detections(
        xyxy=np.tile(np.array([[20, 10, 60, 50]], np.float32), (n, 1)),
        confidence=np.array([c for _, c in boxes], np.float32),
        class_id=np.array([ids[name] for name, _ in boxes], np.int32),
        class_names=NAMES,
    )


def _flicker(dets: Detections, i: int) -> Detections:
    """A real flame changes size from frame to frame: grow the boxes by 0, 15 or 30 %."""
    xyxy = dets.xyxy.copy()
    xyxy[:, 2] += (xyxy[:, 2] - xyxy[:, 0]) * 0.15 * (i % 3)
    return Detections(
        xyxy=xyxy, confidence=dets.confidence, class_id=dets.class_id, class_names=dets.class_names
    )


def _run(
    rule: OpenFlameRule, script: list[Detections], fps: float = 1.0, *, is_flickering: bool = True
) -> list[tuple[int, IncidentUpdate]]:
    out = []
    for i, dets in enumerate(script):
        dets = _flicker(dets, i) if is_flickering else dets
        out += [(i, u) for u in rule.process(_frame(1000.0 + i / fps, i), dets)]
    return out


FIRE = _dets(("fire", 0.8))
NONE = _dets()


def test_raises_once_after_k_of_n_frames_with_evidence() -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5, update_interval_s=100, clear_after_s=100), CONTEXT)
    updates = _run(rule, [FIRE, NONE, FIRE, FIRE, FIRE, FIRE])
    assert [(i, u.kind) for i, u in updates] == [(3, UpdateKind.OPENED)]
    event = updates[0][1].event
    assert event.behaviour is Behaviour.OPEN_FLAME
    assert event.severity is RiskLevel.RED
    assert event.started_at == 1000.0  # the first flame frame of the window
    assert event.boxes[0].class_name == "fire"
    assert event.boxes[0].xyxy_norm == (0.1, 0.1, 0.3, 0.5)  # frame 3: not grown
    assert event.model_version == "m@1"


@pytest.mark.parametrize(
    "script",
    [
        [FIRE, NONE, NONE, NONE, NONE, FIRE, NONE, NONE, NONE, NONE],
        [FIRE, FIRE, NONE, NONE, NONE, NONE, NONE, FIRE, FIRE, NONE],
        [_dets(("fire", 0.2))] * 10,
        [_dets(("person", 0.9), ("smoke", 0.9))] * 10,
    ],
    ids=["isolated-flashes", "two-frame-flicker", "below-min-confidence", "other-classes"],
)
def test_stays_quiet_without_confirmation(script: list[Detections]) -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5, min_confidence=0.35), CONTEXT)
    assert _run(rule, script) == []


def test_ongoing_incident_updates_same_event_then_closes() -> None:
    config = OpenFlameConfig(k=2, n=3, update_interval_s=2, clear_after_s=3)
    rule = OpenFlameRule(config, CONTEXT)
    script = [FIRE, FIRE, _dets(("fire", 0.95)), FIRE, FIRE, NONE, NONE, NONE, NONE]
    updates = _run(rule, script)
    kinds = [(i, u.kind) for i, u in updates]
    assert kinds == [(1, UpdateKind.OPENED), (3, UpdateKind.UPDATED), (7, UpdateKind.CLOSED)]
    ids = {u.event.id for _, u in updates}
    assert len(ids) == 1
    assert [u.event.revision for _, u in updates] == [1, 2, 3]
    closed = updates[-1][1].event
    assert closed.confidence == pytest.approx(0.95)
    assert closed.last_seen_at == 1004.0
    assert closed.ended_at == 1007.0


def test_brief_occlusion_does_not_split_the_incident() -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=2, n=3, update_interval_s=100, clear_after_s=5), CONTEXT)
    updates = _run(rule, [FIRE, FIRE, NONE, NONE, FIRE, FIRE, NONE])
    assert [u.kind for _, u in updates] == [UpdateKind.OPENED]


def test_re_arms_only_after_a_fresh_confirmation() -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=2, n=3, update_interval_s=100, clear_after_s=1), CONTEXT)
    updates = _run(rule, [FIRE, FIRE, NONE, NONE, FIRE, NONE, FIRE, FIRE])
    kinds = [(i, u.kind) for i, u in updates]
    assert kinds == [(1, UpdateKind.OPENED), (2, UpdateKind.CLOSED), (6, UpdateKind.OPENED)]
    assert updates[0][1].event.id != updates[2][1].event.id


def test_static_orange_light_is_rejected_by_the_temporal_check() -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5), CONTEXT)
    assert _run(rule, [FIRE] * 20, is_flickering=False) == []


def test_temporal_check_can_be_turned_off() -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5, is_temporal_check=False), CONTEXT)
    assert [u.kind for _, u in _run(rule, [FIRE] * 5, is_flickering=False)] == [UpdateKind.OPENED]


def test_flickering_brightness_alone_passes_the_temporal_check() -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5), CONTEXT)
    updates = []
    for i in range(5):
        image = np.zeros((100, 200, 3), np.uint8)
        image[10:50, 20:60] = 150 + 40 * (i % 2)
        frame = Frame(camera_id="cam", image=image, captured_at=1000.0 + i, pts_s=float(i), index=i)
        updates += rule.process(frame, FIRE)
    assert [u.kind for u in updates] == [UpdateKind.OPENED]


def test_flame_in_an_exclusion_zone_is_ignored() -> None:
    camera = CameraPipelineConfig(
        id="cam",
        url="x.mp4",
        zones=[
            ZoneConfig(
                id="furnace",
                kind="exclusion",
                excludes=["open_flame"],
                polygon=[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)],
            )
        ],
    )
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5), build_environment(camera, CONTEXT))
    assert _run(rule, [FIRE] * 10) == []  # the box centre (0.2, 0.3) is in the furnace


def test_rule_is_quiet_outside_its_schedule() -> None:
    camera = CameraPipelineConfig(
        id="cam",
        url="x.mp4",
        schedules={"night": ScheduleConfig(windows=[ScheduleWindowConfig(start="00:00", end="00:10")])},
    )
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5, schedule="night"), build_environment(camera, CONTEXT))
    assert _run(rule, [FIRE] * 10) == []  # 1000 s after the epoch is 00:16 UTC


def test_close_ends_an_open_incident() -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=1, n=1), CONTEXT)
    _run(rule, [FIRE])
    [closed] = rule.close(2000.0)
    assert closed.kind is UpdateKind.CLOSED
    assert closed.event.ended_at == 2000.0
