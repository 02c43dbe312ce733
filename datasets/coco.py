"""Read COCO-JSON detection sets (``instances_*.json`` with an image folder)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

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
    crowd annotations are skipped; annotations naming an unknown image or category are
    reported. Category ids need not be contiguous: classes are numbered in the order of
    the first split's ``categories``; later splits must name the same categories.

    Args:
        splits: Split name to ``(annotation json, image folder)``.
        name: Name of the set.
        progress: Wraps the per-image loop.

    Returns:
        The set with its issues.

    Raises:
        DatasetFormatError: An annotation file is unreadable, or the splits' categories differ.
    """
    dataset: DetectionSet | None = None
    class_index: dict[int, int] = {}
    for split, (json_path, image_dir) in splits.items():
        data = _read_json(json_path)
        categories = [(int(c["id"]), str(c["name"])) for c in data["categories"]]
        if dataset is None:
            class_index = {cid: i for i, (cid, _) in enumerate(categories)}
            dataset = DetectionSet(name=name, class_names=tuple(n for _, n in categories))
        elif tuple(n for _, n in categories) != dataset.class_names:
            raise DatasetFormatError(
                f"{json_path}: categories differ from the first split's {dataset.class_names}"
            )
        by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
        images = {int(im["id"]): im for im in data["images"]}
        for ann in data.get("annotations", []):
            image_id = int(ann.get("image_id", -1))
            if image_id not in images:
                dataset.issues.append(
                    Issue(
                        IssueKind.MISSING_IMAGE,
                        Severity.ERROR,
                        Path(json_path),
                        f"annotation {ann.get('id')} names image {image_id}, which the file does not list",
                    )
                )
                continue
            by_image[image_id].append(ann)
        for image_id, info in progress(list(images.items()), f"{name}/{split}", len(images)):
            path = Path(image_dir) / str(info["file_name"])
            if not path.is_file():
                dataset.issues.append(
                    Issue(IssueKind.MISSING_IMAGE, Severity.ERROR, path, "listed but not found")
                )
                continue
            width, height = float(info.get("width", 0)), float(info.get("height", 0))
            rows = []
            for ann in by_image.get(image_id, []):
                if ann.get("iscrowd"):
                    continue
                try:
                    category = int(ann.get("category_id", -1))
                except (TypeError, ValueError):
                    category = -1
                bbox = ann.get("bbox")
                if not isinstance(bbox, list) or len(bbox) != 4 or width <= 0 or height <= 0:
                    dataset.issues.append(
                        Issue(
                            IssueKind.MALFORMED_LINE,
                            Severity.ERROR,
                            path,
                            f"annotation {ann.get('id')}: bbox "
                            f"{bbox!r} or image size {width}x{height} unusable",
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
                x, y, w, h = (float(v) for v in bbox)
                cls = class_index[category]
                rows.append([cls, (x + w / 2) / width, (y + h / 2) / height, w / width, h / height])
            boxes, issues = clean_boxes(np.array(rows, np.float32).reshape(-1, 5), len(categories), path)
            dataset.issues.extend(issues)
            dataset.images.append(LabelledImage(image=path, split=split, boxes=boxes, source=name))
    if dataset is None:
        raise DatasetFormatError("no COCO annotation files given")
    dataset.labelled_classes = {name: dataset.class_names}
    return dataset
