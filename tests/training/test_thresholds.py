"""Per-class operating thresholds: F-beta on the PR curve, pooled over sources, stamped into the model file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from anjian.datasets.labels import DetectionSet, LabelledImage
from anjian.models.config import DetectorConfig
from anjian.models.detections import Detections
from anjian.models.errors import ModelMetadataError
from anjian.models.metadata import parse_class_thresholds
from anjian.models.onnx_detector import OnnxDetector
from anjian.models.registry import resolve_model_path
from anjian.service.cli import app
from anjian.training.evaluate import ClassResult, EvalReport, evaluate_detector
from anjian.training.thresholds import (
    ScoredPredictions,
    calibrate_thresholds,
    load_thresholds_json,
    pick_threshold,
    stamp_thresholds,
    thresholds_of,
)
from tests.support.real_data import copy_yolo_sample, require_shared_data

# Three hits, three misses, a hit, a miss, scored 0.9 down to 0.2; five boxes to find.
# Keeping 3 (>= 0.7): P 1.00, R 0.6 -> F1 0.750, F2 0.652
# Keeping 7 (>= 0.3): P 0.57, R 0.8 -> F1 0.667, F2 0.741
CURVE = ScoredPredictions(
    confidence=np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2], np.float32),
    is_tp=np.array([1, 1, 1, 0, 0, 0, 1, 0], bool),
    instances=5,
)


def _brute_force(scored: ScoredPredictions, beta: float) -> float:
    """The best F-beta over every candidate threshold, counting boxes at or above it."""
    best = (-1.0, 0.0)
    for t in sorted(set(scored.confidence.tolist()), reverse=True):
        kept = scored.confidence >= t
        tp = int((scored.is_tp & kept).sum())
        p, r = tp / int(kept.sum()), tp / scored.instances
        f = (1 + beta**2) * p * r / (beta**2 * p + r) if tp else 0.0
        if f > best[0]:
            best = (f, t)
    return best[1]


def test_f1_keeps_the_clean_head_of_the_curve_and_f2_reaches_for_recall() -> None:
    f1 = pick_threshold("person", CURVE, beta=1.0)
    f2 = pick_threshold("fire", CURVE, beta=2.0)
    assert f1 is not None and f2 is not None
    assert (f1.threshold, f1.precision, f1.recall) == (0.7, 1.0, 0.6)
    assert f1.f_beta == pytest.approx(0.75)
    assert (f2.threshold, f2.recall) == (0.3, 0.8)
    assert f2.precision == pytest.approx(4 / 7) and f2.f_beta == pytest.approx(0.741, abs=1e-3)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_choice_matches_an_exhaustive_search(seed: int, beta: float) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    confidence = np.round(rng.uniform(0.05, 0.95, n), 2).astype(np.float32)  # many ties
    is_tp = rng.uniform(size=n) < confidence  # higher scores are right more often
    scored = ScoredPredictions(confidence, is_tp, int(is_tp.sum()) + 20)
    choice = pick_threshold("x", scored, beta=beta, min_score=0.01, max_score=0.99)
    assert choice is not None
    assert choice.threshold == pytest.approx(_brute_force(scored, beta))  # scores of 2 decimals


def test_tied_scores_are_one_operating_point() -> None:
    # the two 0.5 boxes come and go together: a threshold cannot keep the hit without the miss
    scored = ScoredPredictions(np.array([0.5, 0.5], np.float32), np.array([True, False]), 1)
    choice = pick_threshold("fire", scored, beta=2.0)
    assert choice is not None and (choice.threshold, choice.precision, choice.recall) == (0.5, 0.5, 1.0)


def test_a_hopeless_curve_is_kept_off_the_evaluation_floor() -> None:
    scored = ScoredPredictions(np.array([0.9, 0.01, 0.002], np.float32), np.array([False, True, True]), 2)
    choice = pick_threshold("cigarette", scored, beta=1.0, min_score=0.05)
    assert choice is not None and choice.threshold == 0.05 and choice.recall == 0.0


@pytest.mark.parametrize(
    "scored",
    [
        ScoredPredictions(np.array([0.9], np.float32), np.array([False]), 3),
        ScoredPredictions(np.array([0.9], np.float32), np.array([False]), 0),
    ],
    ids=["no-true-positive", "no-ground-truth"],
)
def test_a_class_that_cannot_be_calibrated_gets_no_threshold(scored: ScoredPredictions) -> None:
    assert pick_threshold("smoke", scored) is None


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(ValueError, match="beta must be > 0"):
        pick_threshold("x", CURVE, beta=0)
    with pytest.raises(ValueError, match="min_score <= max_score"):
        pick_threshold("x", CURVE, min_score=0.5, max_score=0.4)
    with pytest.raises(ValueError, match="one length"):
        ScoredPredictions(np.zeros(3, np.float32), np.zeros(2, bool), 1)


def _row(name: str, scored: ScoredPredictions | None) -> ClassResult:
    return ClassResult(name, (name,), 1, 1, 0.0, 0.0, 0.0, 0.0, 0.0, predictions=scored)


def test_sources_are_pooled_per_class_and_fire_is_recall_first() -> None:
    head = ScoredPredictions(CURVE.confidence[:4], CURVE.is_tp[:4], 3)
    tail = ScoredPredictions(CURVE.confidence[4:], CURVE.is_tp[4:], 2)
    reports = [
        EvalReport("m", "a/val", 1, (_row("fire", head), _row("person", head))),
        EvalReport("m", "b/val", 1, (_row("fire", tail), _row("person", tail))),
    ]
    choices = calibrate_thresholds(reports)
    assert thresholds_of(choices) == {"fire": 0.3, "person": 0.7}  # the pooled CURVE, F2 and F1
    assert choices["fire"].to_dict()["beta"] == 2.0 and choices["fire"].instances == 5

    with pytest.raises(ValueError, match="a/val: class 'fire' carries no scored predictions"):
        calibrate_thresholds([EvalReport("m", "a/val", 1, (_row("fire", None),))])


class _ScriptedDetector:
    """Returns, per image, the boxes a test wrote down (the first pixel says which image)."""

    version = "scripted@1"
    class_names = {0: "fire"}  # noqa: RUF012 - read-only
    class_thresholds: dict[str, float] = {}  # noqa: RUF012 - read-only

    def __init__(self, boxes: dict[int, list[tuple[float, float, float, float, float]]]) -> None:
        self._boxes = boxes

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            rows = np.array(self._boxes[int(image[0, 0, 0])], np.float32).reshape(-1, 5)
            out.append(Detections(rows[:, :4], rows[:, 4], np.zeros(len(rows), np.int32), self.class_names))
        return out


def test_an_evaluation_keeps_each_class_s_scored_predictions(tmp_path: Path) -> None:
    images = []
    for tag in (1, 2):
        picture = np.zeros((100, 200, 3), np.uint8)
        picture[0, 0] = tag
        cv2.imwrite(str(tmp_path / f"{tag}.png"), picture)
        boxes = np.array([[0, 0.3, 0.5, 0.2, 0.4]], np.float32)  # x 40..80, y 30..70
        images.append(LabelledImage(tmp_path / f"{tag}.png", "val", boxes, "t"))
    detector = _ScriptedDetector(
        {1: [(40, 30, 80, 70, 0.8), (150, 0, 190, 20, 0.6)], 2: [(40, 30, 80, 70, 0.4)]}
    )
    report = evaluate_detector(detector, DetectionSet("t", ("fire",), images))
    [fire] = report.classes
    assert fire.predictions is not None
    pairs = zip(fire.predictions.confidence.tolist(), fire.predictions.is_tp.tolist(), strict=True)
    assert sorted((round(c, 2), t) for c, t in pairs) == [(0.4, True), (0.6, False), (0.8, True)]
    assert fire.predictions.instances == 2
    assert "predictions" not in fire.to_dict()
    assert thresholds_of(calibrate_thresholds([report])) == {"fire": 0.4}  # F2: both fires, one false box


def test_stamped_thresholds_reach_the_detector_and_lower_its_floor(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx (the train extra) rewrites the metadata")
    model = stamp_thresholds(
        resolve_model_path("builtin:anjian-demo/1"), {"fire": 0.18, "smoke": 0.4}, tmp_path / "m.onnx"
    )
    detector = OnnxDetector(model, DetectorConfig(device="cpu"))
    assert detector.class_thresholds == {"fire": 0.18, "smoke": 0.4}
    assert detector.config.confidence_threshold == 0.18  # else a 0.2 fire would never reach the rules
    explicit = OnnxDetector(model, DetectorConfig(device="cpu", confidence_threshold=0.3))
    assert explicit.config.confidence_threshold == 0.3  # the site's own floor stands
    assert OnnxDetector(resolve_model_path("builtin:anjian-demo/1")).class_thresholds == {}

    with pytest.raises(ModelMetadataError, match="names class 'person', not one of"):
        stamp_thresholds(model, {"person": 0.3}, tmp_path / "bad.onnx")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"fire": 0.2', "is not JSON"),
        ("[0.2]", "must be a JSON object"),
        ('{"dust": 0.2}', "names class 'dust'"),
        ('{"fire": 1.5}', r"expected a number in \(0, 1\)"),
        ('{"fire": true}', r"expected a number in \(0, 1\)"),
    ],
    ids=["not-json", "not-an-object", "unknown-class", "out-of-range", "boolean"],
)
def test_malformed_threshold_metadata_is_explained(raw: str, expected: str) -> None:
    with pytest.raises(ModelMetadataError, match=expected):
        parse_class_thresholds(raw, {0: "fire", 1: "smoke"}, source="m.onnx")


def test_thresholds_are_read_from_an_eval_report_or_a_plain_mapping(tmp_path: Path) -> None:
    report = tmp_path / "eval.json"
    report.write_text(json.dumps({"model": "m", "thresholds": {"fire": {"threshold": 0.21, "beta": 2.0}}}))
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"fire": 0.21, "person": 0.5}))
    assert load_thresholds_json(report) == {"fire": 0.21}
    assert load_thresholds_json(plain) == {"fire": 0.21, "person": 0.5}
    plain.write_text(json.dumps({"fire": 2}))
    with pytest.raises(ValueError, match="threshold of 'fire' must be a number in"):
        load_thresholds_json(plain)
    with pytest.raises(ValueError, match="cannot read thresholds"):
        load_thresholds_json(tmp_path / "absent.json")


def test_eval_json_carries_each_class_s_calibrated_threshold(tmp_path: Path) -> None:
    weights = require_shared_data("weights", "coco_yolov8n_int8.onnx")
    data = copy_yolo_sample("forklift_person", tmp_path / "fp", per_split=6)
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        app, ["eval", "--model", str(weights), "--data", str(data), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    person = json.loads(out.read_text())["thresholds"]["person"]
    assert person["beta"] == 1.0 and 0.05 <= person["threshold"] <= 0.9 and person["recall"] > 0
    assert "calibrated thresholds" in result.output
    assert load_thresholds_json(out) == {"person": person["threshold"]}  # what `export --thresholds` stamps


@pytest.mark.parametrize(
    "content",
    ['{"fire": "high"}', '{"thresholds": {"fire": {"score": 0.3}}}'],
    ids=["not-a-number", "eval-entry-without-threshold"],
)
def test_export_refuses_a_thresholds_file_it_cannot_read(tmp_path: Path, content: str) -> None:
    (tmp_path / "t.json").write_text(content)
    args = ["export", str(tmp_path / "best.pt"), "--out", str(tmp_path / "out"), "--thresholds"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "t.json")], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "threshold of 'fire' must be a number" in result.output
    assert not (tmp_path / "out").exists()
