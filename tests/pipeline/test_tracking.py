"""ByteTrack per camera: one id per object over time, ids never reused, and a real clip of people walking."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from anjian.models.config import DetectorConfig
from anjian.models.detections import Detections
from anjian.models.loader import load_detector
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.engine_config import TrackingConfig
from anjian.pipeline.rules import build_rules
from anjian.pipeline.rules.registry import REGISTRY
from anjian.pipeline.tracking import UNTRACKED, CameraTracker
from tests.pipeline.scripted import CONTEXT, NAMES, T0, frame

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
COCO_INT8 = SHARED / "weights" / "coco_yolov8n_int8.onnx"
PEOPLE_CLIP = SHARED / "videos" / "people_one_by_one.mp4"


def _detections(boxes: list[tuple[float, float, float, float]], confidence: float = 0.9) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, confidence, np.float32),
        class_id=np.zeros(n, np.int32),
        class_names={0: "person"},
    )


def test_moving_box_keeps_one_id_after_confirmation() -> None:
    tracker = CameraTracker(TrackingConfig(min_consecutive_frames=2), fps=5.0)
    ids = [
        int(tracker.update(_detections([(10 + 8 * i, 50, 60 + 8 * i, 150)]), at=i * 0.2).tracker_id[0])
        for i in range(20)
    ]
    assert ids[0] == UNTRACKED  # not confirmed yet
    assert len(set(ids[1:])) == 1 and ids[1] != UNTRACKED


def test_two_objects_get_distinct_ids_in_input_order() -> None:
    tracker = CameraTracker(TrackingConfig(), fps=5.0)
    for i in range(5):
        tracked = tracker.update(_detections([(300, 0, 350, 100), (10 + i, 0, 60 + i, 100)]), at=i * 0.2)
    assert tracked.tracker_id is not None
    left_is_second = tracked.xyxy[1, 0] < 100
    assert left_is_second  # order of the input is kept
    assert len(set(tracked.tracker_id.tolist())) == 2 and UNTRACKED not in tracked.tracker_id


def test_object_gone_longer_than_lost_track_s_comes_back_with_a_new_id() -> None:
    tracker = CameraTracker(TrackingConfig(lost_track_s=1.0), fps=5.0)
    box = [(100, 100, 150, 200)]
    first = [tracker.update(_detections(box), at=i * 0.2).tracker_id[0] for i in range(5)][-1]
    tracker.update(_detections([]), at=1.0)
    later = [tracker.update(_detections(box), at=3.0 + i * 0.2).tracker_id[0] for i in range(5)][-1]
    assert first != UNTRACKED and later != UNTRACKED and later != first


def test_time_going_back_restarts_tracks_without_reusing_ids() -> None:
    tracker = CameraTracker(TrackingConfig(), fps=5.0)
    before = {
        int(tracker.update(_detections([(0, 0, 50, 50)]), at=100 + i * 0.2).tracker_id[0]) for i in range(5)
    }
    after = {
        int(tracker.update(_detections([(0, 0, 50, 50)]), at=10 + i * 0.2).tracker_id[0]) for i in range(5)
    }
    assert (before - {UNTRACKED}).isdisjoint(after - {UNTRACKED})
    assert after - {UNTRACKED}


def test_restart_ends_every_track_and_never_reuses_an_id() -> None:
    tracker = CameraTracker(TrackingConfig(), fps=5.0)
    box = [(0, 0, 50, 50)]
    before = {int(tracker.update(_detections(box), at=i * 0.2).tracker_id[0]) for i in range(5)}
    tracker.restart()
    after = [int(tracker.update(_detections(box), at=1.0 + i * 0.2).tracker_id[0]) for i in range(5)]
    assert after[0] == UNTRACKED  # the same box, but a new track: confirmed afresh
    assert (before - {UNTRACKED}).isdisjoint(after) and set(after) - {UNTRACKED}


def test_new_settings_restart_the_tracks_under_ids_never_handed_out_before() -> None:
    """A camera's engine or rate changed in the site config built a new tracker whose ids began at 0 again,
    while the camera's incidents carried on: a new object could take the id of one an incident follows."""
    tracker = CameraTracker(TrackingConfig(), fps=5.0)
    box = [(0, 0, 50, 50)]
    before = {int(tracker.update(_detections(box), at=i * 0.2).tracker_id[0]) for i in range(5)}

    tracker.reconfigure(TrackingConfig(lost_track_s=9.0), fps=2.0)
    after = [int(tracker.update(_detections(box), at=1.0 + i * 0.5).tracker_id[0]) for i in range(5)]

    assert tracker.config.lost_track_s == 9.0
    assert (before - {UNTRACKED}).isdisjoint(after) and set(after) - {UNTRACKED}


