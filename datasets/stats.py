"""Per-class counts of a set: boxes, images, box sizes, per split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anjian.datasets.labels import DetectionSet

__all__ = ["ClassStats", "class_stats"]


@dataclass(frozen=True, slots=True)
class ClassStats:
    """One class in one split.

    Attributes:
        split: The split.
        class_name: The class.
        boxes: Boxes of the class.
        images: Images holding at least one.
        median_side: Median ``sqrt(w * h)`` of its boxes, as a share of the image side.
        small_share: Share of its boxes smaller than 1/32 of the image side (hard at low input sizes).
    """

    split: str
    class_name: str
    boxes: int
    images: int
    median_side: float
    small_share: float


def class_stats(dataset: DetectionSet) -> tuple[list[ClassStats], dict[str, tuple[int, int]]]:
    """Count boxes and images per class and split.

    Returns:
        Rows per ``(split, class)`` (classes without boxes included, with zeros) and, per
        split, ``(images, background images)``.
    """
    rows = []
    totals: dict[str, tuple[int, int]] = {}
    for split in dataset.splits:
        items = dataset.in_split(split)
        totals[split] = (len(items), sum(1 for im in items if not len(im.boxes)))
        boxes = np.concatenate([im.boxes for im in items]) if items else np.zeros((0, 5), np.float32)
        for class_id, name in enumerate(dataset.class_names):
            mine = boxes[boxes[:, 0] == class_id]
            sides = np.sqrt(mine[:, 3] * mine[:, 4]) if len(mine) else np.zeros(0)
            rows.append(
                ClassStats(
                    split=split,
                    class_name=name,
                    boxes=len(mine),
                    images=sum(1 for im in items if (im.class_ids == class_id).any()),
                    median_side=float(np.median(sides)) if len(sides) else 0.0,
                    small_share=float((sides < 1 / 32).mean()) if len(sides) else 0.0,
                )
            )
    return rows, totals
