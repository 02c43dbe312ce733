"""Non-square copies of a split: windows of the aspects asked for, boxes clipped or left out, the CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from anjian.datasets.errors import DatasetError
from anjian.datasets.labels import DetectionSet, LabelledImage
from anjian.datasets.reshape import parse_aspect, reshape_set
from anjian.datasets.yolo import load_yolo_set
from anjian.service.cli import app
from tests.support.real_data import copy_yolo_sample

runner = CliRunner()


def _textured(width: int, height: int, seed: int) -> np.ndarray:
    """A picture no window of which repeats elsewhere in it, so a crop's place can be found again."""
    noise = np.random.default_rng(seed).integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_NEAREST)


def _image(
    tmp_path: Path, name: str, size_wh: tuple[int, int], boxes: list[list[float]], seed: int = 0
) -> LabelledImage:
    path = tmp_path / "src" / f"{name}.png"  # lossless: the crop is found again pixel for pixel
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), _textured(*size_wh, seed))
    return LabelledImage(path, "val", np.array(boxes, np.float32).reshape(-1, 5), "src")


def _offset(crop_path: Path, source: Path) -> tuple[int, int]:
    """Where the crop lies in its source image, ``(x0, y0)`` (JPEG noise aside)."""
    crop, image = cv2.imread(str(crop_path)), cv2.imread(str(source))
    _, _, _, (x0, y0) = cv2.minMaxLoc(cv2.matchTemplate(image, crop, cv2.TM_CCOEFF_NORMED))
    return x0, y0


@pytest.mark.parametrize(
    ("text", "ratio"), [("16:9", 16 / 9), ("4:3", 4 / 3), (" 1.85 / 1 ", 1.85), ("9:16", 9 / 16)], ids=str
)
def test_parse_aspect_reads_width_over_height(text: str, ratio: float) -> None:
    assert parse_aspect(text) == pytest.approx(ratio)


@pytest.mark.parametrize("text", ["16x9", "0:9", "16:0", "wide", "16:9:1", ""], ids=repr)
def test_parse_aspect_names_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError, match="expected width:height"):
        parse_aspect(text)


def test_a_box_inside_the_window_keeps_its_place_in_the_picture(tmp_path: Path) -> None:
    # 400x400; the 16:9 window is 400x225 at y0 in [0, 175], so rows 180-220 are always inside it
    item = _image(tmp_path, "a", (400, 400), [[0, 150 / 400, 200 / 400, 100 / 400, 40 / 400]])
    dataset = DetectionSet("src", ("thing",), [item])

    for seed in range(5):
        reshaped, report = reshape_set(dataset, ["16:9"], tmp_path / f"crops{seed}", seed=seed)

        (out,) = reshaped.images
        assert cv2.imread(str(out.image)).shape[:2] == (225, 400)
        x0, y0 = _offset(out.image, item.image)
        assert x0 == 0 and 0 <= y0 <= 175
        np.testing.assert_allclose(
            out.boxes, [[0, 150 / 400, (200 - y0) / 225, 100 / 400, 40 / 225]], atol=1e-5
        )
        assert report.boxes_kept == 1 and report.boxes_dropped == 0 and report.images == {"16:9": 1}


@pytest.mark.parametrize(("min_visible", "kept"), [(0.5, 1), (0.6, 0)], ids=["half-kept", "more-dropped"])
def test_a_box_cut_by_the_window_is_clipped_or_left_out_by_min_visible(
    tmp_path: Path, min_visible: float, kept: int
) -> None:
    # the box spans the whole height: a 16:9 window keeps 225 / 400 = 56% of it
    item = _image(tmp_path, "tall", (400, 400), [[0, 0.5, 0.5, 0.2, 1.0]])

    reshaped, report = reshape_set(
        DetectionSet("src", ("thing",), [item]), ["16:9"], tmp_path / "crops", min_visible=min_visible
    )

    (out,) = reshaped.images
    assert (report.boxes_kept, report.boxes_dropped) == (kept, 1 - kept)
    if kept:
        np.testing.assert_allclose(out.boxes, [[0, 0.5, 0.5, 0.2, 1.0]], atol=1e-5)  # clipped to the window
    else:
        assert out.boxes.shape == (0, 5)


