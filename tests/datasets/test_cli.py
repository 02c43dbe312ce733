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


def _grey_set(root: Path, images: dict[str, int], *, names: str = "[fire]", extra: str = "") -> Path:
    """A YOLO set of small grey JPEGs at ``images/<relative path>`` (value: grey level), each labelled with one box."""
    import cv2
    import numpy as np

    for relative, grey in images.items():
        image = root / "images" / relative
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), np.full((24, 32, 3), grey, np.uint8))
        label = (root / "labels" / relative).with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("0 0.5 0.5 0.2 0.2\n")
    splits = sorted({relative.split("/")[0] for relative in images})
    (root / "data.yaml").write_text(
        "".join(f"{s}: images/{s}\n" for s in splits) + f"names: {names}\n{extra}"
    )
    return root / "data.yaml"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_splitting_again_into_the_same_out_is_refused_unless_overwrite_replaces_the_set(
    tmp_path: Path,
) -> None:
    source = copy_yolo_sample("pallet", tmp_path / "pallet", per_split=12)
    out = tmp_path / "resplit"
    args = ["dataset", "split", str(source), "--out", str(out), "--val", "0.3"]
    first = runner.invoke(app, [*args, "--seed", "1"])
    assert first.exit_code == 0, first.output
    before = _files(out / "images" / "val")

    refused = runner.invoke(app, [*args, "--seed", "2"])
    assert refused.exit_code == 2 and "--overwrite" in refused.output, refused.output
    assert _files(out / "images" / "val") == before  # untouched

    second = runner.invoke(app, [*args, "--seed", "2", "--overwrite"])
    assert second.exit_code == 0, second.output
    assert "replaced the set written before" in " ".join(second.output.split())
    train, val = _files(out / "images" / "train"), _files(out / "images" / "val")
    assert len(train) + len(val) == 24 and not set(train) & set(val)  # the seed-1 split's files are gone
    assert len(_files(out / "labels" / "train")) == len(train)


def test_a_set_is_never_written_over_the_folder_it_is_read_from(tmp_path: Path) -> None:
    source = _grey_set(tmp_path / "s", {"train/a.jpg": 40, "train/b.jpg": 80, "val/c.jpg": 120})

    result = runner.invoke(
        app, ["dataset", "split", str(source), "--out", str(tmp_path / "s"), "--val", "0.5", "--overwrite"]
    )

    assert result.exit_code == 2 and "holds the images being written" in " ".join(result.output.split())
    assert _files(tmp_path / "s" / "images" / "train") == ["a.jpg", "b.jpg"]


def test_equal_file_names_in_two_splits_or_folders_are_written_apart_not_a_traceback(tmp_path: Path) -> None:
    from anjian.datasets.split import split_by_group

    # two different photos named img1 (one group when re-split: same side, same folder)
    dup = _grey_set(tmp_path / "dup", {"train/img1.jpg": 40, "val/img1.jpg": 200, "train/other.jpg": 120})
    seed = next(
        s
        for s in range(100)
        if len(split_by_group(load_yolo_set(dup), {"train": 0.5, "val": 0.5}, seed=s).splits) == 2
    )
    split = runner.invoke(
        app, ["dataset", "split", str(dup), "--out", str(tmp_path / "s"), "--val", "0.5", "--seed", str(seed)]
    )
    assert split.exit_code == 0, split.output
    assert "2 image(s) share a file name" in " ".join(split.output.split())
    written = load_yolo_set(tmp_path / "s" / "data.yaml")
    assert sorted(im.image.name for im in written) == ["other.jpg", "train-img1.jpg", "val-img1.jpg"]

    nested = _grey_set(tmp_path / "n", {"train/cam1/frame_0001.jpg": 40, "train/cam2/frame_0001.jpg": 200})
    imported = runner.invoke(app, ["dataset", "import", str(nested), "--out", str(tmp_path / "i")])
    assert imported.exit_code == 0, imported.output
    assert _files(tmp_path / "i" / "images" / "train") == ["cam1-frame_0001.jpg", "cam2-frame_0001.jpg"]


def test_images_that_would_share_one_label_file_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    source = _grey_set(tmp_path / "s", {"train/a.jpg": 40, "train/a.png": 200})  # both label a.txt

    result = runner.invoke(app, ["dataset", "import", str(source), "--out", str(tmp_path / "o")])

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean error, no traceback
    assert "labels/train/a.txt" in "".join(result.output.split())
    assert not (tmp_path / "o" / "images").exists()


def test_split_refuses_when_a_split_asked_for_would_get_no_image(tmp_path: Path) -> None:
    from anjian.datasets.split import split_by_group

    source = _grey_set(tmp_path / "s", {"train/a.jpg": 40, "train/b.jpg": 80})
    dataset = load_yolo_set(source)
    seed = next(
        s
        for s in range(100)
        if not split_by_group(dataset, {"train": 0.85, "val": 0.15}, seed=s).in_split("val")
    )

    result = runner.invoke(
        app,
        ["dataset", "split", str(source), "--out", str(tmp_path / "o"), "--val", "0.15", "--seed", str(seed)],
    )

    assert result.exit_code == 2, result.output
    assert "without images" in " ".join(result.output.split()) and not (tmp_path / "o").exists()


def test_split_and_flat_merge_of_a_one_source_merged_set_keep_what_it_never_labels(tmp_path: Path) -> None:
    cigarette = copy_yolo_sample("cigarette", tmp_path / "cigarette", per_split=4)
    (tmp_path / "map.yaml").write_text("classes: [person, cigarette]\n")
    merge = ["dataset", "merge", str(cigarette), "--class-map", str(tmp_path / "map.yaml")]
    assert runner.invoke(app, [*merge, "--out", str(tmp_path / "m")]).exit_code == 0
    split = runner.invoke(
        app, ["dataset", "split", str(tmp_path / "m"), "--out", str(tmp_path / "s"), "--val", "0.5"]
    )
    flat = runner.invoke(app, [*merge, "--out", str(tmp_path / "flat"), "--no-by-source"])
    assert split.exit_code == 0 and flat.exit_code == 0, split.output + flat.output

    for written in ("m", "s", "flat"):
        again = load_yolo_set(tmp_path / written / "data.yaml")
        assert again.labelled_classes == {"cigarette": ("cigarette",)}, (
            written
        )  # person: a gap for the teacher
        assert {im.source for im in again} == {"cigarette"}


def test_a_one_source_set_split_flat_before_the_fix_still_reads_as_that_source(tmp_path: Path) -> None:
    # what `dataset split` wrote for a one-source merged set: files flat, unprefixed; the yaml keeps the record
    written = _grey_set(
        tmp_path / "cig_split",
        {"train/a.jpg": 40, "val/b.jpg": 80},
        names="[person, cigarette]",
        extra="labelled_classes: {cigarette: [cigarette]}\n",
    )

    again = load_yolo_set(written)

    assert again.labelled_classes == {"cigarette": ("cigarette",)}


def test_overwrite_never_clears_a_folder_that_holds_no_set(tmp_path: Path) -> None:
    source = _grey_set(tmp_path / "s", {"train/a.jpg": 40, "val/b.jpg": 80})
    home = tmp_path / "home"
    (home / "images").mkdir(parents=True)
    (home / "thesis.tex").write_text("kept")

    result = runner.invoke(app, ["dataset", "import", str(source), "--out", str(home), "--overwrite"])

    assert result.exit_code == 2 and "holds no data.yaml" in " ".join(result.output.split())
    assert sorted(p.name for p in home.iterdir()) == ["images", "thesis.tex"]
