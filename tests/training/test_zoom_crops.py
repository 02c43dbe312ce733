"""Zoomed crops: where they are cut, which boxes they keep, and how they are written into the set."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from anjian.datasets.labels import DetectionSet, LabelledImage
from anjian.datasets.yolo import load_yolo_set, write_yolo_set
from anjian.training.zoom_crops import ZoomSpec, add_zoom_crops, zoom_crop_region

NAMES = ("person", "fire")
WIDTH, HEIGHT = 640, 480


def _picture(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    cv2.imwrite(str(path), rng.integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8))
    return path


def _box(cls: int, x1: float, y1: float, x2: float, y2: float) -> list[float]:
    return [cls, (x1 + x2) / 2 / WIDTH, (y1 + y2) / 2 / HEIGHT, (x2 - x1) / WIDTH, (y2 - y1) / HEIGHT]


# a small fire beside a person far away, a fire already filling the view, a photo without fire,
# and a smoking photo (its source does not label fire)
IMAGES = {
    "small_fire": ("fire_continuous", [_box(1, 300, 200, 340, 260), _box(0, 20, 20, 60, 120)]),
    "big_fire": ("fire_continuous", [_box(1, 10, 10, 630, 470)]),
    "no_fire": ("fire_continuous", [_box(0, 100, 100, 140, 200)]),
    "smoker": ("smoking_photos", [_box(1, 300, 200, 340, 260)]),
}


def _training_set(tmp_path: Path) -> Path:
    images = [
        LabelledImage(
            _picture(tmp_path / "raw" / source / f"{name}.png"), "train", np.array(rows, np.float32), source
        )
        for name, (source, rows) in IMAGES.items()
    ]
    dataset = DetectionSet(
        "anjian-n",
        NAMES,
        images,
        labelled_classes={"fire_continuous": ("person", "fire"), "smoking_photos": ("person",)},
    )
    return write_yolo_set(dataset, tmp_path / "data", by_source=True)


@pytest.mark.parametrize("fill", [0.3, 0.6, 0.95])
def test_a_crop_holds_the_whole_box_at_the_asked_fill_and_stays_inside_the_image(fill: float) -> None:
    rng = np.random.default_rng(0)
    box = np.array([300.0, 200.0, 340.0, 260.0])
    for _ in range(200):
        crop = zoom_crop_region(box, (WIDTH, HEIGHT), fill, 16, rng)
        assert crop is not None
        x1, y1, x2, y2 = crop
        assert x2 - x1 == y2 - y1 == round(60 / fill)
        assert 0 <= x1 and 0 <= y1 and x2 <= WIDTH and y2 <= HEIGHT
        assert x1 <= 300 and y1 <= 200 and x2 >= 340 and y2 >= 260


def test_no_crop_where_the_box_already_fills_the_view_or_the_minimum_side_would() -> None:
    rng = np.random.default_rng(0)
    assert zoom_crop_region(np.array([10.0, 10.0, 630.0, 470.0]), (WIDTH, HEIGHT), 0.9, 16, rng) is None
    assert zoom_crop_region(np.array([300.0, 200.0, 310.0, 210.0]), (WIDTH, HEIGHT), 0.9, 450, rng) is None


def test_crops_are_cut_from_sources_labelling_the_class_and_keep_their_boxes(tmp_path: Path) -> None:
    data = _training_set(tmp_path)
    report = add_zoom_crops(data, class_name="fire", spec=ZoomSpec(fill=(0.5, 0.5), per_image=2, seed=1))
    assert (report.images, report.crops, report.skipped) == (2, 2, 1)  # big_fire cannot be zoomed into
    assert report.by_source == {"fire_continuous": 2}
    crops = sorted((data.parent / "images" / "train" / "fire_zoom").iterdir())
    assert [c.name for c in crops] == [
        "fire_continuous__small_fire__zoom0.jpg",
        "fire_continuous__small_fire__zoom1.jpg",
    ]
    for crop in crops:
        picture = cv2.imread(str(crop))
        assert picture.shape[:2] == (120, 120)  # the 60-pixel-high fire takes half the side
        rows = np.loadtxt(data.parent / "labels" / "train" / "fire_zoom" / f"{crop.stem}.txt", ndmin=2)
        assert rows[:, 0].tolist() == [
            1
        ]  # the far person is outside the crop: dropped, not clipped to a sliver
        assert rows[0, 4] == pytest.approx(0.5, abs=1e-3)
        assert rows[0, 3] == pytest.approx(40 / 120, abs=1e-3)
    # the crops read back as training images of the set, and the report says what was cut
    loaded = load_yolo_set(data)
    zoomed = [im for im in loaded.images if im.image.parent.name == "fire_zoom"]
    assert len(zoomed) == 2 and all(im.split == "train" and len(im.boxes) == 1 for im in zoomed)
    written = json.loads((data.parent / "zoom_crops_fire.json").read_text())
    assert written["crops"] == 2 and written["spec"]["fill"] == [0.5, 0.5]


def test_cutting_again_replaces_the_crops(tmp_path: Path) -> None:
    data = _training_set(tmp_path)
    add_zoom_crops(data, spec=ZoomSpec(per_image=3))
    report = add_zoom_crops(data, spec=ZoomSpec(per_image=1))
    assert report.crops == 1
    assert len(list((data.parent / "images" / "train" / "fire_zoom").iterdir())) == 1
    assert len(list((data.parent / "labels" / "train" / "fire_zoom").iterdir())) == 1


def test_a_person_partly_inside_the_crop_is_kept_clipped(tmp_path: Path) -> None:
    raw = _picture(tmp_path / "raw" / "fire_continuous" / "pair.png")
    rows = np.array([_box(1, 300, 200, 340, 260), _box(0, 320, 180, 380, 280)], np.float32)
    dataset = DetectionSet(
        "anjian-n",
        NAMES,
        [LabelledImage(raw, "train", rows, "fire_continuous")],
        labelled_classes={"fire_continuous": ("person", "fire")},
    )
    data = write_yolo_set(dataset, tmp_path / "data", by_source=True)
    add_zoom_crops(data, spec=ZoomSpec(fill=(0.4, 0.4), seed=0))
    [label] = (data.parent / "labels" / "train" / "fire_zoom").iterdir()
    kept = np.loadtxt(label, ndmin=2)
    assert sorted(kept[:, 0].tolist()) == [0, 1]
    assert np.all(kept[:, 1:] >= 0) and np.all(kept[:, 1:3] + kept[:, 3:5] / 2 <= 1 + 1e-6)


def test_a_class_the_set_lacks_or_no_source_labels_is_refused(tmp_path: Path) -> None:
    data = _training_set(tmp_path)
    with pytest.raises(ValueError, match="no class 'smoke'"):
        add_zoom_crops(data, class_name="smoke")
    with pytest.raises(ValueError, match="no train folder"):
        add_zoom_crops(data, sources=["pallet"])
    with pytest.raises(ValueError, match="fill must be"):
        ZoomSpec(fill=(0.9, 0.4))


def test_a_malformed_label_line_is_named(tmp_path: Path) -> None:
    data = _training_set(tmp_path)
    label = data.parent / "labels" / "train" / "fire_continuous" / "small_fire.txt"
    label.write_text(label.read_text() + "1 0.5 0.5 0.2\n")
    with pytest.raises(ValueError, match=r"small_fire.txt: line 3: 4 fields, want 5"):
        add_zoom_crops(data)


def test_the_recipe_step_names_what_is_wrong_instead_of_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anjian.training.anjian_n import AnjianNRecipe, main

    work = tmp_path / "work"
    work.mkdir()
    assert main(["zoom", "--work", str(work)]) == 2
    assert "recipe.json" in capsys.readouterr().err  # not prepared yet
    (work / "recipe.json").write_text(AnjianNRecipe().model_dump_json())
    (work / "training_set.txt").write_text(f"{_training_set(tmp_path)}\n")
    assert main(["zoom", "--work", str(work), "--zoom-fill", "0.9", "0.4"]) == 2
    assert "error: zoom: fill must be a range within (0, 1], got (0.9, 0.4)" in capsys.readouterr().err
    assert main(["zoom", "--work", str(work), "--zoom-class", "smoke"]) == 2
    assert "no class 'smoke'" in capsys.readouterr().err
    assert main(["zoom", "--work", str(work)]) == 0
    assert "1 crops from 2 images" in capsys.readouterr().out