def test_aspects_are_used_in_turn_and_a_wider_image_loses_width(tmp_path: Path) -> None:
    items = [
        _image(tmp_path, "sq0", (320, 320), [], seed=1),
        _image(tmp_path, "sq1", (320, 320), [], seed=2),
        _image(tmp_path, "wide", (640, 360), [[0, 0.1, 0.5, 0.1, 0.2]], seed=3),  # 16:9 cut to 4:3
    ]
    dataset = DetectionSet("src", ("thing",), items, labelled_classes={"src": ("thing",)})

    reshaped, report = reshape_set(dataset, ["16:9", "4:3", "4:3"], tmp_path / "crops")

    shapes = [cv2.imread(str(im.image)).shape[:2] for im in reshaped.images]
    assert shapes == [(180, 320), (240, 320), (360, 480)]
    assert report.images == {"16:9": 1, "4:3": 2}
    assert reshaped.labelled_classes == {"src": ("thing",)} and reshaped.class_names == ("thing",)
    x0, y0 = _offset(reshaped.images[2].image, items[2].image)
    assert y0 == 0 and 0 <= x0 <= 160


def test_the_same_seed_cuts_the_same_windows(tmp_path: Path) -> None:
    items = [_image(tmp_path, f"i{i}", (300, 300), [[0, 0.5, 0.5, 0.1, 0.1]], seed=i) for i in range(8)]
    dataset = DetectionSet("src", ("thing",), items)

    def boxes(seed: int, folder: str) -> list[list[float]]:
        reshaped, _ = reshape_set(dataset, ["16:9"], tmp_path / folder, seed=seed)
        return [im.boxes.tolist() for im in reshaped.images]

    assert boxes(3, "a") == boxes(3, "b")
    assert boxes(3, "a") != boxes(4, "c")


def test_only_the_splits_asked_for_and_unreadable_images_are_named(tmp_path: Path) -> None:
    good = _image(tmp_path, "good", (200, 200), [])
    broken = tmp_path / "src" / "broken.jpg"
    broken.write_bytes(b"not a picture")
    train = _image(tmp_path, "train", (200, 200), []).replace(split="train")
    dataset = DetectionSet(
        "src", ("thing",), [good, LabelledImage(broken, "val", np.zeros((0, 5), np.float32)), train]
    )

    reshaped, report = reshape_set(dataset, ["4:3"], tmp_path / "crops")

    assert [im.image.stem for im in reshaped.images] == ["good"]
    assert report.unreadable == [broken]
    with pytest.raises(DatasetError, match=r"no image in split\(s\) test"):
        reshape_set(dataset, ["4:3"], tmp_path / "crops", splits=["test"])
    with pytest.raises(ValueError, match="min_visible"):
        reshape_set(dataset, ["4:3"], tmp_path / "crops", min_visible=0.0)
    with pytest.raises(ValueError, match="at least one aspect"):
        reshape_set(dataset, [], tmp_path / "crops")


def test_cli_writes_a_non_square_copy_of_a_real_val_split(tmp_path: Path) -> None:
    pallet = copy_yolo_sample("pallet", tmp_path / "pallet", per_split=6)
    out = tmp_path / "pallet_wide"

    result = runner.invoke(app, ["dataset", "reshape", str(pallet), "--out", str(out), "--seed", "1"])

    assert result.exit_code == 0, result.output
    assert "3 at 16:9, 3 at 4:3" in result.output
    written = load_yolo_set(out / "data.yaml")
    assert written.splits == ["val"] and len(written) == 6 and written.class_names == ("Wooden-Pallet",)
    ratios = sorted(round(w / h, 2) for w, h in (cv2.imread(str(im.image)).shape[1::-1] for im in written))
    assert ratios == [1.33] * 3 + [1.78] * 3
    assert yaml.safe_load((out / "data.yaml").read_text())["val"] == "images/val"
    assert not list(tmp_path.glob(".reshape-*"))  # the crops' staging folder is gone

    again = runner.invoke(app, ["dataset", "reshape", str(pallet), "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_cli_names_a_malformed_aspect(tmp_path: Path) -> None:
    pallet = copy_yolo_sample("pallet", tmp_path / "pallet", per_split=2)

    result = runner.invoke(
        app, ["dataset", "reshape", str(pallet), "--out", str(tmp_path / "o"), "--aspect", "16x9"]
    )

    assert result.exit_code == 2
    assert "aspect '16x9': expected width:height" in result.output
    assert not (tmp_path / "o" / "data.yaml").exists()


@pytest.mark.parametrize("where", ["itself", "inside", "around"])
def test_cli_refuses_an_out_folder_that_holds_or_is_held_by_the_set(tmp_path: Path, where: str) -> None:
    pallet = copy_yolo_sample("pallet", tmp_path / "sets" / "pallet", per_split=2)
    out = {"itself": pallet.parent, "inside": pallet.parent / "wide", "around": tmp_path / "sets"}[where]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    result = runner.invoke(app, ["dataset", "reshape", str(pallet), "--out", str(out), "--overwrite"])

    assert result.exit_code == 2
    assert "hold one another" in result.output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
