"""Open flame fires once per incident after k of n frames, updates while it burns, closes after it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.config import (
    CameraPipelineConfig,
    OpenFlameConfig,
    ScheduleConfig,
    ScheduleWindowConfig,
    ZoneConfig,
)
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.incidents import IncidentUpdate, UpdateKind
from anjian.pipeline.rules import RuleEnvironment, build_environment
from anjian.pipeline.rules.open_flame import OpenFlameRule, moving_fraction
from tests.pipeline.scripted import CONTEXT

NAMES = {0: "fire", 1: "smoke", 2: "person"}
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


@pytest.mark.parametrize(("k", "n"), [(1, 2), (1, 3), (1, 5)], ids=["k1-n2", "k1-n3", "k1-n5"])
def test_static_orange_light_is_rejected_with_k_1(k: int, n: int) -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=k, n=n, update_interval_s=5), CONTEXT)
    assert _run(rule, [FIRE] * 30, is_flickering=False) == []


def test_k_1_raises_on_the_second_flickering_flame_frame() -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=1, n=3, update_interval_s=100), CONTEXT)
    updates = _run(rule, [FIRE, NONE, FIRE, FIRE])
    assert [(i, u.kind) for i, u in updates] == [(2, UpdateKind.OPENED)]
    assert updates[0][1].event.started_at == 1000.0


def test_temporal_check_needs_a_window_of_two_frames() -> None:
    with pytest.raises(ValidationError, match="is_temporal_check compares at least two flame frames"):
        OpenFlameConfig(k=1, n=1)
    assert OpenFlameConfig(k=1, n=1, is_temporal_check=False).n == 1


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
    rule = OpenFlameRule(OpenFlameConfig(k=1, n=1, is_temporal_check=False), CONTEXT)
    _run(rule, [FIRE])
    [closed] = rule.close(2000.0)
    assert closed.kind is UpdateKind.CLOSED
    assert closed.event.ended_at == 2000.0


def _flame_view(rng: np.random.Generator, *, is_moving: bool, noise_sigma: float = 3.0) -> list[np.ndarray]:
    """Frames filled by a bright flame-like texture: blobs that move (a flame) or stay put (a painted sign).

    Every frame is bright all over and keeps its mean brightness, so neither a clipped box's area
    nor its mean brightness varies: only the pixels inside tell a flame from a picture of one.
    """
    still = rng.integers(0, 2, (10, 20)).astype(np.float32)
    frames = []
    for _ in range(12):
        blobs = rng.integers(0, 2, (10, 20)).astype(np.float32) if is_moving else still
        texture = cv2.resize(blobs, (200, 100), interpolation=cv2.INTER_LINEAR)
        grey = 150 + 80 * (texture - texture.mean())
        grey = grey + rng.normal(0, noise_sigma, grey.shape)
        image = np.clip(np.stack([grey * 0.3, grey * 0.8, grey], axis=2), 0, 255).astype(np.uint8)
        frames.append(image)
    return frames


def _whole_view_fire(scores: list[float]) -> list[Detections]:
    """The box a detector draws on a close-up: the whole frame, clipped by its border."""
    return [
        Detections(
            xyxy=np.array([[-8, -5, 210, 104]], np.float32),
            confidence=np.array([s], np.float32),
            class_id=np.array([0], np.int32),
            class_names=NAMES,
        )
        for s in scores
    ]


SWINGING = [
    0.47,
    0.12,
    0.31,
    0.22,
    0.45,
    0.10,
    0.38,
    0.27,
    0.41,
    0.19,
    0.33,
    0.44,
]  # a real close-up's fire scores


def _run_frames(
    rule: OpenFlameRule, images: list[np.ndarray], script: list[Detections]
) -> list[IncidentUpdate]:
    updates = []
    for i, (image, dets) in enumerate(zip(images, script, strict=True)):
        frame = Frame(camera_id="cam", image=image, captured_at=1000.0 + i / 5, pts_s=i / 5, index=i)
        updates += rule.process(frame, dets)
    return updates


def test_a_flame_filling_the_view_raises_at_the_model_s_calibrated_threshold() -> None:
    env = RuleEnvironment(context=CONTEXT, class_thresholds={"fire": 0.1})
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5), env)
    flame = _flame_view(np.random.default_rng(0), is_moving=True)
    updates = _run_frames(rule, flame, _whole_view_fire(SWINGING))
    assert [u.kind for u in updates] == [UpdateKind.OPENED]
    assert updates[0].event.boxes[0].xyxy_norm == (-0.04, -0.05, 1.05, 1.04)  # as the detector drew it


def test_a_painted_flame_filling_the_view_is_still_rejected() -> None:
    env = RuleEnvironment(context=CONTEXT, class_thresholds={"fire": 0.1})
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5), env)
    sign = _flame_view(np.random.default_rng(0), is_moving=False, noise_sigma=6.0)
    assert _run_frames(rule, sign, _whole_view_fire(SWINGING)) == []


def test_a_still_flame_picture_on_a_vibrating_camera_is_rejected() -> None:
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5), CONTEXT)
    [sign] = _flame_view(np.random.default_rng(1), is_moving=False)[:1]
    shaken = [
        np.roll(sign, (i % 3 - 1, (i // 3) % 3 - 1), axis=(0, 1)) for i in range(12)
    ]  # one pixel each way
    assert _run_frames(rule, shaken, [FIRE] * 12) == []


@pytest.mark.parametrize(
    ("change", "low", "high"),
    [
        (lambda p: p, 0.0, 0.0),
        (lambda p: p + 40, 0.0, 0.0),
        (lambda p: np.roll(p, 1, axis=1), 0.0, 0.02),
        (lambda p: 255 - p, 0.8, 1.0),
    ],
    ids=["unchanged", "exposure-change", "one-pixel-shake", "inverted"],
)
def test_moving_fraction_counts_only_pixels_that_changed_shape(
    change: object, low: float, high: float
) -> None:
    rng = np.random.default_rng(2)
    blocks = rng.integers(0, 2, (8, 8)).astype(np.float32) * 200
    before = cv2.resize(blocks, (64, 64), interpolation=cv2.INTER_NEAREST)
    after = change(before)  # type: ignore[operator]
    assert low <= moving_fraction(before, after) <= high


def test_moving_fraction_needs_patches_of_one_shape() -> None:
    with pytest.raises(ValueError, match="patches must have one shape"):
        moving_fraction(np.zeros((4, 4), np.float32), np.zeros((4, 5), np.float32))
