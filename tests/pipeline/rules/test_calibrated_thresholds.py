"""Rules default to the model's calibrated per-class thresholds; a site's min_confidence overrides them."""

from __future__ import annotations

import numpy as np
import pytest

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.analyzer import CameraAnalyzer
from anjian.pipeline.config import (
    AbsenceFromPostConfig,
    BehavioursConfig,
    CameraPipelineConfig,
    EvidenceConfig,
    FallenPersonConfig,
    OpenFlameConfig,
    RuleConfig,
    SmokingConfig,
)
from anjian.pipeline.event import Behaviour
from anjian.pipeline.rules import build_rules
from anjian.pipeline.rules.base import select
from tests.pipeline.scripted import CONTEXT

NAMES = {0: "person", 1: "fire", 2: "cigarette"}
CALIBRATED = {"fire": 0.2, "person": 0.5}


@pytest.mark.parametrize(
    ("config", "class_name", "expected"),
    [
        (OpenFlameConfig(), "fire", 0.2),
        (OpenFlameConfig(), "smoke", 0.35),
        (OpenFlameConfig(min_confidence=0.6), "fire", 0.6),
        (SmokingConfig(), "person", 0.5),
        (SmokingConfig(), "cigarette", 0.3),
        (AbsenceFromPostConfig(), "person", 0.5),
        (AbsenceFromPostConfig(), "forklift", 0.4),
        (FallenPersonConfig(min_confidence=0.1), "person", 0.1),
    ],
    ids=[
        "model-threshold",
        "class-the-model-did-not-calibrate",
        "site-overrides-model",
        "smoking-person-from-model",
        "smoking-default",
        "absence-person-from-model",
        "absence-default",
        "site-value-for-every-class",
    ],
)
def test_each_class_needs_the_site_value_else_the_model_value_else_the_rule_default(
    config: RuleConfig, class_name: str, expected: float
) -> None:
    assert config.min_confidence_for(class_name, CALIBRATED) == expected


def test_select_applies_one_floor_per_class() -> None:
    detections = Detections(
        xyxy=np.zeros((4, 4), np.float32),
        confidence=np.array([0.25, 0.15, 0.45, 0.55], np.float32),
        class_id=np.array([1, 1, 0, 0], np.int32),
        class_names=NAMES,
    )
    kept = select(detections, ["fire", "person"], {"fire": 0.2, "person": 0.5})
    assert kept.confidence.tolist() == pytest.approx([0.25, 0.55])


def _fire(i: int, score: float) -> Detections:
    """One fire box whose width changes from frame to frame (a flame flickers)."""
    box = np.array([[20, 10, 60 + 6 * (i % 3), 50]], np.float32)
    return Detections(box, np.array([score], np.float32), np.array([1], np.int32), NAMES)


def _frames(n: int) -> list[Frame]:
    image = np.zeros((100, 200, 3), np.uint8)
    return [
        Frame(camera_id="cam", image=image, captured_at=1000.0 + i, pts_s=float(i), index=i) for i in range(n)
    ]


def _raised(analyzer: CameraAnalyzer, score: float, start: int = 0, n: int = 6) -> list[Behaviour]:
    return [
        e.behaviour
        for i, frame in enumerate(_frames(start + n)[start:], start)
        for e in analyzer.process(frame, _fire(i, score))
        if e.revision == 1
    ]


def _camera(**open_flame: object) -> CameraPipelineConfig:
    return CameraPipelineConfig(
        id="cam",
        url="x.mp4",
        behaviours=BehavioursConfig(open_flame=OpenFlameConfig(k=3, n=5, **open_flame)),  # type: ignore[arg-type]
        evidence=EvidenceConfig(is_clip=False),
    )


def test_a_fire_under_the_old_default_raises_at_the_model_s_calibrated_threshold() -> None:
    assert _raised(CameraAnalyzer(_camera(), CONTEXT), 0.25) == []  # 0.35 without calibration
    calibrated = CameraAnalyzer(_camera(), CONTEXT, class_thresholds=CALIBRATED)
    assert _raised(calibrated, 0.25) == [Behaviour.OPEN_FLAME]


def test_a_site_min_confidence_wins_over_the_model() -> None:
    analyzer = CameraAnalyzer(_camera(min_confidence=0.35), CONTEXT, class_thresholds=CALIBRATED)
    assert _raised(analyzer, 0.25) == []


def test_a_swapped_model_s_thresholds_apply_from_the_next_frame() -> None:
    analyzer = CameraAnalyzer(_camera(), CONTEXT)
    assert _raised(analyzer, 0.25) == []
    analyzer.set_class_thresholds(CALIBRATED)  # what the runner does after a hot model swap
    assert _raised(analyzer, 0.25, start=6) == [Behaviour.OPEN_FLAME]


def test_build_rules_hands_the_thresholds_to_every_rule() -> None:
    camera = CameraPipelineConfig(
        id="cam",
        url="x.mp4",
        behaviours=BehavioursConfig(open_flame=OpenFlameConfig(), smoking=SmokingConfig()),
    )
    rules = build_rules(camera, CONTEXT, CALIBRATED)
    assert [rule.floors(["fire", "person", "cigarette"]) for rule in rules] == [
        {"fire": 0.2, "person": 0.5, "cigarette": 0.35},
        {"fire": 0.2, "person": 0.5, "cigarette": 0.3},
    ]
