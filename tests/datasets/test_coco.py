"""Reading COCO-JSON sets: real images with converted labels, and broken annotations."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from anjian.datasets.coco import load_coco_set
from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labels import IssueKind
from anjian.datasets.yolo import load_yolo_set
from tests.support.real_data import copy_yolo_sample


def _to_coco(yolo_yaml: Path, split: str, out: Path) -> Path:
    """Write a COCO JSON for one split of a YOLO set (category ids start at 1, as in COCO)."""
    dataset = load_yolo_set(yolo_yaml)
    images, annotations = [], []
    for image_id, item in enumerate(dataset.in_split(split), start=1):
        h, w = cv2.imread(str(item.image)).shape[:2]
        images.append({"id": image_id, "file_name": item.image.name, "width": w, "height": h})
        for c, cx, cy, bw, bh in item.boxes.tolist():
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(c) + 1,
                    "bbox": [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(dataset.class_names)]
    out.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return out


def test_real_forklift_sample_as_coco_gives_the_yolo_boxes(tmp_path: Path) -> None:
    yolo_yaml = copy_yolo_sample("forklift_person", tmp_path / "fp", per_split=4)
    coco_json = _to_coco(yolo_yaml, "val", tmp_path / "val.json")

    dataset = load_coco_set({"val": (coco_json, tmp_path / "fp" / "images" / "val")}, name="fp")
    reference = load_yolo_set(yolo_yaml).in_split("val")

    assert dataset.class_names == ("forklift", "person")
    assert [im.image.name for im in dataset] == [im.image.name for im in reference]
    for mine, theirs in zip(dataset, reference, strict=True):
        np.testing.assert_allclose(mine.boxes, theirs.boxes, atol=1e-4)
    assert not dataset.issues


def _images_with_a_jpg(tmp_path: Path) -> Path:
    """An ``images`` folder holding one black 200x100 ``a.jpg``."""
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    cv2.imwrite(str(images_dir / "a.jpg"), np.zeros((100, 200, 3), np.uint8))
    return images_dir


def test_broken_coco_annotations_are_reported(tmp_path: Path) -> None:
    images_dir = _images_with_a_jpg(tmp_path)
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
            {"id": 2, "file_name": "gone.jpg", "width": 200, "height": 100},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 10, 50, 50]},
            {"id": 2, "image_id": 1, "category_id": 9, "bbox": [10, 10, 50, 50]},
            {"id": 3, "image_id": 1, "category_id": 5, "bbox": [10, 10]},
            {"id": 4, "image_id": 1, "category_id": 5, "bbox": [0, 0, 200, 100], "iscrowd": 1},
            {"id": 5, "image_id": 7, "category_id": 5, "bbox": [1, 1, 2, 2]},
        ],
        "categories": [{"id": 5, "name": "fire"}],
    }
    (tmp_path / "a.json").write_text(json.dumps(data))

    dataset = load_coco_set({"train": (tmp_path / "a.json", images_dir)}, name="broken")

    kinds = sorted(i.kind.value for i in dataset.issues)
    assert kinds == sorted(
        [
            IssueKind.UNKNOWN_CLASS,
            IssueKind.MALFORMED_LINE,
            IssueKind.MISSING_IMAGE,
            IssueKind.MISSING_IMAGE,
            IssueKind.CROWD_REGION,  # annotation 4: left out, no longer silently
        ]
    )
    [item] = dataset.images
    np.testing.assert_allclose(item.boxes, [[0, 35 / 200, 35 / 100, 50 / 200, 50 / 100]], atol=1e-6)
    [unknown] = [i for i in dataset.issues if i.kind is IssueKind.UNKNOWN_CLASS]
    assert "annotation 2: category_id 9 is not one of the file's categories (5 'fire')" in unknown.detail
    assert "-1" not in unknown.detail


def test_not_a_coco_file_raises(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"images": 3}')
    with pytest.raises(DatasetFormatError, match="needs 'images' and 'categories'"):
        load_coco_set({"train": (tmp_path / "x.json", tmp_path)}, name="x")


def _one_image_set(tmp_path: Path, image: dict[str, object], bbox: object) -> Path:
    """A COCO file of one real 200x100 image with one box, the image entry and bbox as given."""
    images_dir = tmp_path / "images"
    images_dir.mkdir(exist_ok=True)
    cv2.imwrite(str(images_dir / "a.jpg"), np.zeros((100, 200, 3), np.uint8))
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", **image}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": bbox}],
        "categories": [{"id": 5, "name": "fire"}],
    }
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("image", "bbox", "detail"),
    [
        ({"width": None, "height": 100}, [10, 10, 50, 50], "image size Nonex100 unusable"),
        ({"height": 100}, [10, 10, 50, 50], "image size Nonex100 unusable"),
        ({"width": "200", "height": 100}, [10, 10, 50, 50], "image size '200'x100 unusable"),
        ({"width": 200, "height": 100}, ["x", 1, 2, 3], "bbox ['x', 1, 2, 3]"),
        ({"width": 200, "height": 100}, [None, 1, 2, 3], "bbox [None, 1, 2, 3]"),
    ],
    ids=["width-null", "width-missing", "width-a-string", "bbox-a-string", "bbox-null"],
)
def test_an_unusable_image_size_or_bbox_is_a_malformed_line_issue(
    tmp_path: Path, image: dict[str, object], bbox: object, detail: str
) -> None:
    path = _one_image_set(tmp_path, image, bbox)
    dataset = load_coco_set({"train": (path, tmp_path / "images")}, name="bad")
    [issue] = dataset.issues
    assert issue.kind is IssueKind.MALFORMED_LINE
    assert detail in issue.detail
    [item] = dataset.images
    assert len(item.boxes) == 0


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"images": [], "categories": [{"name": "fire"}]},
            r"x\.json: categories\[0\]: 'id' must be an integer, got None",
        ),
        (
            {"images": [], "categories": [{"id": 1, "name": "fire"}, {"id": "2", "name": "smoke"}]},
            r"x\.json: categories\[1\]: 'id' must be an integer, got '2'",
        ),
        (
            {"images": [], "categories": [{"id": 1}]},
            r"x\.json: categories\[0\]: 'name' must be a non-empty string",
        ),
        ({"images": [], "categories": ["fire"]}, r"x\.json: categories\[0\] must be an object, got str"),
        (
            {"images": [{"file_name": "a.jpg"}], "categories": [{"id": 1, "name": "fire"}]},
            r"x\.json: images\[0\]: 'id' must be an integer, got None",
        ),
        (
            {"images": [{"id": 1}], "categories": [{"id": 1, "name": "fire"}]},
            r"x\.json: images\[0\]: 'file_name' must be a non-empty string",
        ),
        (
            {"images": [], "categories": [], "annotations": {"id": 1}},
            r"x\.json: 'annotations' must be a list, got dict",
        ),
    ],
    ids=[
        "category-without-id",
        "category-id-a-string",
        "category-without-name",
        "category-not-an-object",
        "image-without-id",
        "image-without-file-name",
        "annotations-not-a-list",
    ],
)
def test_a_category_or_image_entry_without_its_fields_raises_naming_the_entry(
    tmp_path: Path, data: dict[str, object], match: str
) -> None:
    (tmp_path / "x.json").write_text(json.dumps(data))
    with pytest.raises(DatasetFormatError, match=match):
        load_coco_set({"train": (tmp_path / "x.json", tmp_path)}, name="x")


def test_an_annotation_that_is_not_an_object_or_names_no_integer_image_is_reported(tmp_path: Path) -> None:
    path = _one_image_set(tmp_path, {"width": 200, "height": 100}, [10, 10, 50, 50])
    data = json.loads(path.read_text())
    data["annotations"] += ["junk", {"id": 3, "image_id": "1", "category_id": 5, "bbox": [1, 1, 2, 2]}]
    path.write_text(json.dumps(data))
    dataset = load_coco_set({"train": (path, tmp_path / "images")}, name="bad")
    assert sorted(i.kind.value for i in dataset.issues) == sorted(
        [IssueKind.MALFORMED_LINE.value, IssueKind.MISSING_IMAGE.value]
    )
    [item] = dataset.images
    assert len(item.boxes) == 1


def test_crowd_regions_left_out_are_reported_with_their_count(tmp_path: Path) -> None:
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    for name in ("t0.jpg", "t1.jpg"):
        cv2.imwrite(str(images_dir / name), np.zeros((100, 200, 3), np.uint8))
    data = {
        "images": [
            {"id": 1, "file_name": "t0.jpg", "width": 200, "height": 100},
            {"id": 2, "file_name": "t1.jpg", "width": 200, "height": 100},
        ],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "iscrowd": 1},
            {"id": 8, "image_id": 1, "category_id": 1, "bbox": [100, 0, 100, 100], "iscrowd": 1},
            {"id": 9, "image_id": 2, "category_id": 1, "bbox": [10, 10, 50, 50], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "a.json").write_text(json.dumps(data))

    dataset = load_coco_set({"train": (tmp_path / "a.json", images_dir)}, name="crowd")

    [crowd] = [i for i in dataset.issues if i.kind is IssueKind.CROWD_REGION]
    assert crowd.path.name == "t0.jpg" and crowd.severity.value == "warning"
    assert crowd.detail.startswith("2 crowd region(s) (iscrowd, annotation 7, 8) left out")
    assert dataset.box_count() == 1


def test_an_image_name_too_long_for_the_file_system_is_a_missing_image_issue(tmp_path: Path) -> None:
    """The import fuzz test's find: a 300-character file_name ended in OSError (ENAMETOOLONG)."""
    images_dir = _images_with_a_jpg(tmp_path)
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
            {"id": 2, "file_name": "x" * 300 + ".jpg", "width": 200, "height": 100},
        ],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 10, 50, 50]}],
        "categories": [{"id": 5, "name": "fire"}],
    }
    (tmp_path / "a.json").write_text(json.dumps(data))

    dataset = load_coco_set({"train": (tmp_path / "a.json", images_dir)}, name="long")

    assert len(dataset.images) == 1
    [issue] = dataset.issues
    assert issue.kind is IssueKind.MISSING_IMAGE
    assert issue.detail == "listed but cannot be looked up: File name too long"
