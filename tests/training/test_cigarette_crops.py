"""The second stage's crop set: upper bodies cut as the running detector cuts them, cigarette boxes moved into them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from anjian.models.crop_geometry import upper_body_regions
from anjian.training.cigarette_crops import CropSpec, build_crop_set
from tests.support.scripted_detector import Box, ScriptedDetector, tagged_image

TEACHER_NAMES = {0: "person", 1: "bicycle"}


def _set(
    root: Path, names: list[str], images: dict[str, tuple[int, list[str]]], split: str = "train"
) -> Path:
    """A YOLO set of 200x100 tagged images; ``images`` maps a stem to (tag, label lines)."""
    for stem, (tag, lines) in images.items():
        tagged_image(root / "images" / split / f"{stem}.png", tag)
        label = root / "labels" / split / f"{stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(line + "\n" for line in lines))
    (root / "data.yaml").write_text(
        f"train: images/train\nval: images/val\nnc: {len(names)}\nnames: {names}\n"
    )
    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    return root / "data.yaml"


def _labels(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def test_cigarette_boxes_land_in_the_upper_body_crop_of_the_teachers_person(tmp_path: Path) -> None:
    # person at x 40-120, y 10-90 of a 200x100 image; a cigarette at x 90-100, y 30-34
    smoking = _set(tmp_path / "smoking", ["smoking"], {"a": (1, ["0 0.475 0.32 0.05 0.04"])})
    teacher = ScriptedDetector(TEACHER_NAMES, {1: [(40, 10, 120, 90, 0.9, 0), (0, 0, 5, 5, 0.9, 1)]})
    spec = CropSpec(fraction=0.5, margin=0.0)
    report = build_crop_set({"smoking_photos": smoking}, {}, tmp_path / "crops", teacher=teacher, spec=spec)
    crop = upper_body_regions(
        np.array([[40, 10, 120, 90]], np.float32), (200, 100), fraction=0.5, margin=0.0
    )[0]
    assert crop.tolist() == [40, 10, 120, 50]
    (image,) = (tmp_path / "crops" / "images" / "train").iterdir()
    assert cv2.imread(str(image)).shape[:2] == (40, 80)
    (row,) = _labels(tmp_path / "crops" / "labels" / "train" / f"{image.stem}.txt")
    # in the 80x40 crop: x 50-60, y 20-24
    assert row == pytest.approx([0, 55 / 80, 22 / 40, 10 / 80, 4 / 40], abs=1e-5)
    assert report.positive_crops == {"train": 1} and report.boxes == {"train": 1}
    assert "names: ['cigarette']" in (tmp_path / "crops" / "data.yaml").read_text()


def test_implausible_boxes_drop_the_image_and_lost_boxes_are_counted(tmp_path: Path) -> None:
    smoking = _set(
        tmp_path / "smoking",
        ["smoking"],
        {
            "whole": (1, ["0 0.5 0.5 0.9 0.9"]),  # covers most of the photo: no cigarette box
            "low": (2, ["0 0.475 0.32 0.05 0.04", "0 0.5 0.95 0.04 0.04"]),  # second one below the crop
        },
    )
    person: list[Box] = [(40, 10, 120, 90, 0.9, 0)]
    teacher = ScriptedDetector(TEACHER_NAMES, {1: person, 2: person})
    report = build_crop_set(
        {"smoking_photos": smoking},
        {},
        tmp_path / "crops",
        teacher=teacher,
        spec=CropSpec(fraction=0.5, margin=0.0),
        max_box_fraction=0.2,
    )
    assert report.dropped_images == 1
    assert report.lost_boxes == 1
    assert report.positive_crops == {"train": 1}


def test_people_only_sets_give_negatives_from_their_labels_capped_per_positive(tmp_path: Path) -> None:
    smoking = _set(tmp_path / "smoking", ["smoking"], {"a": (1, ["0 0.475 0.32 0.05 0.04"])})
    people = _set(
        tmp_path / "people",
        ["forklift", "person"],
        {f"p{i}": (10 + i, ["1 0.5 0.5 0.2 0.8", "0 0.2 0.2 0.1 0.1"]) for i in range(4)},
    )
    teacher = ScriptedDetector(TEACHER_NAMES, {1: [(40, 10, 120, 90, 0.9, 0)]})
    report = build_crop_set(
        {"smoking_photos": smoking},
        {"forklift_person": people},
        tmp_path / "crops",
        teacher=teacher,
        negatives_per_positive=2.0,
    )
    assert report.negative_crops == {"train": 2}
    negatives = sorted((tmp_path / "crops" / "labels" / "train").glob("forklift_person__*"))
    assert len(negatives) == 2 and all(p.read_text() == "" for p in negatives)


def test_a_positive_source_without_a_cigarette_class_is_refused(tmp_path: Path) -> None:
    people = _set(tmp_path / "people", ["person"], {"p": (1, ["0 0.5 0.5 0.2 0.8"])})
    with pytest.raises(ValueError, match="no cigarette class"):
        build_crop_set(
            {"people": people}, {}, tmp_path / "crops", teacher=ScriptedDetector(TEACHER_NAMES, {})
        )
