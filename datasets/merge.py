"""Merge several detection sets into one taxonomy through a :class:`ClassMap`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from anjian.datasets.boxes import iou_cxcywh
from anjian.datasets.classmap import ClassMap, OverlapPolicy
from anjian.datasets.labels import DetectionSet, ProgressFn, no_progress

__all__ = ["MergeReport", "MergeRow", "merge_sets", "remap_boxes", "resolve_overlaps"]


@dataclass(frozen=True, slots=True)
class MergeRow:
    """What became of one source class.

    Attributes:
        set_name: The source set.
        source_class: Its class name there.
        target: The target class, ``None`` when dropped.
        boxes: Boxes of this class read from the set.
        kept: Boxes that survived overlap resolution.
    """

    set_name: str
    source_class: str
    target: str | None
    boxes: int
    kept: int


@dataclass(slots=True)
class MergeReport:
    """Per source class, where its boxes went; and overlaps resolved per set."""

    rows: list[MergeRow] = field(default_factory=list)
    overlaps_resolved: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "rows": [
                {
                    "set": r.set_name,
                    "class": r.source_class,
                    "target": r.target,
                    "boxes": r.boxes,
                    "kept": r.kept,
                }
                for r in self.rows
            ],
            "overlaps_resolved": dict(self.overlaps_resolved),
        }


def resolve_overlaps(boxes: np.ndarray, class_names: Sequence[str], policy: OverlapPolicy) -> np.ndarray:
    """Keep one box per object where an object carries several labels.

    Two boxes overlapping by at least ``policy.iou`` are one object when they have the same
    class, or when both classes are in ``policy.priority``; the earlier class in the
    priority list wins (then the earlier box).

    Args:
        boxes: ``(n, 5)`` rows ``class_id, cx, cy, w, h``.
        class_names: Class id to name of ``boxes``.
        policy: The overlap threshold and priority.

    Returns:
        The kept rows, in their original order.
    """
    if len(boxes) < 2:
        return boxes
    rank = {name: i for i, name in enumerate(policy.priority)}
    cls = boxes[:, 0].astype(int)
    ranks = np.array([rank.get(class_names[c], len(rank)) for c in cls])
    in_policy = ranks < len(rank)
    iou = iou_cxcywh(boxes[:, 1:], boxes[:, 1:])
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda k: (ranks[k], k)):
        clash = any(
            iou[i, j] >= policy.iou and (cls[i] == cls[j] or (in_policy[i] and in_policy[j])) for j in kept
        )
        if not clash:
            kept.append(i)
    return boxes[sorted(kept)]


def remap_boxes(boxes: np.ndarray, table: Sequence[int | None]) -> np.ndarray:
    """Rewrite class ids through ``table`` (source id to target id); ``None`` drops the box."""
    if not len(boxes):
        return boxes
    targets = np.array([-1 if table[int(c)] is None else table[int(c)] for c in boxes[:, 0]], np.float32)
    out = boxes.copy()
    out[:, 0] = targets
    return out[targets >= 0]


def merge_sets(
    sets: Sequence[DetectionSet],
    class_map: ClassMap,
    *,
    name: str = "merged",
    progress: ProgressFn = no_progress,
) -> tuple[DetectionSet, MergeReport]:
    """Map every set onto ``class_map.classes`` and concatenate them.

    Splits are kept as they are (a set's val stays val). Each image keeps its ``source``
    so the merged set can be written per source and evaluated per source. The merged
    set's ``labelled_classes`` records, per source, which target classes that source
    labels at all: a person in a set that never labels ``person`` is *unlabelled*, not
    background (see ``anjian.training.pseudo_label``).

    Args:
        sets: The sets, each with a distinct ``name``.
        class_map: Target classes and how source names map onto them.
        name: Name of the merged set.
        progress: Wraps the per-image loop to show progress.

    Returns:
        The merged set and a report of where every source class went.

    Raises:
        ValueError: Two sets share a name.
        ClassMapError: A class is unmapped and the map's ``unmapped`` is ``error``, or the map's
            names do not fit the sets where that would drop a class (:meth:`ClassMap.check_names`).
    """
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"sets to merge need distinct names, got {names}")
    class_map.check_names({s.name: s.class_names for s in sets})
    merged = DetectionSet(name=name, class_names=class_map.classes)
    report = MergeReport()
    for dataset in sets:
        table = class_map.id_table(dataset.name, dataset.class_names)
        read: Counter[int] = Counter()
        kept: Counter[int] = Counter()
        resolved = 0
        for item in progress(dataset.images, f"merge {dataset.name}", len(dataset.images)):
            source_ids = item.class_ids
            read.update(source_ids.tolist())
            boxes = remap_boxes(item.boxes, table)
            mapped_sources = np.array([c for c in source_ids if table[c] is not None], np.int64)
            survivors = resolve_overlaps(boxes, class_map.classes, class_map.overlap)
            resolved += len(boxes) - len(survivors)
            if len(survivors):
                # attribute kept boxes back to source classes for the report
                keep_mask = _kept_mask(boxes, survivors)
                kept.update(mapped_sources[keep_mask].tolist())
            merged.images.append(item.replace(boxes=survivors, source=item.source or dataset.name))
        for source_id, class_name in enumerate(dataset.class_names):
            target_id = table[source_id]
            report.rows.append(
                MergeRow(
                    set_name=dataset.name,
                    source_class=class_name,
                    target=None if target_id is None else class_map.classes[target_id],
                    boxes=read[source_id],
                    kept=kept[source_id],
                )
            )
        report.overlaps_resolved[dataset.name] = resolved
        merged.issues.extend(dataset.issues)
        for source, labelled in (dataset.labelled_classes or {dataset.name: dataset.class_names}).items():
            targets = {class_map.target_of(dataset.name, c) for c in labelled}
            merged.labelled_classes[source] = tuple(c for c in class_map.classes if c in targets)
    return merged, report


def _kept_mask(boxes: np.ndarray, survivors: np.ndarray) -> np.ndarray:
    """Which rows of ``boxes`` are in ``survivors`` (same values, order kept)."""
    mask = np.zeros(len(boxes), bool)
    j = 0
    for i, row in enumerate(boxes):
        if j < len(survivors) and np.array_equal(row, survivors[j]):
            mask[i] = True
            j += 1
    return mask
