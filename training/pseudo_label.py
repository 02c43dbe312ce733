"""Fill in the classes a source set never labels with a teacher detector's confident boxes.

Merging sets that label different classes hides a trap: the people in the cigarette and
fire pictures carry no ``person`` box, so a naive merge teaches the detector that those
people are background. Before training, :func:`pseudo_label` runs a teacher (the
COCO-pretrained detector, whose ``person`` class is reliable) over the images of every
source that does not label a class, and adds the teacher's confident boxes of that class,
unless they overlap a box already there (a ``fallen_person`` is not also a ``person``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from anjian.datasets.boxes import iou_cxcywh
from anjian.datasets.labels import DetectionSet, ProgressFn, no_progress
from anjian.models.detector import Detector

__all__ = ["PseudoLabelReport", "pseudo_label"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PseudoLabelReport:
    """Boxes added per ``(source, split, class)``, images looked at and classes filled in per source."""

    added: dict[tuple[str, str, str], int] = field(default_factory=dict)
    images_seen: dict[str, int] = field(default_factory=dict)
    filled_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "added": [
                {"source": s, "split": sp, "class": c, "boxes": n} for (s, sp, c), n in self.added.items()
            ],
            "images_seen": dict(self.images_seen),
            "filled_classes": {k: list(v) for k, v in self.filled_classes.items()},
        }


def pseudo_label(
    dataset: DetectionSet,
    teacher: Detector,
    class_sources: Mapping[str, str],
    *,
    min_confidence: float = 0.5,
    block_iou: float = 0.3,
    batch_size: int = 8,
    sources: Collection[str] | None = None,
    progress: ProgressFn = no_progress,
) -> tuple[DetectionSet, PseudoLabelReport]:
    """Add teacher boxes for classes a source does not label.

    Args:
        dataset: A merged set whose ``labelled_classes`` says which classes each source labels.
        teacher: A detector run on the images (e.g. the COCO ``OnnxDetector``).
        class_sources: Target class name to the teacher's class name (``{"person": "person"}``).
        min_confidence: Teacher boxes scoring below are ignored.
        block_iou: A teacher box overlapping any existing box of the image by at least this
            much is not added (the object is labelled already, perhaps as another class).
        batch_size: Images per teacher call.
        sources: Only these sources are filled (``None``: every source lacking a class); a
            teacher trusted on one kind of footage (a smoke model on fire videos) fills only that.
        progress: Wraps the per-batch loop to show progress.

    Returns:
        A new set with the added boxes (``labelled_classes`` updated) and a report.

    Raises:
        ValueError: A class is not in the set, or the teacher lacks a class.
    """
    target_ids = {
        name: dataset.class_names.index(name) for name in class_sources if name in dataset.class_names
    }
    missing = sorted(set(class_sources) - set(target_ids))
    if missing:
        raise ValueError(f"classes {missing} are not in the set's classes {list(dataset.class_names)}")
    teacher_names = {v: k for k, v in teacher.class_names.items()}
    missing = sorted(set(class_sources.values()) - set(teacher_names))
    if missing:
        raise ValueError(f"the teacher has no classes {missing}")
    teacher_to_target = {teacher_names[t]: target_ids[c] for c, t in class_sources.items()}
    report = PseudoLabelReport()
    out = DetectionSet(
        name=dataset.name,
        class_names=dataset.class_names,
        issues=list(dataset.issues),
        labelled_classes=dict(dataset.labelled_classes),
    )
    todo: list[int] = []
    for index, item in enumerate(dataset.images):
        labelled = dataset.labelled_classes.get(item.source, dataset.class_names)
        if (sources is None or item.source in sources) and any(c not in labelled for c in class_sources):
            todo.append(index)
    images = list(dataset.images)
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    for batch in progress(batches, "pseudo-label", len(batches)):
        pictures = [cv2.imread(str(images[i].image)) for i in batch]
        readable = [(i, p) for i, p in zip(batch, pictures, strict=True) if p is not None]
        if not readable:
            continue
        results = teacher.detect([p for _, p in readable])
        for (index, picture), dets in zip(readable, results, strict=True):
            item = images[index]
            labelled = dataset.labelled_classes.get(item.source, dataset.class_names)
            report.images_seen[item.source] = report.images_seen.get(item.source, 0) + 1
            h, w = picture.shape[:2]
            keep = dets.confidence >= min_confidence
            new_rows = []
            for xyxy, class_id in zip(dets.xyxy[keep], dets.class_id[keep], strict=True):
                target = teacher_to_target.get(int(class_id))
                if target is None or dataset.class_names[target] in labelled:
                    continue
                x1, y1, x2, y2 = np.clip(xyxy / [w, h, w, h], 0.0, 1.0)
                if x2 <= x1 or y2 <= y1:
                    continue
                new_rows.append([target, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
            if not new_rows:
                continue
            added = np.array(new_rows, np.float32)
            if len(item.boxes):
                overlap = iou_cxcywh(added[:, 1:], item.boxes[:, 1:]).max(axis=1)
                added = added[overlap < block_iou]
            for row in added:
                key = (item.source, item.split, dataset.class_names[int(row[0])])
                report.added[key] = report.added.get(key, 0) + 1
            images[index] = item.replace(boxes=np.concatenate([item.boxes, added]).astype(np.float32))
    out.images = images
    for source, labelled in dataset.labelled_classes.items():
        if sources is not None and source not in sources:
            continue
        extra = tuple(c for c in class_sources if c not in labelled)
        if extra:
            report.filled_classes[source] = extra
        out.labelled_classes[source] = tuple(c for c in dataset.class_names if c in labelled or c in extra)
    logger.info("pseudo-labelled %d boxes over %d images", sum(report.added.values()), len(todo))
    return out, report
