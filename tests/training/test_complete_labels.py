"""The default training path fills the classes a source never labels with the COCO teacher's people."""

from __future__ import annotations

from pathlib import Path

import yaml

from anjian.datasets.classmap import load_class_map
from anjian.datasets.merge import merge_sets
from anjian.datasets.yolo import load_yolo_set, write_yolo_set
from anjian.training.complete_labels import complete_labels, label_gaps
from tests.support.real_data import copy_yolo_sample, require_shared_data

REPO = Path(__file__).resolve().parents[2]


def _merged(tmp_path: Path) -> Path:
    cigarette = load_yolo_set(copy_yolo_sample("cigarette", tmp_path / "cigarette", per_split=6))
    forklift = load_yolo_set(copy_yolo_sample("forklift_person", tmp_path / "forklift_person", per_split=3))
    merged, _ = merge_sets(
        [cigarette, forklift], load_class_map(REPO / "datasets" / "maps" / "anjian.yaml"), name="m"
    )
    return write_yolo_set(merged, tmp_path / "merged", by_source=True)


def test_teacher_fills_people_in_the_cigarette_photos_and_reports_what_stays_unlabelled(
    tmp_path: Path,
) -> None:
    teacher = require_shared_data("weights", "coco_yolov8n_int8.onnx")
    data = _merged(tmp_path)
    assert "person" in label_gaps(load_yolo_set(data))["cigarette"]

    completion = complete_labels(data, tmp_path / "completed", teacher)

    assert completion.filled == {"cigarette": ("person",)}
    completed = load_yolo_set(completion.data_yaml)
    assert "person" in completed.labelled_classes["cigarette"]
    person = completed.class_names.index("person")
    people_in_cigarette_photos = sum(
        int((im.class_ids == person).sum()) for im in completed.images if im.source == "cigarette"
    )
    assert people_in_cigarette_photos > 0  # the smokers are people, not background
    assert "fire" in completion.remaining_gaps["cigarette"]  # no teacher knows fire
    assert "person" not in completion.remaining_gaps.get("cigarette", ())
    # the forklift set labels people itself: its labels are untouched
    before = {
        im.image.name: len(im.boxes) for im in load_yolo_set(data).images if im.source == "forklift_person"
    }
    after = {im.image.name: len(im.boxes) for im in completed.images if im.source == "forklift_person"}
    assert before == after


def test_a_set_without_gaps_is_trained_as_it_is(tmp_path: Path) -> None:
    data = copy_yolo_sample("forklift_person", tmp_path / "fp", per_split=2)

    completion = complete_labels(data, tmp_path / "completed", tmp_path / "no-teacher-needed.onnx")

    assert completion.data_yaml == data and not completion.filled and not completion.remaining_gaps
    assert not (tmp_path / "completed").exists()


def test_a_second_teacher_fills_only_its_sources_and_the_reports_add_up(tmp_path: Path) -> None:
    teacher = require_shared_data("weights", "coco_yolov8n_int8.onnx")
    cigarette = load_yolo_set(copy_yolo_sample("cigarette", tmp_path / "cigarette", per_split=4))
    fire = load_yolo_set(copy_yolo_sample("fire_continuous", tmp_path / "fire_continuous", per_split=6))
    merged, _ = merge_sets(
        [cigarette, fire], load_class_map(REPO / "datasets" / "maps" / "anjian.yaml"), name="m"
    )
    data = write_yolo_set(merged, tmp_path / "merged", by_source=True)
    people = complete_labels(data, tmp_path / "people", teacher)

    # the fire videos are full of unlabelled smoke: anjian-n's smoke fills it there, and only there
    smoke = complete_labels(
        people.data_yaml,
        tmp_path / "smoke",
        "builtin:anjian-n/2",
        classes={"smoke": "smoke"},
        sources=["fire_continuous"],
        min_confidence=0.05,
    )

    assert smoke.filled == {"fire_continuous": ("smoke",)}
    completed = load_yolo_set(smoke.data_yaml)
    assert "smoke" in completed.labelled_classes["fire_continuous"]
    assert "smoke" not in completed.labelled_classes["cigarette"]  # not trusted there: still a gap
    assert "smoke" in smoke.remaining_gaps["cigarette"]
    smoke_id = completed.class_names.index("smoke")
    assert sum(
        int((im.class_ids == smoke_id).sum()) for im in completed.images if im.source == "fire_continuous"
    )
    before = {
        im.image.name: len(im.boxes)
        for im in load_yolo_set(people.data_yaml).images
        if im.source == "cigarette"
    }
    assert before == {im.image.name: len(im.boxes) for im in completed.images if im.source == "cigarette"}
    # the report of the set says what both teachers added (training's card reads the people from it)
    report = yaml.safe_load(smoke.data_yaml.read_text())["pseudo_labels"]
    assert report["filled_classes"] == {"cigarette": ["person"], "fire_continuous": ["person", "smoke"]}
    assert {a["class"] for a in report["added"]} == {"person", "smoke"}
