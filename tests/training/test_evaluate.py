"""Per-class AP in numpy: hand-checked cases, class mapping, a real detector on real images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from anjian.datasets.classmap import ClassMap
from anjian.datasets.labels import DetectionSet, LabelledImage
from anjian.datasets.yolo import load_yolo_set
from anjian.models.detections import Detections
from anjian.training.evaluate import average_precision, evaluate_detector, match_predictions
from tests.support.real_data import copy_yolo_sample, require_shared_data


class _ScriptedDetector:
    """Returns, per image file name, the boxes a test wrote down (pixels)."""

    version = "scripted@1"

    def __init__(
        self,
        names: dict[int, str],
        boxes: dict[str, list[tuple[float, float, float, float, float, int]]],
        thresholds: dict[str, float] | None = None,
    ):
        self.class_names = names
        self.class_thresholds = thresholds or {}
        self._boxes = boxes
        self.calls: list[int] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.calls.append(len(images))
        out = []
        for image in images:
            rows = self._boxes[str(int(image[0, 0, 0]))]
            arr = np.array([r[:5] for r in rows], np.float32).reshape(-1, 5)
            out.append(
                Detections(arr[:, :4], arr[:, 4], np.array([r[5] for r in rows], np.int32), self.class_names)
            )
        return out


def _image(tmp_path: Path, tag: int) -> Path:
    """A 100x200 image whose first pixel says which one it is."""
    path = tmp_path / f"{tag}.png"
    picture = np.zeros((100, 200, 3), np.uint8)
    picture[0, 0] = tag
    cv2.imwrite(str(path), picture)
    return path


def _dataset(tmp_path: Path, labels: dict[int, list[list[float]]], names: tuple[str, ...]) -> DetectionSet:
    images = [
        LabelledImage(_image(tmp_path, tag), "val", np.array(rows, np.float32).reshape(-1, 5), "t")
        for tag, rows in labels.items()
    ]
    return DetectionSet("t", names, images)


def test_perfect_detections_score_one_and_a_confident_false_positive_costs_precision(tmp_path: Path) -> None:
    # image 1: a fire box at x 40..80, y 30..70 (normalised cx .3, cy .5, w .2, h .4)
    data = _dataset(tmp_path, {1: [[0, 0.3, 0.5, 0.2, 0.4]], 2: [[0, 0.7, 0.5, 0.2, 0.4]]}, ("fire",))
    exact = {"1": [(40, 30, 80, 70, 0.9, 0)], "2": [(120, 30, 160, 70, 0.8, 0)]}
    report = evaluate_detector(_ScriptedDetector({0: "fire"}, exact), data)
    [fire] = report.classes
    assert (fire.ap50, fire.ap50_95, fire.precision, fire.recall, fire.instances) == (1.0, 1.0, 1.0, 1.0, 2)

    with_fp = {"1": [(40, 30, 80, 70, 0.9, 0), (0, 0, 20, 20, 0.95, 0)], "2": [(120, 30, 160, 70, 0.8, 0)]}
    [fire] = evaluate_detector(_ScriptedDetector({0: "fire"}, with_fp), data).classes
    # ranked: FP, TP, TP -> precision envelope 2/3 from recall 0 to 1
    assert fire.ap50 == pytest.approx(2 / 3, abs=1e-6)
    assert (fire.precision, fire.recall) == (pytest.approx(2 / 3), 1.0)


def test_loose_boxes_pass_at_iou_half_but_not_at_strict_thresholds(tmp_path: Path) -> None:
    data = _dataset(tmp_path, {1: [[0, 0.3, 0.5, 0.2, 0.4]]}, ("fire",))
    shifted = {"1": [(48, 30, 88, 70, 0.9, 0)]}  # IoU 32/48 = 0.667
    [fire] = evaluate_detector(_ScriptedDetector({0: "fire"}, shifted), data).classes
    assert fire.ap50 == 1.0
    assert fire.ap50_95 == pytest.approx(0.4)  # matched at 0.50, 0.55, 0.60, 0.65 of ten thresholds


def test_data_classes_map_onto_model_classes_and_the_rest_is_ignored(tmp_path: Path) -> None:
    # data: 0 Fire, 1 default, 2 smoke; model: 0 person, 1 fire, 2 smoke
    data = _dataset(
        tmp_path, {1: [[0, 0.3, 0.5, 0.2, 0.4], [1, 0.7, 0.5, 0.2, 0.4]]}, ("Fire", "default", "smoke")
    )
    model = {0: "person", 1: "fire", 2: "smoke"}
    boxes = {"1": [(40, 30, 80, 70, 0.9, 1), (120, 30, 160, 70, 0.9, 0), (120, 30, 160, 70, 0.9, 2)]}
    class_map = ClassMap(classes=("fire", "smoke"), map={"Fire": "fire", "default": None})

    report = evaluate_detector(_ScriptedDetector(model, boxes), data, class_map=class_map)

    rows = {c.name: c for c in report.classes}
    assert set(rows) == {"fire", "smoke"}  # person: no data class maps onto it
    assert rows["fire"].ap50 == 1.0 and rows["fire"].data_classes == ("Fire",)
    assert rows["smoke"].instances == 0 and np.isnan(rows["smoke"].ap50)  # a box but no ground truth
    assert report.ignored_data_classes == ("default",) and report.ignored_model_classes == ("person",)
    assert report.map50 == 1.0  # the mean skips classes without ground truth


def test_false_alarms_count_unmatched_boxes_at_the_pipeline_threshold_even_without_ground_truth(
    tmp_path: Path,
) -> None:
    """A class scored on a split with no box of it showed NaN only: its false alarms were nowhere."""
    data = _dataset(tmp_path, {1: [[0, 0.3, 0.5, 0.2, 0.4]], 2: []}, ("fire", "smoke"))
    boxes = {
        "1": [(40, 30, 80, 70, 0.9, 0), (0, 0, 20, 20, 0.6, 0), (0, 0, 20, 20, 0.2, 0)],
        "2": [(10, 10, 50, 50, 0.7, 1), (60, 10, 90, 50, 0.5, 1), (100, 10, 150, 50, 0.3, 1)],
    }
    detector = _ScriptedDetector({0: "fire", 1: "smoke"}, boxes, thresholds={"smoke": 0.4})

    rows = {c.name: c for c in evaluate_detector(detector, data).classes}

    # fire: the matched box is no alarm; 0.6 is one, 0.2 is below the rules' default (0.35)
    assert (rows["fire"].false_alarms, rows["fire"].alarm_confidence) == (1, 0.35)
    # smoke: no ground truth anywhere, so P, R and AP say nothing; two boxes at or above its calibrated 0.4
    assert rows["smoke"].instances == 0 and np.isnan(rows["smoke"].ap50)
    assert (rows["smoke"].false_alarms, rows["smoke"].alarm_confidence) == (2, 0.4)
    assert rows["smoke"].to_dict()["false_alarms"] == 2


def test_an_unreadable_image_keeps_its_ground_truth_as_missed_and_is_named(tmp_path: Path) -> None:
    """An unreadable image was skipped with a log line: its boxes left the count and recall rose."""
    data = _dataset(tmp_path, {1: [[0, 0.3, 0.5, 0.2, 0.4]], 2: [[0, 0.7, 0.5, 0.2, 0.4]]}, ("fire",))
    (tmp_path / "2.png").write_bytes(b"not a png")
    exact = {"1": [(40, 30, 80, 70, 0.9, 0)]}

    report = evaluate_detector(_ScriptedDetector({0: "fire"}, exact), data)

    [fire] = report.classes
    assert (fire.instances, fire.images, fire.images_scored, fire.recall) == (2, 2, 2, 0.5)
    assert fire.ap50 == pytest.approx(0.5, abs=0.01)
    assert report.unreadable_images == (str(tmp_path / "2.png"),)
    assert report.to_dict()["unreadable_images"] == [str(tmp_path / "2.png")]


def test_nothing_in_common_is_an_error(tmp_path: Path) -> None:
    data = _dataset(tmp_path, {1: []}, ("cat",))
    with pytest.raises(ValueError, match="maps onto the model"):
        evaluate_detector(_ScriptedDetector({0: "fire"}, {"1": []}), data)


def test_matching_uses_each_ground_truth_once() -> None:
    gt = np.array([[0, 0, 10, 10]], np.float32)
    preds = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    tp = match_predictions(preds, np.zeros(2, np.int64), gt, np.zeros(1, np.int64), np.array([0.5]))
    assert tp[:, 0].tolist() == [True, False]


def test_a_prediction_best_for_two_ground_truths_leaves_the_other_to_the_next_prediction() -> None:
    """Two people side by side: A overlaps both (0.82, 0.67), B only the second (0.54). Taking the best
    prediction per ground truth first gave A both, matched one and left B and the second person unmatched."""
    gt = np.array([[0, 0, 10, 10], [3, 0, 13, 10]], np.float32)
    preds = np.array([[1, 0, 11, 10], [6, 0, 16, 10]], np.float32)
    tp = match_predictions(preds, np.zeros(2, np.int64), gt, np.zeros(2, np.int64), np.array([0.5]))
    assert tp[:, 0].tolist() == [True, True]


def test_average_precision_without_predictions_or_ground_truth() -> None:
    ap, p, r, _ = average_precision(np.zeros((0, 10), bool), np.zeros(0), 3)
    assert ap.tolist() == [0.0] * 10 and (p, r) == (0.0, 0.0)
    ap, *_ = average_precision(np.zeros((2, 10), bool), np.ones(2), 0)
    assert np.isnan(ap).all()


@pytest.mark.slow
def test_coco_detector_finds_real_forklift_workers(tmp_path: Path) -> None:
    from anjian.models.config import DetectorConfig
    from anjian.models.onnx_detector import OnnxDetector

    weights = require_shared_data("weights", "coco_yolov8n_int8.onnx")
    data = load_yolo_set(
        copy_yolo_sample("forklift_person", tmp_path / "fp", per_split=12, splits=("train", "val"))
    )
    detector = OnnxDetector(
        weights, DetectorConfig(path=str(weights), confidence_threshold=0.001, device="cpu")
    )

    report = evaluate_detector(detector, data, split="val", batch_size=4)

    [person] = report.classes  # 'forklift' has no COCO class: ignored
    assert report.ignored_data_classes == ("forklift",)
    assert person.instances > 0 and person.ap50 > 0.3, report.to_dict()
