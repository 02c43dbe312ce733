"""Fire hard negatives: which training images are mined, and how they are written back into the set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anjian.datasets.labels import DetectionSet, LabelledImage, empty_boxes
from anjian.datasets.yolo import load_yolo_set, write_yolo_set
from anjian.training.hard_negatives import add_hard_negatives, mine_hard_negatives
from tests.support.scripted_detector import ScriptedDetector, tagged_image

NAMES = ("person", "fire", "forklift")
MODEL_NAMES = {0: "person", 1: "fire", 2: "forklift"}
PERSON = np.array([[0, 0.5, 0.5, 0.2, 0.4]], np.float32)
FIRE = np.array([[1, 0.5, 0.5, 0.3, 0.3]], np.float32)

# tag: (source, boxes, the model's fire score on it)
IMAGES = {
    1: ("fire_continuous", FIRE, 0.9),  # a real fire: never a negative
    2: ("fire_continuous", empty_boxes(), 0.6),  # a frame of a fire source without fire: a negative
    3: ("forklift_person", PERSON, 0.8),  # an orange forklift taken for fire
    4: ("forklift_person", PERSON, 0.1),  # below the floor
    5: ("forklift_person", empty_boxes(), 0.3),
    6: ("smoking_photos", PERSON, 0.95),  # a lighter's flame may be there, unlabelled: never read
}


def _training_set(tmp_path: Path) -> Path:
    images = []
    for tag, (source, boxes, _) in IMAGES.items():
        path = tagged_image(tmp_path / "raw" / source / f"img{tag}.png", tag)
        images.append(LabelledImage(path, "train", boxes, source))
    dataset = DetectionSet(
        "anjian-n",
        NAMES,
        images,
        labelled_classes={
            "fire_continuous": ("person", "fire"),
            "forklift_person": ("person", "forklift"),
            "smoking_photos": ("person",),
        },
    )
    return write_yolo_set(dataset, tmp_path / "data", by_source=True)


def _detector() -> ScriptedDetector:
    boxes = {
        tag: [(10, 10, 60, 60, score, 1), (0, 0, 5, 5, 0.99, 0)] for tag, (_, _, score) in IMAGES.items()
    }
    return ScriptedDetector(MODEL_NAMES, boxes)


def test_only_images_certain_to_show_no_fire_are_mined_highest_score_first(tmp_path: Path) -> None:
    data = _training_set(tmp_path)
    mined = mine_hard_negatives(_detector(), data, free_sources={"forklift_person"}, min_score=0.25)
    assert [(n.image.stem, n.source, n.score) for n in mined] == [
        ("img3", "forklift_person", 0.8),
        ("img2", "fire_continuous", 0.6),
        ("img5", "forklift_person", 0.3),
    ]
    assert [
        n.image.stem
        for n in mine_hard_negatives(_detector(), data, free_sources={"forklift_person"}, limit=1)
    ] == ["img3"]
    # a source that does not label fire and is not named free is never read
    assert {n.source for n in mine_hard_negatives(_detector(), data, min_score=0.0)} == {"fire_continuous"}


def test_the_negatives_are_written_again_with_their_labels_and_a_second_run_replaces_the_first(
    tmp_path: Path,
) -> None:
    data = _training_set(tmp_path)
    mined = mine_hard_negatives(_detector(), data, free_sources={"forklift_person"})
    folder = add_hard_negatives(data, mined, copies=2)
    assert folder == data.parent / "images" / "train" / "fire_hard_negatives"
    written = sorted(p.name for p in folder.iterdir())
    assert len(written) == 6 and "forklift_person__img3__hn1.png" in written
    label = data.parent / "labels" / "train" / "fire_hard_negatives" / "forklift_person__img3__hn0.txt"
    assert label.read_text().split()[0] == "0"  # the person box came along: the image is no person negative
    reread = load_yolo_set(data)
    assert sum(1 for im in reread.images if "fire_hard_negatives" in str(im.image)) == 6
    report = json.loads((data.parent / "hard_negatives.json").read_text())
    assert report["images"] == 3 and report["by_source"] == {"forklift_person": 2, "fire_continuous": 1}

    add_hard_negatives(data, mined[:1], copies=1)
    assert len(list(folder.iterdir())) == 1
    # the written copies are never mined again
    again = mine_hard_negatives(_detector(), data, free_sources={"forklift_person"})
    assert [n.image.stem for n in again] == ["img3", "img2", "img5"]


def test_what_cannot_be_mined_is_said(tmp_path: Path) -> None:
    data = _training_set(tmp_path)
    with pytest.raises(ValueError, match="the model has no class 'smoke'"):
        mine_hard_negatives(_detector(), data, class_name="smoke")
    no_fire = ScriptedDetector({0: "person"}, {})
    with pytest.raises(ValueError, match="the model has no class 'fire'"):
        mine_hard_negatives(no_fire, data)
    with pytest.raises(ValueError, match="copies must be >= 1"):
        add_hard_negatives(data, [], copies=0)


def test_a_set_without_a_source_known_to_be_free_of_fire_is_refused(tmp_path: Path) -> None:
    image = tagged_image(tmp_path / "raw" / "img1.png", 1)
    dataset = DetectionSet(
        "s",
        NAMES,
        [LabelledImage(image, "train", PERSON, "forklift_person")],
        labelled_classes={"forklift_person": ("person",)},
    )
    data = write_yolo_set(dataset, tmp_path / "data", by_source=True)
    with pytest.raises(ValueError, match="certain to show no fire: name some with free_sources"):
        mine_hard_negatives(_detector(), data)
