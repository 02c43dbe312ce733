"""``anjian dataset ...`` end to end on real samples and a broken set."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from anjian.datasets.yolo import load_yolo_set
from anjian.service.cli import app
from tests.support.real_data import copy_yolo_sample

ANJIAN_MAP = Path(__file__).resolve().parents[2] / "datasets" / "maps" / "anjian.yaml"
runner = CliRunner()


def test_merge_then_split_then_stats(tmp_path: Path) -> None:
    fall = copy_yolo_sample("fall_hospital", tmp_path / "fall_hospital", per_split=6)
    fire = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire_smoke_cctv", per_split=6)

    merged = runner.invoke(
        app,
        [
            "dataset",
            "merge",
            str(fall),
            str(fire),
            "--class-map",
            str(ANJIAN_MAP),
            "--out",
            str(tmp_path / "m"),
            "--json",
            str(tmp_path / "merge.json"),
        ],
    )
    assert merged.exit_code == 0, merged.output
    assert "never labels" in merged.output  # the fire set labels no person
    dataset = load_yolo_set(tmp_path / "m" / "data.yaml")
    assert dataset.class_names[0] == "person" and len(dataset) == 24
    assert {im.image.parent.name for im in dataset} == {"fall_hospital", "fire_smoke_cctv"}

    split = runner.invoke(
        app, ["dataset", "split", str(tmp_path / "m"), "--out", str(tmp_path / "s"), "--val", "0.5"]
    )
    assert split.exit_code == 0, split.output
    assert "groups" in split.output

    stats = runner.invoke(
        app, ["dataset", "stats", str(tmp_path / "s"), "--json", str(tmp_path / "stats.json")]
    )
    assert stats.exit_code == 0, stats.output
    payload = json.loads((tmp_path / "stats.json").read_text())
    assert (
        sum(r["boxes"] for r in payload["classes"]) == load_yolo_set(tmp_path / "s" / "data.yaml").box_count()
    )


def test_validate_exits_one_on_errors_and_zero_on_a_clean_set(tmp_path: Path) -> None:
    clean = copy_yolo_sample("pallet", tmp_path / "pallet", per_split=3)
    ok = runner.invoke(app, ["dataset", "validate", str(clean)])
    assert ok.exit_code == 0, ok.output

    (tmp_path / "pallet" / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    bad_label = next((tmp_path / "pallet" / "labels" / "val").iterdir())
    bad_label.write_text("9 0.5 0.5 0.1 0.1\n")
    broken = runner.invoke(app, ["dataset", "validate", str(clean), "--json", str(tmp_path / "v.json")])

    assert broken.exit_code == 1, broken.output
    kinds = {c["kind"] for c in json.loads((tmp_path / "v.json").read_text())["counts"]}
    assert {"missing_image", "unknown_class"} <= kinds


def test_import_copies_a_set_into_a_clean_yolo_folder(tmp_path: Path) -> None:
    source = copy_yolo_sample("forklift_person", tmp_path / "fp", per_split=2)
    result = runner.invoke(app, ["dataset", "import", str(source), "--out", str(tmp_path / "imported")])
    assert result.exit_code == 0, result.output
    imported = load_yolo_set(tmp_path / "imported" / "data.yaml")
    assert len(imported) == 4 and not any(im.image.is_symlink() for im in imported)


def test_unreadable_source_is_a_clean_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dataset", "stats", str(tmp_path / "nothing.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_import_of_a_coco_file_needs_its_image_folder(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.jpg"), np.zeros((50, 100, 3), np.uint8))
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]}],
        "categories": [{"id": 3, "name": "smoke"}],
    }
    (tmp_path / "val.json").write_text(json.dumps(coco))

    missing = runner.invoke(
        app, ["dataset", "import", str(tmp_path / "val.json"), "--out", str(tmp_path / "o")]
    )
    assert missing.exit_code == 2 and "--images" in missing.output

    result = runner.invoke(
        app,
        [
            "dataset",
            "import",
            str(tmp_path / "val.json"),
            "--images",
            str(tmp_path / "imgs"),
            "--split",
            "val",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 0, result.output
    imported = load_yolo_set(tmp_path / "o" / "data.yaml")
    assert imported.class_names == ("smoke",) and imported.splits == ["val"]
    assert (
        tmp_path / "o" / "labels" / "val" / "a.txt"
    ).read_text() == "0 0.200000 0.200000 0.200000 0.200000\n"


def test_import_exits_1_when_the_source_had_errors_and_still_writes_the_rest(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.jpg"), np.zeros((50, 100, 3), np.uint8))
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]},
            {"id": 2, "image_id": 1, "category_id": 8, "bbox": [10, 5, 20, 10]},
        ],
        "categories": [{"id": 3, "name": "smoke"}],
    }
    (tmp_path / "val.json").write_text(json.dumps(coco))
    args = ["dataset", "import", str(tmp_path / "val.json"), "--images", str(tmp_path / "imgs")]

    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])

    assert result.exit_code == 1, result.output
    assert "1 error(s)" in result.output and "category_id 8" in " ".join(result.output.split())
    assert load_yolo_set(tmp_path / "o" / "data.yaml").box_count() == 1


def test_an_error_shows_a_path_with_brackets_as_written(tmp_path: Path) -> None:
    for name in ("set[bold]1", "set[/x]2"):  # rich markup once: dropped, or a MarkupError traceback
        result = runner.invoke(app, ["dataset", "stats", str(tmp_path / name)])
        assert result.exit_code == 2, result.output
        assert str(tmp_path / name) in result.output.replace("\n", "")


def test_validate_shows_a_label_line_with_brackets_as_written(tmp_path: Path) -> None:
    clean = copy_yolo_sample("pallet", tmp_path / "pallet", per_split=3)
    bad_label = next((tmp_path / "pallet" / "labels" / "val").iterdir())
    # As rich markup, "[/x]" raised a MarkupError and the detail "[nan, ...]" was dropped as a tag.
    bad_label.write_text("0 [/x] 0.5 0.2 0.2\n0 nan 0.5 0.2 0.2\n")

    result = runner.invoke(app, ["dataset", "validate", str(clean), "--show", "100"])

    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    flat = "".join(result.output.split())
    assert "[/x]" in flat and "[nan," in flat
