"""Read COCO-JSON detection sets (``instances_*.json`` with an image folder)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, TypeGuard

from anjian.datasets.boxes import clean_boxes
from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labels import (
    DetectionSet,
    Issue,
    IssueKind,
    LabelledImage,
    ProgressFn,
    Severity,
    no_progress,
)

__all__ = ["load_coco_set"]


def _read_json(path: Path) -> dict[str, Any]:
    """The annotation file as a dict with ``images``, ``annotations`` and ``categories``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"cannot read COCO annotations {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "categories")):
        raise DatasetFormatError(f"{path}: a COCO file needs 'images' and 'categories' lists")
    return data


def _entry_id(entry: object, section: str, index: int, path: Path) -> int:
    """The integer ``id`` of ``data[section][index]``; DatasetFormatError naming the file, entry and field."""
    where = f"{path}: {section}[{index}]"
    if not isinstance(entry, dict):
        raise DatasetFormatError(f"{where} must be an object, got {type(entry).__name__}")
    value = entry.get("id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise DatasetFormatError(f"{where}: 'id' must be an integer, got {value!r}")
    return value


def _entry_text(entry: dict[str, Any], key: str, where: str) -> str:
    """The non-empty string ``entry[key]``, or a ``DatasetFormatError`` naming ``where`` and the key."""
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise DatasetFormatError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _categories(data: dict[str, Any], path: Path) -> list[tuple[int, str]]:
    """``(id, name)`` of every category, in file order."""
    categories = []
    for index, entry in enumerate(data["categories"]):
        cid = _entry_id(entry, "categories", index, path)
        categories.append((cid, _entry_text(entry, "name", f"{path}: categories[{index}]")))
    return categories


def _images(data: dict[str, Any], path: Path) -> dict[int, dict[str, Any]]:
    """Every image entry by its id."""
    images = {}
    for index, entry in enumerate(data["images"]):
        image_id = _entry_id(entry, "images", index, path)
        _entry_text(entry, "file_name", f"{path}: images[{index}]")
        images[image_id] = entry
    return images


def _is_number(value: object) -> TypeGuard[int | float]:
    """True for an int or float JSON value (not a bool, a string or null)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _box_numbers(bbox: object) -> list[float] | None:
    """``bbox`` as its four numbers ``[x, y, w, h]``; None when it is not a list of four numbers."""
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None
    numbers = [float(v) for v in bbox if _is_number(v)]
    return numbers if len(numbers) == 4 else None


def _image_size(info: dict[str, Any]) -> tuple[float, float]:
    """The image entry's ``(width, height)``; 0 for a side that is missing or not a number (reported per box)."""
    width, height = info.get("width"), info.get("height")
    return (float(width) if _is_number(width) else 0.0, float(height) if _is_number(height) else 0.0)


def _describe(categories: list[tuple[int, str]], most: int = 12) -> str:
    """``id 'name'`` of the first categories, for messages."""
    shown = ", ".join(f"{cid} {name!r}" for cid, name in categories[:most])
    return shown + (f", … {len(categories) - most} more" if len(categories) > most else "") or "none"


def load_coco_set(
    splits: dict[str, tuple[Path, Path]],
    *,
    name: str,
    progress: ProgressFn = no_progress,
) -> DetectionSet:
    """Read one COCO annotation file per split.

    Boxes (``[x, y, w, h]`` pixels) are normalised by each image's ``width``/``height``;
    annotations naming an unknown image or category are reported. A crowd annotation
    (``iscrowd``: one region over many objects, without a box each) cannot be kept: YOLO has no
    ignore regions. It is left out with a ``crowd_region`` warning per image (how many, which
    annotations), because the objects in it then read as background: trained on, and scored
    (hits there count as false alarms, where COCOeval ignores them). Category ids need not be contiguous: classes are numbered in the order of
    the first split's ``categories``; later splits must name the same categories.

    Args:
        splits: Split name to ``(annotation json, image folder)``.
        name: Name of the set.
        progress: Wraps the per-image loop.

    Returns:
        The set with its issues.

    Raises:
        DatasetFormatError: An annotation file is unreadable, a category or image entry lacks
            an integer ``id`` (or its name / file name), or the splits' categories differ.
    """
    dataset: DetectionSet | None = None
    class_index: dict[int, int] = {}
    for split, (json_path, image_dir) in splits.items():
        data = _read_json(json_path)
        categories = _categories(data, Path(json_path))
        if dataset is None:
            class_index = {cid: i for i, (cid, _) in enumerate(categories)}
            dataset = DetectionSet(name=name, class_names=tuple(n for _, n in categories))
        elif tuple(n for _, n in categories) != dataset.class_names:
            raise DatasetFormatError(
                f"{json_path}: categories differ from the first split's {dataset.class_names}"
            )
        by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
        images = _images(data, Path(json_path))
        annotations = data.get("annotations") or []
        if not isinstance(annotations, list):
            raise DatasetFormatError(
                f"{json_path}: 'annotations' must be a list, got {type(annotations).__name__}"
            )
        for index, ann in enumerate(annotations):
            if not isinstance(ann, dict):
                dataset.issues.append(
                    Issue(
                        IssueKind.MALFORMED_LINE,
                        Severity.ERROR,
                        Path(json_path),
                        f"annotations[{index}] is not an object: {ann!r:.80}",
                    )
                )
                continue
            image_id = ann.get("image_id")
            if not isinstance(image_id, int) or isinstance(image_id, bool) or image_id not in images:
                dataset.issues.append(
                    Issue(
                        IssueKind.MISSING_IMAGE,
                        Severity.ERROR,
                        Path(json_path),
                        f"annotation {ann.get('id')} names image {image_id!r}, which the file does not list",
                    )
                )
                continue
            by_image[image_id].append(ann)
        for image_id, info in progress(list(images.items()), f"{name}/{split}", len(images)):
            path = Path(image_dir) / str(info["file_name"])
            try:
                is_there = path.is_file()
            except OSError as exc:  # a name too long for the file system, a loop of links
                dataset.issues.append(
                    Issue(
                        IssueKind.MISSING_IMAGE,
                        Severity.ERROR,
                        path,
                        f"listed but cannot be looked up: {exc.strerror}",
                    )
                )
                continue
            if not is_there:
                dataset.issues.append(
                    Issue(IssueKind.MISSING_IMAGE, Severity.ERROR, path, "listed but not found")
                )
                continue
            width, height = _image_size(info)
            rows = []
            crowds = [ann for ann in by_image.get(image_id, []) if ann.get("iscrowd")]
            if crowds:
                dataset.issues.append(
                    Issue(
                        IssueKind.CROWD_REGION,
                        Severity.WARNING,
                        path,
                        f"{len(crowds)} crowd region(s) (iscrowd, annotation {', '.join(str(a.get('id')) for a in crowds[:5])}"
                        f"{', …' if len(crowds) > 5 else ''}) left out: YOLO has no ignore regions, so the objects in "
                        "them count as background here (in training, and hits on them as false alarms in eval); "
                        "leave the image out or box them one by one",
                    )
                )
            for ann in by_image.get(image_id, []):
                if ann.get("iscrowd"):
                    continue
                try:
                    category = int(ann.get("category_id", -1))
                except (TypeError, ValueError):
                    category = -1
                bbox = ann.get("bbox")
                numbers = _box_numbers(bbox)
                if numbers is None or width <= 0 or height <= 0:
                    dataset.issues.append(
                        Issue(
                            IssueKind.MALFORMED_LINE,
                            Severity.ERROR,
                            path,
                            f"annotation {ann.get('id')}: bbox "
                            f"{bbox!r:.80} or image size {info.get('width')!r}x{info.get('height')!r} unusable",
                        )
                    )
                    continue
                if category not in class_index:
                    dataset.issues.append(
                        Issue(
                            IssueKind.UNKNOWN_CLASS,
                            Severity.ERROR,
                            path,
                            f"annotation {ann.get('id')}: category_id {ann.get('category_id')!r} is not one of "
                            f"the file's categories ({_describe(categories)}); box dropped",
                        )
                    )
                    continue
                x, y, w, h = numbers
                cls = class_index[category]
                rows.append([cls, (x + w / 2) / width, (y + h / 2) / height, w / width, h / height])
            boxes, issues = clean_boxes(rows, len(categories), path)
            dataset.issues.extend(issues)
            dataset.images.append(LabelledImage(image=path, split=split, boxes=boxes, source=name))
    if dataset is None:
        raise DatasetFormatError("no COCO annotation files given")
    dataset.labelled_classes = {name: dataset.class_names}
    return dataset
