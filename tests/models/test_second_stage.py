"""The cigarette second stage: upper-body crops, crop boxes mapped back to the frame, merged into the primary's."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from anjian.models.config import DetectorConfig
from anjian.models.crop_geometry import boxes_from_crop, boxes_into_crop, upper_body_regions
from anjian.models.detections import Detections
from anjian.models.errors import ModelLoadError
from anjian.models.loader import load_detector
from anjian.models.second_stage import SecondStageConfig, SecondStageDetector
from tests.support.scripted_detector import Box, ScriptedDetector

PRIMARY_NAMES = {0: "person", 1: "fallen_person", 2: "fire", 3: "smoke", 4: "cigarette"}
REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "registry" / "anjian-n" / "1" / "model.onnx"


class CropModel:
    """A crop model that records the crops it is given and finds one box at a fixed spot in each."""

    def __init__(self, box: tuple[float, float, float, float], score: float = 0.8) -> None:
        self.class_names = {0: "cigarette"}
        self.version = "crops@1"
        self.class_thresholds: dict[str, float] = {}
        self.calls: list[list[tuple[int, int]]] = []
        self.box = box
        self.score = score

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.calls.append([im.shape[:2] for im in images])
        return [
            Detections(
                np.array([self.box], np.float32),
                np.array([self.score], np.float32),
                np.zeros(1, np.int32),
                self.class_names,
            )
            for _ in images
        ]


def _frame(tag: int, wh: tuple[int, int] = (400, 300)) -> np.ndarray:
    picture = np.full((wh[1], wh[0], 3), 90, np.uint8)
    picture[0, 0] = tag
    return picture


def _stage(primary_boxes: dict[int, list[Box]], crop: CropModel, **config: object) -> SecondStageDetector:
    primary = ScriptedDetector(PRIMARY_NAMES, primary_boxes)
    return SecondStageDetector(primary, crop, SecondStageConfig(model="crop.onnx", **config))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("person", "fraction", "margin", "expected"),
    [
        ((100, 50, 200, 250), 0.5, 0.0, (100, 50, 200, 150)),
        ((100, 50, 200, 250), 0.5, 0.1, (90, 40, 210, 160)),
        ((0, 0, 100, 200), 0.6, 0.2, (0, 0, 120, 144)),
        ((350, 250, 400, 300), 1.0, 0.5, (325, 225, 400, 300)),
        ((10, 10, 12, 12), 1.0, 0.0, (7, 7, 15, 15)),
    ],
    ids=[
        "top-half",
        "margin-grows-each-side",
        "clipped-at-frame-origin",
        "clipped-at-frame-corner",
        "tiny-widened",
    ],
)
def test_upper_body_region_is_the_top_of_the_box_grown_by_the_margin_and_clipped(
    person: tuple[int, int, int, int], fraction: float, margin: float, expected: tuple[int, int, int, int]
) -> None:
    got = upper_body_regions(np.array([person], np.float32), (400, 300), fraction=fraction, margin=margin)
    assert got.tolist() == [list(expected)]


@pytest.mark.parametrize(
    ("fraction", "margin", "match"),
    [(0.0, 0.1, "fraction"), (1.5, 0.1, "fraction"), (0.5, -0.1, "margin")],
    ids=["zero-fraction", "fraction-over-one", "negative-margin"],
)
def test_upper_body_region_refuses_bad_geometry(fraction: float, margin: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        upper_body_regions(np.zeros((1, 4), np.float32), (10, 10), fraction=fraction, margin=margin)


def test_boxes_move_into_a_crop_and_back_unchanged() -> None:
    crop = np.array([50, 40, 150, 140])
    frame_boxes = np.array([[60, 50, 70, 60], [140, 130, 170, 160], [0, 0, 10, 10]], np.float32)
    inside, kept = boxes_into_crop(frame_boxes, crop, min_inside=0.5)
    assert kept.tolist() == [True, False, False]
    assert inside.tolist() == [[10, 10, 20, 20]]
    assert boxes_from_crop(inside, crop).tolist() == [[60, 50, 70, 60]]


def test_crop_boxes_come_back_in_frame_pixels_under_the_primarys_cigarette_class() -> None:
    crop = CropModel((10, 20, 30, 26), score=0.7)
    stage = _stage({1: [(100, 50, 200, 250, 0.9, 0)]}, crop, fraction=0.5, margin=0.0)
    (found,) = stage.detect([_frame(1)])
    assert crop.calls == [[(100, 100)]]  # the crop: x 100-200, y 50-150
    cigarettes = found.filter(found.class_id == 4)
    assert cigarettes.xyxy.tolist() == [[110, 70, 130, 76]]
    assert cigarettes.confidence.tolist() == pytest.approx([0.7])
    assert found.names().count("person") == 1
    assert stage.version == "scripted@1+crops@1"


def test_all_crops_of_a_batch_go_to_the_crop_model_in_one_call() -> None:
    crop = CropModel((0, 0, 5, 5))
    boxes: dict[int, list[Box]] = {
        1: [(0, 0, 100, 200, 0.9, 0), (200, 0, 300, 200, 0.8, 0)],
        2: [(50, 50, 150, 250, 0.6, 1)],  # a fallen person is not cropped by default
        3: [(10, 10, 110, 210, 0.95, 0)],
    }
    stage = _stage(boxes, crop)
    results = stage.detect([_frame(1), _frame(2), _frame(3)])
    assert len(crop.calls) == 1 and len(crop.calls[0]) == 3
    assert [int((d.class_id == 4).sum()) for d in results] == [2, 0, 1]


def test_people_below_the_score_are_not_cropped_and_no_crop_means_no_call() -> None:
    crop = CropModel((0, 0, 5, 5))
    stage = _stage({1: [(0, 0, 100, 200, 0.2, 0)]}, crop, min_score=0.3)
    (found,) = stage.detect([_frame(1)])
    assert crop.calls == []
    assert len(found) == 1


def test_max_crops_keeps_the_best_scored_people() -> None:
    crop = CropModel((0, 0, 5, 5))
    people: list[Box] = [(i * 40, 0, i * 40 + 30, 100, 0.3 + i * 0.1, 0) for i in range(5)]
    stage = _stage({1: people}, crop, max_crops=2, fraction=1.0, margin=0.0)
    stage.detect([_frame(1)])
    assert len(crop.calls[0]) == 2
    regions = stage.regions(ScriptedDetector(PRIMARY_NAMES, {1: people}).detect([_frame(1)])[0], (400, 300))
    assert regions[:, 0].tolist() == [160, 120]


@pytest.mark.parametrize(
    ("merge", "expected"),
    [
        ("nms", [([110, 70, 130, 76], 0.7), ([300, 200, 320, 210], 0.5)]),
        ("replace", [([110, 70, 130, 76], 0.7), ([300, 200, 320, 210], 0.5)]),
    ],
    ids=["nms", "replace"],
)
def test_merge_keeps_one_box_per_cigarette_and_the_primarys_outside_every_crop(
    merge: str, expected: list[tuple[list[int], float]]
) -> None:
    crop = CropModel((10, 20, 30, 26), score=0.7)
    primary: list[Box] = [
        (100, 50, 200, 250, 0.9, 0),
        (111, 70, 131, 76, 0.4, 4),  # the same cigarette, scored lower by the primary
        (300, 200, 320, 210, 0.5, 4),  # a cigarette outside every crop
    ]
    stage = _stage({1: primary}, crop, fraction=0.5, margin=0.0, merge=merge)
    (found,) = stage.detect([_frame(1)])
    cigarettes = found.filter(found.class_id == 4)
    got = sorted(zip(cigarettes.xyxy.tolist(), cigarettes.confidence.tolist(), strict=True))
    assert [(b, pytest.approx(s)) for b, s in got] == [(b, pytest.approx(s)) for b, s in expected]


def test_nms_merge_keeps_the_primarys_box_where_it_scores_higher_and_replace_drops_it() -> None:
    crop = CropModel((10, 20, 30, 26), score=0.3)
    primary: list[Box] = [(100, 50, 200, 250, 0.9, 0), (111, 70, 131, 76, 0.6, 4)]
    (nms,) = _stage({1: primary}, crop, fraction=0.5, margin=0.0).detect([_frame(1)])
    (replace,) = _stage({1: primary}, crop, fraction=0.5, margin=0.0, merge="replace").detect([_frame(1)])
    assert nms.filter(nms.class_id == 4).xyxy.tolist() == [[111, 70, 131, 76]]
    assert replace.filter(replace.class_id == 4).xyxy.tolist() == [[110, 70, 130, 76]]


def test_a_primary_without_the_target_class_is_refused() -> None:
    primary = ScriptedDetector({0: "person"}, {})
    with pytest.raises(ModelLoadError, match="no class 'cigarette'"):
        SecondStageDetector(primary, CropModel((0, 0, 1, 1)), SecondStageConfig(model="x.onnx"))


def _version(tmp_path: Path, name: str, second_stage: object | None) -> Path:
    folder = tmp_path / "registry" / name / "1"
    folder.mkdir(parents=True)
    (folder / "model.onnx").symlink_to(SHIPPED)
    meta: dict[str, object] = {"name": name, "version": "1"}
    if second_stage is not None:
        meta["second_stage"] = second_stage
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def _config(tmp_path: Path) -> DetectorConfig:
    return DetectorConfig(registry=tmp_path / "registry", device="cpu", backend="onnxruntime")


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped anjian-n 1 is needed as a stand-in model")
def test_the_loader_builds_the_second_stage_a_version_names(tmp_path: Path) -> None:
    _version(tmp_path, "crops", None)
    _version(tmp_path, "main", {"model": "builtin:crops/1", "margin": 0.2})
    detector = load_detector("builtin:main/1", _config(tmp_path))
    assert isinstance(detector, SecondStageDetector)
    assert detector.config.margin == 0.2
    assert detector.class_names[4] == "cigarette"
    assert "+" in detector.version
    assert detector.info.input_hw == (320, 320)  # the primary's, for tools that size their input
    assert detector.precision == "fp32"
    frame = np.zeros((240, 320, 3), np.uint8)
    assert len(detector.detect([frame, frame])) == 2
    plain = load_detector("builtin:crops/1", _config(tmp_path))
    assert not isinstance(plain, SecondStageDetector)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (
            {"model": "builtin:nowhere/1"},
            r"second_stage model 'builtin:nowhere/1' does not load: no builtin model",
        ),
        ({"model": "missing.onnx"}, "second_stage model 'missing.onnx' does not load: model file not found"),
        ({"model": "builtin:crops/1", "fraction": 2}, r"bad 'second_stage': fraction"),
        ({"model": "builtin:crops/1", "colour": "red"}, r"bad 'second_stage': colour"),
        ({"on_classes": ["person"]}, r"bad 'second_stage': model: Field required"),
        ({"model": "builtin:crops/1", "target_class": "cat"}, "no class 'cat'"),
    ],
    ids=[
        "unknown-builtin",
        "missing-file",
        "bad-fraction",
        "unknown-field",
        "no-model",
        "unknown-target-class",
    ],
)
@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped anjian-n 1 is needed as a stand-in model")
def test_a_bad_second_stage_fails_to_load_naming_what_is_wrong(
    tmp_path: Path, entry: dict[str, object], match: str
) -> None:
    _version(tmp_path, "crops", None)
    _version(tmp_path, "main", entry)
    with pytest.raises(ModelLoadError, match=match):
        load_detector("builtin:main/1", _config(tmp_path))


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped anjian-n 1 is needed as a stand-in model")
def test_a_crop_model_with_its_own_second_stage_is_refused(tmp_path: Path) -> None:
    _version(tmp_path, "crops", {"model": "builtin:main/1"})
    _version(tmp_path, "main", {"model": "builtin:crops/1"})
    with pytest.raises(ModelLoadError, match="has a second stage itself"):
        load_detector("builtin:main/1", _config(tmp_path))


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda text: text[: len(text) // 2], r"meta\.json: cannot read the version's metadata"),
        (lambda text: "[1, 2]", r"meta\.json: the version's metadata must be a JSON object, got list"),
    ],
    ids=["truncated", "not-an-object"],
)
@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped anjian-n 1 is needed as a stand-in model")
def test_a_damaged_meta_json_fails_to_load_rather_than_dropping_the_second_stage(
    tmp_path: Path, damage: Callable[[str], str], match: str
) -> None:
    _version(tmp_path, "crops", None)
    folder = _version(tmp_path, "main", {"model": "builtin:crops/1"})
    meta = folder / "meta.json"
    meta.write_text(damage(meta.read_text()))
    with pytest.raises(ModelLoadError, match=match):
        load_detector("builtin:main/1", _config(tmp_path))
