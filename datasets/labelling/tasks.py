"""What goes to a labelling tool and what comes back, independent of the tool.

An export is a folder an analyst hands to CVAT or Label Studio::

    <out>/images/<name>               the images to label (flat, unique names)
    <out>/cvat/annotations.xml        pre-labels, CVAT for images 1.1 (upload into the task)
    <out>/cvat/labels.json            the label list, for the task's "Raw" label constructor
    <out>/label_studio/tasks.json     tasks with the pre-labels as ``predictions``
    <out>/label_studio/config.xml     the labeling configuration
    <out>/anjian_labelling.json       the manifest: classes, model, and per image its origin
    <out>/README.md                   the steps, for whoever labels

The manifest lets the corrected labels come back as a clean YOLO set with each image's
original split and source (:mod:`anjian.datasets.labelling.corrections`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anjian.datasets.errors import DatasetFormatError

__all__ = [
    "MANIFEST_NAME",
    "LabelBox",
    "LabelTask",
    "Manifest",
    "ToolImage",
    "read_manifest",
    "unique_names",
]

MANIFEST_NAME = "anjian_labelling.json"
"""File name of the export's manifest."""


@dataclass(frozen=True, slots=True)
class LabelBox:
    """One box on an image, in the image's pixels.

    Attributes:
        label: Class name.
        xyxy: ``x1, y1, x2, y2`` pixels.
        score: The model's confidence for a pre-label, ``None`` for a human's box.
    """

    label: str
    xyxy: tuple[float, float, float, float]
    score: float | None = None

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in self.xyxy):  # a NaN would reach the YOLO label files as "nan"
            raise ValueError(
                f"a {self.label} box at {self.xyxy} has a coordinate that is not a finite number"
            )


@dataclass(frozen=True, slots=True)
class LabelTask:
    """One image to label.

    Attributes:
        name: Its file name in the export (unique in the export).
        image: The original image file.
        width: Pixels.
        height: Pixels.
        split: Its split in the set it came from.
        source: The source set it came from.
        boxes: Pre-labels.
    """

    name: str
    image: Path
    width: int
    height: int
    split: str
    source: str
    boxes: tuple[LabelBox, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolImage:
    """One image as a labelling tool's export describes it.

    Attributes:
        name: The image's file name (as the export names it, without folders).
        width: Pixels, as the tool saw the image (``0``: not given).
        height: Pixels (``0``: not given).
        boxes: The labelled boxes.
        notes: What was changed or left out while reading it (rotated boxes, polygons ...).
    """

    name: str
    width: int
    height: int
    boxes: tuple[LabelBox, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Manifest:
    """The export's record: classes, model, and each image's origin.

    Attributes:
        class_names: Classes, in id order.
        model: Version of the model that made the pre-labels (empty: the set's own labels).
        images: Export name to ``{"image", "split", "source", "width", "height"}``.
    """

    class_names: tuple[str, ...]
    model: str
    images: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_tasks(cls, tasks: Sequence[LabelTask], class_names: Sequence[str], model: str) -> Manifest:
        """The manifest of an export."""
        return cls(
            tuple(class_names),
            model,
            {
                t.name: {
                    "image": str(t.image),
                    "split": t.split,
                    "source": t.source,
                    "width": t.width,
                    "height": t.height,
                }
                for t in tasks
            },
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"class_names": list(self.class_names), "model": self.model, "images": self.images}


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of an export folder, ``None`` when it has none.

    Raises:
        DatasetFormatError: The manifest exists but cannot be read.
    """
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return Manifest(
            tuple(str(c) for c in data["class_names"]), str(data.get("model", "")), dict(data["images"])
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetFormatError(f"{path} is not an anjian labelling manifest: {exc}") from exc


def unique_names(images: Sequence[tuple[Path, str]]) -> list[str]:
    """Flat, unique file names for images of one or more sources.

    A single source keeps the file names; several prefix them with ``<source>__``; what still
    collides gets ``_2``, ``_3`` ... before the suffix.

    Args:
        images: ``(image path, source)`` pairs.
    """
    is_multi_source = len({source for _, source in images}) > 1
    taken: set[str] = set()
    names = []
    for path, source in images:
        stem, suffix = path.stem, path.suffix.lower()
        base = f"{source}__{stem}" if is_multi_source else stem
        name, k = f"{base}{suffix}", 1
        while name.lower() in taken:
            k += 1
            name = f"{base}_{k}{suffix}"
        taken.add(name.lower())
        names.append(name)
    return names
