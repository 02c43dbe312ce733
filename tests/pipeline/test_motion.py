"""Motion gating: still empty frames skip inference (counted); motion, the forced period and an occupied scene do not."""

from __future__ import annotations

import numpy as np

from anjian.models.detections import Detections
from anjian.pipeline.engine_config import MotionGateConfig
from anjian.pipeline.motion import MotionGate, is_occupied


def _scene(box_x: int | None = None, *, noise_seed: int | None = None) -> np.ndarray:
    image = np.full((360, 640, 3), 90, np.uint8)
    image[200:, :] = 60  # floor
    if box_x is not None:
        image[150:300, box_x : box_x + 60] = (30, 160, 220)
    if noise_seed is not None:  # sensor noise, a few grey levels
        noise = np.random.default_rng(noise_seed).integers(-4, 5, image.shape)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return image


def test_still_scene_is_inferred_once_then_every_max_skip_s() -> None:
    gate = MotionGate(MotionGateConfig(enabled=True, max_skip_s=5.0))
    decisions = [gate.should_infer(_scene(noise_seed=i), at=i * 0.5) for i in range(21)]  # 10 s at 2 fps

    assert [i for i, d in enumerate(decisions) if d] == [0, 10, 20]
    assert gate.stats.frames_skipped == 18
    assert gate.stats.forced == 2
    assert gate.stats.frames_inferred + gate.stats.frames_skipped == gate.stats.frames_seen == 21


def test_moving_object_is_inferred_on_every_frame() -> None:
    gate = MotionGate(MotionGateConfig(enabled=True))
    decisions = [gate.should_infer(_scene(100 + 40 * i, noise_seed=i), at=i * 0.5) for i in range(10)]
    assert all(decisions)


def test_slow_drift_adds_up_against_the_last_inferred_frame() -> None:
    gate = MotionGate(MotionGateConfig(enabled=True, max_skip_s=1000))
    decisions = [gate.should_infer(_scene(100 + 1 * i), at=float(i)) for i in range(20)]
    # One pixel per frame is below the threshold frame to frame, but the reference is the
    # last *inferred* frame, so the drift triggers an inference every few frames.
    assert decisions[0] and not all(decisions[1:4]) and sum(decisions[1:]) >= 2


def test_disabled_gate_always_infers() -> None:
    gate = MotionGate(MotionGateConfig(enabled=False))
    assert all(gate.should_infer(_scene(), at=float(i)) for i in range(5))
    assert gate.stats.frames_skipped == 0


def test_reset_forces_the_next_inference() -> None:
    gate = MotionGate(MotionGateConfig(enabled=True))
    gate.should_infer(_scene(), at=0.0)
    assert not gate.should_infer(_scene(), at=0.5)
    gate.reset()
    assert gate.should_infer(_scene(), at=1.0)


def _person() -> Detections:
    return Detections(
        xyxy=np.array([[100, 150, 160, 300]], np.float32),
        confidence=np.array([0.6], np.float32),
        class_id=np.array([0]),
        class_names={0: "person"},
    )


def test_a_still_scene_with_something_in_it_is_inferred_on_every_frame() -> None:
    """The rules vote over the detector's samples of a still person: none is frozen and reused."""
    gate = MotionGate(MotionGateConfig(enabled=True, max_skip_s=5.0))
    decisions = [
        gate.should_infer(_scene(100, noise_seed=i), at=i * 0.5, is_occupied=True) for i in range(10)
    ]
    assert all(decisions)
    assert gate.stats.occupied == 9 and gate.stats.frames_skipped == 0  # the first had no reference


def test_skip_occupied_skips_a_still_scene_whatever_it_holds() -> None:
    gate = MotionGate(MotionGateConfig(enabled=True, max_skip_s=5.0, skip_occupied=True))
    decisions = [
        gate.should_infer(_scene(100, noise_seed=i), at=i * 0.5, is_occupied=True) for i in range(10)
    ]
    assert [i for i, d in enumerate(decisions) if d] == [0]
    assert gate.stats.occupied == 0


def test_occupied_means_the_reused_detections_hold_something() -> None:
    assert is_occupied(_person())
    assert not is_occupied(Detections.empty({0: "person"}))
    assert not is_occupied(None)  # nothing inferred yet
