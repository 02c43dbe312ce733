"""Eval scores what training saw: the class map's overlap rule, and only the classes each source labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anjian.datasets.classmap import ClassMap, OverlapPolicy, load_class_map
from anjian.datasets.labels import DetectionSet, LabelledImage
from anjian.datasets.merge import merge_sets
from anjian.datasets.yolo import load_yolo_set, write_yolo_set
from anjian.training.evaluate import evaluate_detector
from tests.support.real_data import copy_yolo_sample, require_shared_data
from tests.training.test_evaluate import _image, _ScriptedDetector

REPO = Path(__file__).resolve().parents[2]

# fall_hospital-like: every person carries an identity box and a posture box on the same spot
_HOSPITAL_CLASSES = ("patient", "stand", "fall", "bed")
_HOSPITAL_MAP = ClassMap(
    classes=("person", "fallen_person"),
    sets={"hospital": {"patient": "person", "stand": "person", "fall": "fallen_person", "bed": None}},
    overlap=OverlapPolicy(iou=0.7, priority=("fallen_person", "person")),
)


def _hospital(tmp_path: Path) -> DetectionSet:
    """Image 1: one standing patient (patient + stand on one box). Image 2: a fallen patient."""
    rows_1 = [[0, 0.3, 0.5, 0.2, 0.4], [1, 0.3, 0.5, 0.2, 0.4]]
    rows_2 = [[0, 0.7, 0.5, 0.2, 0.4], [2, 0.7, 0.5, 0.2, 0.4], [3, 0.5, 0.8, 0.9, 0.3]]
    images = [
        LabelledImage(_image(tmp_path, 1), "val", np.array(rows_1, np.float32), "hospital"),
        LabelledImage(_image(tmp_path, 2), "val", np.array(rows_2, np.float32), "hospital"),
    ]
    return DetectionSet(
        "hospital", _HOSPITAL_CLASSES, images, labelled_classes={"hospital": _HOSPITAL_CLASSES}
    )


_MODEL = {0: "person", 1: "fallen_person", 2: "fire"}
_FOUND = {"1": [(40, 30, 80, 70, 0.9, 0)], "2": [(120, 30, 160, 70, 0.8, 1)]}


def test_a_class_map_applies_its_overlap_rule_so_a_person_labelled_twice_counts_once(tmp_path: Path) -> None:
    report = evaluate_detector(
        _ScriptedDetector(_MODEL, _FOUND), _hospital(tmp_path), class_map=_HOSPITAL_MAP
    )

    rows = {c.name: c for c in report.classes}
    assert rows["person"].instances == 1 and rows["person"].ap50 == 1.0
    assert rows["fallen_person"].instances == 1 and rows["fallen_person"].ap50 == 1.0
    assert rows["person"].data_classes == ("patient", "stand")
    assert report.ignored_data_classes == ("bed",)


def test_raw_set_with_the_map_and_the_merged_set_give_the_same_figures(tmp_path: Path) -> None:
    raw = _hospital(tmp_path)
    merged, _ = merge_sets([raw], _HOSPITAL_MAP, name="merged")
    data_yaml = write_yolo_set(merged, tmp_path / "merged", by_source=True)

    via_map = evaluate_detector(_ScriptedDetector(_MODEL, _FOUND), raw, class_map=_HOSPITAL_MAP)
    via_merged = evaluate_detector(_ScriptedDetector(_MODEL, _FOUND), load_yolo_set(data_yaml))

    def figures(report: object) -> list[tuple[object, ...]]:
        return [(c.name, c.instances, c.images, c.ap50, c.ap50_95) for c in report.classes]  # type: ignore[attr-defined]

    assert figures(via_map) == figures(via_merged)


def test_on_a_merged_set_a_class_is_scored_only_on_the_sources_that_label_it(tmp_path: Path) -> None:
    # source "fires" labels fire only; source "people" labels person only
    fires = DetectionSet(
        "fires",
        ("fire",),
        [LabelledImage(_image(tmp_path, 1), "val", np.array([[0, 0.3, 0.5, 0.2, 0.4]], np.float32))],
    )
    people = DetectionSet(
        "people",
        ("person",),
        [LabelledImage(_image(tmp_path, 2), "val", np.array([[0, 0.7, 0.5, 0.2, 0.4]], np.float32))],
    )
    merged, _ = merge_sets([fires, people], ClassMap(classes=("person", "fire")), name="m")
    # the model also (rightly) finds a person standing by the fire, which the fire set never labels
    found = {
        "1": [(40, 30, 80, 70, 0.9, 2), (150, 20, 190, 90, 0.95, 0)],
        "2": [(120, 30, 160, 70, 0.8, 0)],
    }

    report = evaluate_detector(_ScriptedDetector(_MODEL, found), merged)

    rows = {c.name: c for c in report.classes}
    assert rows["person"].ap50 == 1.0 and rows["person"].precision == 1.0  # not a false positive
    assert rows["person"].images_scored == 1 and rows["person"].sources == ("people",)
    assert rows["fire"].ap50 == 1.0 and rows["fire"].sources == ("fires",)
    assert report.to_dict()["classes"][0]["images_scored"] == 1  # type: ignore[index]


def test_per_source_labelled_classes_survive_write_read_and_split(tmp_path: Path) -> None:
    from anjian.datasets.split import split_by_group

    fires = DetectionSet(
        "fires",
        ("fire",),
        [LabelledImage(_image(tmp_path, 1), "train", np.array([[0, 0.3, 0.5, 0.2, 0.4]], np.float32))],
    )
    people = DetectionSet(
        "people", ("person",), [LabelledImage(_image(tmp_path, 2), "val", np.zeros((0, 5), np.float32))]
    )
    merged, _ = merge_sets([fires, people], ClassMap(classes=("person", "fire")), name="m")
    for by_source in (True, False):
        again = load_yolo_set(write_yolo_set(merged, tmp_path / f"m-{by_source}", by_source=by_source))
        assert again.labelled_classes == {"fires": ("fire",), "people": ("person",)}
        assert sorted(im.source for im in again.images) == ["fires", "people"]
        resplit = split_by_group(again, {"train": 0.5, "val": 0.5})
        twice = load_yolo_set(write_yolo_set(resplit, tmp_path / f"s-{by_source}"))
        assert twice.labelled_classes == again.labelled_classes
        assert not any("fires__fires__" in im.image.name for im in twice.images)


def test_a_recorded_class_the_set_does_not_have_is_refused(tmp_path: Path) -> None:
    from anjian.datasets.errors import DatasetFormatError

    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "data.yaml").write_text("val: images/val\nnames: [fire]\nlabelled_classes: {a: [smoke]}\n")
    with pytest.raises(DatasetFormatError, match=r"labelled_classes\['a'\] names \['smoke'\]"):
        load_yolo_set(tmp_path / "data.yaml")


@pytest.mark.slow
def test_real_hospital_set_scores_the_same_raw_with_the_map_and_merged(tmp_path: Path) -> None:
    from anjian.models.config import DetectorConfig
    from anjian.models.loader import load_detector

    weights = require_shared_data("weights", "coco_yolov8n_int8.onnx")
    sample = tmp_path / "fall_hospital"
    load = copy_yolo_sample("fall_hospital", sample, per_split=16)
    raw = load_yolo_set(load)
    class_map = load_class_map(REPO / "datasets" / "maps" / "anjian.yaml")
    merged, _ = merge_sets([raw], class_map, name="anjian")
    merged_yaml = write_yolo_set(merged, tmp_path / "merged", by_source=True)
    detector = load_detector(
        weights, DetectorConfig(path=str(weights), confidence_threshold=0.001, device="cpu")
    )

    via_map = evaluate_detector(detector, raw, class_map=class_map)
    via_merged = evaluate_detector(detector, load_yolo_set(merged_yaml))

    [person_map] = [c for c in via_map.classes if c.name == "person"]
    [person_merged] = [c for c in via_merged.classes if c.name == "person"]
    to_person = [i for i, n in enumerate(raw.class_names) if class_map.target_of(raw.name, n) == "person"]
    raw_person_boxes = sum(int(np.isin(im.class_ids, to_person).sum()) for im in raw.images)
    assert person_map.instances == person_merged.instances
    assert 0 < person_map.instances < raw_person_boxes  # identity + posture boxes of one person: one
    assert person_map.ap50 == pytest.approx(person_merged.ap50)
