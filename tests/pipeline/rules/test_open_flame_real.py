"""Open flame on real fire footage: consecutive frames of fire_continuous videos through the rule.

The detections come from the shipped anjian-n version 1 (pinned, so a newer promoted model
does not change the test) or from the set's own labels. ``WaterMistFireDemonstration`` is a
burn test the model sees as one box filling the view (area 0.98-0.99, clipped by the border,
bright all over): the rule used to reject it as a static lamp; ``CarOne`` is a car fire whose
fire box barely changes. A real fire frame shown still, as a painted sign would be, stays
rejected.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from anjian.cameras.frame import Frame
from anjian.models.config import DetectorConfig
from anjian.models.detections import Detections
from anjian.models.detector import Detector
from anjian.models.loader import load_detector
from anjian.pipeline.config import OpenFlameConfig
from anjian.pipeline.incidents import EventContext, UpdateKind
from anjian.pipeline.rules.open_flame import OpenFlameRule
from anjian.training.fire_clips import group_video_frames
from tests.support.real_data import require_shared_data

pytestmark = pytest.mark.slow

CONTEXT = EventContext(site_id="s", workshop_id="w", camera_id="cam", model_version="anjian-n@1")
SIZE = 448
FPS = 5.0
NAMES = {0: "fire"}


def _frames(video: str, count: int) -> list[tuple[Path, np.ndarray]]:
    root = require_shared_data("fire_continuous")
    [frames] = [v.frames for v in group_video_frames(root) if v.video == video]
    return [(p, cv2.resize(cv2.imread(str(p)), (SIZE, SIZE))) for _, p in frames[:count]]


def _label_detections(image_path: Path) -> Detections:
    """The set's own fire boxes for one frame, in the resized frame's pixels, scored 0.9."""
    label = image_path.parent.parent.parent / "labels" / image_path.parent.name / f"{image_path.stem}.txt"
    rows = np.array(
        [[float(v) for v in line.split()] for line in label.read_text().splitlines() if line.strip()]
    )
    rows = rows.reshape(-1, 5)
    cx, cy, w, h = (rows[:, i] * SIZE for i in range(1, 5))
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return Detections(xyxy, np.full(len(rows), 0.9, np.float32), np.zeros(len(rows), np.int32), NAMES)


def _first_alert_s(
    rule: OpenFlameRule, images: list[np.ndarray], detections: list[Detections]
) -> float | None:
    """Seconds into the sequence of the frame that raised, or ``None``."""
    for i, (image, dets) in enumerate(zip(images, detections, strict=True)):
        frame = Frame(camera_id="cam", image=image, captured_at=1000.0 + i / FPS, pts_s=i / FPS, index=i)
        if any(u.kind is UpdateKind.OPENED for u in rule.process(frame, dets)):
            return i / FPS
    return None


@pytest.fixture(scope="module")
def anjian_n_1() -> Detector:
    return load_detector("builtin:anjian-n/1", DetectorConfig(device="cpu", confidence_threshold=0.05))


@pytest.mark.parametrize("video", ["WaterMistFireDemonstration", "CarOne"])
def test_a_real_fire_the_model_sees_as_one_steady_box_raises(video: str, anjian_n_1: Detector) -> None:
    frames = _frames(video, 40)
    images = [image for _, image in frames]
    detections = anjian_n_1.detect(images)
    rule = OpenFlameRule(
        OpenFlameConfig(k=3, n=5, min_confidence=0.2), CONTEXT
    )  # anjian-n 1 scores it 0.1-0.35
    assert _first_alert_s(rule, images, detections) is not None


@pytest.mark.parametrize("video", ["barbecue", "HouseOne", "FlashoverDemonstration"])
def test_labelled_real_flames_large_and_small_raise_within_a_second(video: str) -> None:
    frames = _frames(video, 20)
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5), CONTEXT)
    alert_s = _first_alert_s(rule, [image for _, image in frames], [_label_detections(p) for p, _ in frames])
    assert alert_s is not None and alert_s <= 1.0


@pytest.mark.parametrize("video", ["barbecue", "WaterMistFireDemonstration"])
def test_a_still_real_fire_picture_is_not_a_flame(video: str) -> None:
    [(path, image)] = _frames(video, 1)
    rng = np.random.default_rng(0)
    still = []
    for _ in range(20):  # the same picture through a camera: sensor noise, then JPEG
        noisy = np.clip(image.astype(np.float32) + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
        still.append(
            cv2.imdecode(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_COLOR)
        )
    rule = OpenFlameRule(OpenFlameConfig(k=3, n=5), CONTEXT)
    assert _first_alert_s(rule, still, [_label_detections(path)] * 20) is None
