"""Reading, checking and writing YOLO sets: real samples and broken inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from anjian.datasets.checks import validate_set
from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labels import IssueKind, Severity, group_key
from anjian.datasets.yolo import label_path_for, load_yolo_set, write_yolo_set
from tests.support.real_data import copy_yolo_sample


def _tiny_set(root: Path, labels: dict[str, str], *, names: tuple[str, ...] = ("fire", "smoke")) -> Path:
    """A YOLO set whose train images are small grey JPEGs, one per label entry."""
    for stem, text in labels.items():
        image = root / "images" / "train" / f"{stem}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), np.full((32, 48, 3), 40 + 5 * len(stem), np.uint8))
        label = root / "labels" / "train" / f"{stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(text)
    (root / "data.yaml").write_text(f"train: images/train\nnames: {list(names)}\n")
    return root / "data.yaml"


def test_real_fall_hospital_sample_loads_with_its_classes_and_groups(tmp_path: Path) -> None:
    data_yaml = copy_yolo_sample("fall_hospital", tmp_path / "fh", per_split=6)
    dataset = load_yolo_set(data_yaml)

    assert dataset.name == "fh" and dataset.class_names[:3] == ("bed", "danger", "fall")
    assert dataset.splits == ["train", "val"] and len(dataset) == 12
    assert all(len(im.boxes) for im in dataset)  # every sample image has people or beds labelled
    boxes = np.concatenate([im.boxes for im in dataset])
    assert ((boxes[:, 1:] >= 0) & (boxes[:, 1:] <= 1)).all()
    # the augmented copies of one photo share a group: name before '.rf.'
    assert all(".rf." not in im.group and im.image.name.startswith(im.group) for im in dataset)
    assert not [i for i in dataset.issues if i.severity is Severity.ERROR]


@pytest.mark.parametrize(
    ("text", "kind", "severity", "boxes_left"),
    [
        ("0 0.5 0.5 0.2 0.2\nnot a box\n", IssueKind.MALFORMED_LINE, Severity.ERROR, 1),
        ("0 0.5 0.5 0.2\n", IssueKind.MALFORMED_LINE, Severity.ERROR, 0),
        ("7 0.5 0.5 0.2 0.2\n", IssueKind.UNKNOWN_CLASS, Severity.ERROR, 0),
        ("0 0.95 0.5 0.2 0.2\n", IssueKind.BOX_OUT_OF_RANGE, Severity.WARNING, 1),
        ("0 1.5 0.5 0.2 0.2\n", IssueKind.BOX_OUT_OF_RANGE, Severity.ERROR, 0),
        ("0 0.5 0.5 0.0 0.2\n", IssueKind.BOX_OUT_OF_RANGE, Severity.ERROR, 0),
        ("1 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n", IssueKind.DUPLICATE_BOX, Severity.WARNING, 1),
        ("", IssueKind.EMPTY_LABEL_FILE, Severity.INFO, 0),
    ],
    ids=[
        "bad-line",
        "four-fields",
        "unknown-class",
        "reaches-out",
        "outside",
        "no-area",
        "duplicate",
        "empty",
    ],
)
def test_broken_label_file_is_reported_not_raised(
    tmp_path: Path, text: str, kind: IssueKind, severity: Severity, boxes_left: int
) -> None:
    dataset = load_yolo_set(_tiny_set(tmp_path, {"a": text, "ok": "1 0.3 0.3 0.1 0.1\n"}))

    found = [i for i in dataset.issues if i.kind is kind]
    assert found and found[0].severity is severity and found[0].path.name == "a.txt"
    by_stem = {im.image.stem: im for im in dataset}
    assert len(by_stem["a"].boxes) == boxes_left
    assert len(by_stem["ok"].boxes) == 1


def test_clipped_box_stays_inside_the_image(tmp_path: Path) -> None:
    dataset = load_yolo_set(_tiny_set(tmp_path, {"a": "0 0.95 0.5 0.2 0.2\n"}))
    cx, _, w, _ = dataset.images[0].boxes[0, 1:]
    assert cx + w / 2 == pytest.approx(1.0) and cx - w / 2 == pytest.approx(0.85)


def test_label_without_image_and_image_without_label_are_reported(tmp_path: Path) -> None:
    data_yaml = _tiny_set(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0.2 0.2\n"})
    (tmp_path / "images" / "train" / "a.jpg").unlink()
    (tmp_path / "labels" / "train" / "b.txt").unlink()

    dataset = load_yolo_set(data_yaml)

    kinds = {(i.kind, i.path.name) for i in dataset.issues}
    assert (IssueKind.MISSING_IMAGE, "a.txt") in kinds
    assert (IssueKind.MISSING_LABEL_FILE, "b.jpg") in kinds
    assert [im.image.name for im in dataset] == ["b.jpg"]


def test_validate_finds_unreadable_and_duplicate_images_and_groups_across_splits(tmp_path: Path) -> None:
    data_yaml = _tiny_set(
        tmp_path, {"x.rf.1": "0 0.5 0.5 0.2 0.2\n", "y": "0 0.5 0.5 0.2 0.2\n", "zz": "0 0.5 0.5 0.2 0.2\n"}
    )
    train = tmp_path / "images" / "train"
    (train / "y.jpg").write_bytes(b"")  # empty file
    (train / "zz.jpg").write_bytes((train / "x.rf.1.jpg").read_bytes())  # same bytes
    for kind, suffix in (("images", ".jpg"), ("labels", ".txt")):  # an augmented copy of x in val
        (tmp_path / kind / "val").mkdir(parents=True)
        (tmp_path / kind / "val" / f"x.rf.2{suffix}").write_bytes(
            (tmp_path / kind / "train" / f"x.rf.1{suffix}").read_bytes()
        )
    data_yaml.write_text(data_yaml.read_text() + "val: images/val\n")

    report = validate_set(load_yolo_set(data_yaml))

    kinds = {i.kind for i in report.issues}
    assert {IssueKind.UNREADABLE_IMAGE, IssueKind.DUPLICATE_IMAGE, IssueKind.GROUP_ACROSS_SPLITS} <= kinds
    assert report.has_errors
    assert report.to_dict()["images"] == 4


@pytest.mark.parametrize(
    ("yaml_text", "match"),
    [
        ("train: images/train\n", "names"),
        ("names: [a]\n", "no train/val/test"),
        ("names: [a]\ntrain: nowhere\n", "neither a folder"),
        ("names: {0: a, 2: b}\ntrain: images\n", "0..n-1"),
        (": : :\n", "cannot read"),
        ("names: [a]\ntrain: " + "x" * 300 + "\n", "cannot be looked at: File name too long"),
    ],
    ids=["no-names", "no-splits", "missing-split", "gappy-ids", "not-yaml", "name-too-long"],
)
def test_unreadable_description_raises_format_error(tmp_path: Path, yaml_text: str, match: str) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "data.yaml").write_text(yaml_text)
    with pytest.raises(DatasetFormatError, match=match):
        load_yolo_set(tmp_path / "data.yaml")


def test_written_set_reads_back_identically_with_labels_where_ultralytics_looks(tmp_path: Path) -> None:
    dataset = load_yolo_set(copy_yolo_sample("cigarette", tmp_path / "cig", per_split=3))

    data_yaml = write_yolo_set(dataset, tmp_path / "out", link="symlink")
    again = load_yolo_set(data_yaml)

    assert again.class_names == dataset.class_names and again.splits == dataset.splits
    for before, after in zip(dataset.images, again.images, strict=True):
        np.testing.assert_allclose(before.boxes, after.boxes, atol=1e-6)
        assert label_path_for(after.image).is_file()
        assert after.image.is_symlink()
    assert "path" not in data_yaml.read_text()


def test_group_key_cuts_at_roboflow_mark() -> None:
    assert group_key(Path("img_1_jpg.rf.abc.jpg")) == "img_1_jpg"
    assert group_key(Path("plain.jpg")) == "plain"


@pytest.mark.parametrize(
    "path_key", ["", "path: .\n", "path: sub\n"], ids=["no-path", "path-dot", "path-sub"]
)
def test_relative_yaml_path_resolves_splits_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path_key: str
) -> None:
    root = tmp_path / "set" / ("sub" if "sub" in path_key else "")
    _tiny_set(root, {"a": "0 0.5 0.5 0.2 0.2\n"})
    (tmp_path / "set" / "data.yaml").write_text(f"{path_key}train: images/train\nnames: [fire]\n")
    monkeypatch.chdir(tmp_path)

    dataset = load_yolo_set(Path("set/data.yaml"))

    assert [im.image.name for im in dataset] == ["a.jpg"]


def test_centre_size_boxes_become_corners_in_pixels_or_normalised() -> None:
    from anjian.datasets.boxes import cxcywh_to_xyxy

    rows = np.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.2, 0.2]], np.float32)
    np.testing.assert_allclose(cxcywh_to_xyxy(rows), [[0.4, 0.3, 0.6, 0.7], [0.0, 0.8, 0.2, 1.0]], atol=1e-6)
    np.testing.assert_allclose(
        cxcywh_to_xyxy(rows, (640, 480)), [[256, 144, 384, 336], [0, 384, 128, 480]], atol=1e-3
    )
    assert cxcywh_to_xyxy(np.zeros((0, 4))).shape == (0, 4)


def test_a_data_yaml_that_is_not_utf8_raises_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "data.yaml").write_bytes(b"train: images\nnames: [pall\xe9t]\n")
    with pytest.raises(
        DatasetFormatError, match=r"cannot read .*data\.yaml: 'utf-8' codec can't decode byte 0xe9"
    ):
        load_yolo_set(tmp_path / "data.yaml")


def test_an_image_list_that_is_not_utf8_raises_naming_the_list(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_bytes(b"images/a.jpg\n\xff\n")
    (tmp_path / "data.yaml").write_text("train: list.txt\nnames: [fire]\n")
    with pytest.raises(
        DatasetFormatError, match=r"data\.yaml: cannot read the image list .*list\.txt: 'utf-8' codec"
    ):
        load_yolo_set(tmp_path / "data.yaml")


def test_symlinked_sub_folders_are_read_as_ultralytics_reads_them_and_a_loop_is_entered_once(
    tmp_path: Path,
) -> None:
    from anjian.datasets.hashing import dataset_digest

    data_yaml = _tiny_set(tmp_path / "set", {"b1": "0 0.5 0.5 0.2 0.2\n"})
    site = _tiny_set(tmp_path / "siteA", {"a1": "1 0.5 0.5 0.2 0.2\n", "a2": "1 0.3 0.3 0.1 0.1\n"})
    for kind in ("images", "labels"):
        (tmp_path / "set" / kind / "train" / "siteA").symlink_to(site.parent / kind / "train")
    (tmp_path / "set" / "images" / "train" / "loop").symlink_to(tmp_path / "set" / "images")

    dataset = load_yolo_set(data_yaml)

    assert sorted(im.image.name for im in dataset) == ["a1.jpg", "a2.jpg", "b1.jpg"]
    assert dataset.box_count() == 3 and not [i for i in dataset.issues if i.severity is Severity.ERROR]
    before = dataset_digest(data_yaml)
    (tmp_path / "siteA" / "labels" / "train" / "a1.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert dataset_digest(data_yaml) != before  # a relabelled image behind the link changes the digest


def test_label_files_beside_the_images_are_an_error_naming_the_layout(tmp_path: Path) -> None:
    data_yaml = _tiny_set(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"})
    label = tmp_path / "labels" / "train" / "a.txt"
    label.rename(tmp_path / "images" / "train" / "a.txt")

    report = validate_set(load_yolo_set(data_yaml))

    [misplaced] = [i for i in report.issues if i.kind is IssueKind.MISPLACED_LABEL_FILE]
    assert misplaced.severity is Severity.ERROR and misplaced.path.name == "a.txt"
    assert "labels/" in misplaced.detail and report.has_errors


def test_an_nc_that_disagrees_with_names_is_refused(tmp_path: Path) -> None:
    data_yaml = _tiny_set(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"}, names=("Wooden-Pallet",))
    data_yaml.write_text(data_yaml.read_text() + "nc: 2\n")
    with pytest.raises(DatasetFormatError, match=r"'nc: 2' does not match the 1 class name\(s\)"):
        load_yolo_set(data_yaml)
    data_yaml.write_text(data_yaml.read_text().replace("nc: 2", "nc: 1"))
    assert len(load_yolo_set(data_yaml)) == 1


def test_writing_a_set_again_replaces_the_earlier_one(tmp_path: Path) -> None:
    dataset = load_yolo_set(
        _tiny_set(tmp_path / "s", {"a": "0 0.5 0.5 0.2 0.2\n", "b": "1 0.5 0.5 0.2 0.2\n"})
    )
    write_yolo_set(dataset, tmp_path / "out")
    (tmp_path / "out" / "hard_negatives.json").write_text("{}")  # a report about the earlier set

    moved = [im.replace(split="val") if im.image.stem == "a" else im for im in dataset]
    data_yaml = write_yolo_set(
        type(dataset)(dataset.name, dataset.class_names, moved, labelled_classes=dataset.labelled_classes),
        tmp_path / "out",
    )

    again = load_yolo_set(data_yaml)
    assert sorted((im.split, im.image.name) for im in again) == [("train", "b.jpg"), ("val", "a.jpg")]
    assert not (tmp_path / "out" / "labels" / "train" / "a.txt").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.yaml", "images", "labels"]
    assert (tmp_path / "s" / "images" / "train" / "a.jpg").is_file()  # the linked original stays


def test_a_folder_without_a_set_keeps_its_other_files_when_a_set_is_written_there(tmp_path: Path) -> None:
    dataset = load_yolo_set(_tiny_set(tmp_path / "s", {"a": "0 0.5 0.5 0.2 0.2\n"}))
    stale = tmp_path / "out" / "images" / "train" / "old.jpg"  # a write that stopped half way
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    (tmp_path / "out" / "notes.md").write_text("kept")

    write_yolo_set(dataset, tmp_path / "out")

    assert not stale.exists() and (tmp_path / "out" / "notes.md").read_text() == "kept"