def test_disabled_tracking_marks_everything_untracked() -> None:
    tracker = CameraTracker(TrackingConfig(enabled=False), fps=5.0)
    tracked = tracker.update(_detections([(0, 0, 10, 10)] * 2), at=0.0)
    assert tracked.tracker_id is not None and tracked.tracker_id.tolist() == [UNTRACKED, UNTRACKED]


@pytest.mark.slow
@pytest.mark.skipif(
    not (COCO_INT8.is_file() and PEOPLE_CLIP.is_file()),
    reason=f"needs the shared COCO detector and people_one_by_one.mp4 under {SHARED}",
)
def test_person_crossing_a_real_clip_keeps_one_track_id() -> None:
    """people_one_by_one.mp4: one person is in view from ~7 s to ~19.5 s, the next from ~23 s."""
    detector = load_detector(str(COCO_INT8), DetectorConfig(device="cpu"))
    tracker = CameraTracker(TrackingConfig(), fps=10 / 3)
    sampled: list[tuple[float, np.ndarray]] = []
    with av.open(str(PEOPLE_CLIP)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            at = float(frame.pts * stream.time_base)
            if at > 26.0:
                break
            if at >= 5.0 and i % 3 == 0:  # 10 fps file analysed at 3.3 fps from 5 s on
                sampled.append((at, frame.to_ndarray(format="bgr24")))
    # Detected in batches (every core works, as in the runner), tracked in order.
    detected = [
        d for k in range(0, len(sampled), 8) for d in detector.detect([im for _, im in sampled[k : k + 8]])
    ]
    first_visit: list[int] = []
    second_visit: list[int] = []
    for (at, _), detections in zip(sampled, detected, strict=True):
        people = tracker.update(detections, at).filter(detections.class_id == 0)
        assert people.tracker_id is not None
        if 8.0 <= at <= 18.5 and len(people) == 1:
            first_visit.append(int(people.tracker_id[0]))
        elif at >= 24.0 and len(people) == 1:
            second_visit.append(int(people.tracker_id[0]))

    assert len(first_visit) >= 25, "the detector should see the person through the first visit"
    main_id, count = Counter(first_visit).most_common(1)[0]
    assert main_id != UNTRACKED
    assert count >= 0.9 * len(first_visit), Counter(first_visit)
    assert second_visit and Counter(second_visit).most_common(1)[0][0] not in (main_id, UNTRACKED)


@pytest.mark.parametrize("is_tracking", [True, False], ids=["tracking", "tracking-off"])
def test_non_finite_boxes_are_dropped_counted_and_logged_once(
    is_tracking: bool, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = CameraTracker(TrackingConfig(enabled=is_tracking), fps=5.0, camera_id="cam-7")
    boxes = [(10, 10, 50, 90), (np.nan,) * 4, (100, 10, 140, 90), (0, 0, np.inf, np.inf)]
    with caplog.at_level("WARNING", logger="anjian.pipeline.tracking"):
        for i in range(5):
            tracked = tracker.update(_detections(boxes), at=i * 0.2)
    assert tracked.xyxy.tolist() == [[10, 10, 50, 90], [100, 10, 140, 90]]  # the finite ones, in order
    assert tracked.tracker_id is not None and len(tracked.tracker_id) == 2
    assert tracker.dropped_non_finite == 10
    [record] = caplog.records
    assert "cam-7" in record.getMessage() and "non-finite" in record.getMessage()


def test_every_rule_gets_a_frame_holding_a_nan_box() -> None:
    zones = [
        {"id": "door", "kind": "exit", "polygon": [(0, 0), (0.4, 0), (0.4, 1), (0, 1)]},
        {"id": "floor", "kind": "dust", "polygon": [(0.5, 0), (1, 0), (1, 0.4), (0.5, 0.4)]},
        {"id": "desk", "kind": "post", "polygon": [(0.5, 0.5), (1, 0.5), (1, 1), (0.5, 1)]},
    ]
    behaviours = [spec.key for spec in REGISTRY.specs]  # every shipped rule, a new one too
    camera = CameraPipelineConfig(id="cam", url="x.mp4", zones=zones, behaviours={b: {} for b in behaviours})
    rules = build_rules(camera, CONTEXT)
    tracker = CameraTracker(TrackingConfig(enabled=False), fps=1.0)
    for class_id in NAMES:
        bad = Detections(
            xyxy=np.array([[np.nan] * 4, [20, 20, 60, 90]], np.float32),
            confidence=np.full(2, 0.9, np.float32),
            class_id=np.full(2, class_id, np.int32),
            class_names=NAMES,
        )
        for i in range(3):
            image = np.random.default_rng(i).integers(0, 255, (100, 200, 3), dtype=np.uint8)
            tracked = tracker.update(bad, T0 + class_id * 10 + i)
            for rule in rules:
                rule.process(frame(T0 + class_id * 10 + i, i, image), tracked)  # raises on a NaN box
