"""What an eval report draws, computed from the per-image matches of an evaluation.

:class:`MatchCollector` keeps the :class:`anjian.training.evaluate.ImageMatches` that
``evaluate_detector(..., on_image=collector)`` hands over. From them, at IoU 0.5:

- :func:`class_curves`: each class's precision-recall curve and its precision, recall and F1
  as functions of the confidence threshold;
- :func:`confusion_matrix`: true class (or background) against predicted class (or
  background) at one confidence threshold, boxes paired regardless of class;
- :func:`find_errors`: the false positives and the misses of each class at that threshold,
  worst first, for the galleries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from anjian.models.boxes import box_iou_batch
from anjian.training.evaluate import ImageMatches

__all__ = [
    "ClassCurves",
    "ErrorCase",
    "MatchCollector",
    "class_curves",
    "confusion_matrix",
    "find_errors",
    "pair_boxes",
]

IOU_MATCH = 0.5
"""IoU at which a prediction counts as finding a ground-truth box."""

CONFIDENCE_GRID = np.linspace(0.0, 1.0, 101)
"""Thresholds the precision, recall and F1 curves are sampled at."""


@dataclass(slots=True)
class MatchCollector:
    """An ``on_image`` callback for :func:`anjian.training.evaluate.evaluate_detector` that keeps every image."""

    images: list[ImageMatches] = field(default_factory=list)

    def __call__(self, matches: ImageMatches) -> None:
        """Keep one image's matches."""
        self.images.append(matches)


@dataclass(frozen=True, slots=True)
class ClassCurves:
    """Curves of one class at IoU 0.5.

    Attributes:
        class_id: Model class id.
        instances: Ground-truth boxes.
        recall: ``(k,)`` recall after each prediction, by decreasing confidence.
        precision: ``(k,)`` precision at the same points (its running maximum from the right,
            as AP interpolates it).
        precision_at: ``(101,)`` precision at each threshold of :data:`CONFIDENCE_GRID`
            (NaN where no prediction passes).
        recall_at: ``(101,)`` recall there.
        f1_at: ``(101,)`` F1 there (0 where undefined).
    """

    class_id: int
    instances: int
    recall: np.ndarray
    precision: np.ndarray
    precision_at: np.ndarray
    recall_at: np.ndarray
    f1_at: np.ndarray

    @property
    def best_confidence(self) -> float:
        """Highest threshold reaching the best F1 on the grid (of equal F1, the one with fewer alarms)."""
        last = len(self.f1_at) - 1 - int(np.argmax(self.f1_at[::-1]))
        return float(CONFIDENCE_GRID[last])


def pair_boxes(
    pred_xyxy: np.ndarray,
    pred_class: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_class: np.ndarray,
    *,
    is_class_aware: bool,
    iou_min: float = IOU_MATCH,
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one pairs of predictions and ground truth, highest IoU first.

    Args:
        pred_xyxy: ``(n, 4)`` predicted boxes, pixels.
        pred_class: ``(n,)`` their class ids.
        gt_xyxy: ``(m, 4)`` ground-truth boxes, pixels.
        gt_class: ``(m,)`` their class ids.
        is_class_aware: Pair only boxes of the same class (AP, galleries) or any two
            (the confusion matrix, which must see a fire taken for smoke).
        iou_min: Lowest IoU of a pair.

    Returns:
        ``(prediction index, ground-truth index, IoU)`` of each pair.
    """
    if not len(pred_xyxy) or not len(gt_xyxy):
        return []
    iou = box_iou_batch(pred_xyxy, gt_xyxy)
    if is_class_aware:
        iou = iou * (np.asarray(pred_class)[:, None] == np.asarray(gt_class)[None, :])
    rows, cols = np.nonzero(iou >= iou_min)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_pred: set[int] = set()
    used_gt: set[int] = set()
    pairs = []
    for k in order:
        i, j = int(rows[k]), int(cols[k])
        if i not in used_pred and j not in used_gt:
            used_pred.add(i)
            used_gt.add(j)
            pairs.append((i, j, float(iou[i, j])))
    return pairs


def class_curves(images: Sequence[ImageMatches], class_id: int) -> ClassCurves:
    """Precision-recall and threshold curves of one class, at IoU 0.5, over the images that score it."""
    conf_parts, tp_parts = [], []
    instances = 0
    for m in images:
        if class_id not in m.scored_classes:
            continue
        instances += int(np.sum(m.gt_class == class_id))
        mine = m.pred_class == class_id
        conf_parts.append(np.asarray(m.pred_confidence, np.float64)[mine])
        tp_parts.append(np.asarray(m.tp, bool)[mine, 0])
    confidence = np.concatenate(conf_parts) if conf_parts else np.zeros(0)
    tp = np.concatenate(tp_parts) if tp_parts else np.zeros(0, bool)
    order = np.argsort(-confidence, kind="stable")
    confidence, tp = confidence[order], tp[order]
    ctp = np.cumsum(tp)
    seen = np.arange(1, len(tp) + 1)
    recall = ctp / max(instances, 1)
    precision = ctp / np.maximum(seen, 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    passing = np.array([int(np.sum(confidence >= t)) for t in CONFIDENCE_GRID])
    hits = np.where(passing > 0, ctp[np.maximum(passing, 1) - 1] if len(ctp) else 0, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision_at = np.where(passing > 0, hits / np.maximum(passing, 1), np.nan)
        recall_at = hits / max(instances, 1)
        f1_at = np.nan_to_num(2 * precision_at * recall_at / (precision_at + recall_at))
    return ClassCurves(class_id, instances, recall, envelope, precision_at, recall_at, f1_at)


def confusion_matrix(
    images: Sequence[ImageMatches], class_ids: Sequence[int], confidence: float
) -> np.ndarray:
    """Counts of true class against predicted class at IoU 0.5 and one confidence threshold.

    Row ``i`` is the true class ``class_ids[i]``, column ``j`` the predicted one; the last
    row and column are *background*: a prediction with no box under it counts in the last
    row (a false alarm), a ground-truth box nothing found in the last column (a miss).
    Boxes pair regardless of class, so a fire taken for smoke lands off the diagonal.

    Returns:
        ``(k + 1, k + 1) int64`` counts, ``k = len(class_ids)``.
    """
    index = {c: i for i, c in enumerate(class_ids)}
    k = len(class_ids)
    matrix = np.zeros((k + 1, k + 1), np.int64)
    for m in images:
        keep = (np.asarray(m.pred_confidence) >= confidence) & np.isin(m.pred_class, list(index))
        pred_xyxy, pred_class = m.pred_xyxy[keep], m.pred_class[keep]
        gt_keep = np.isin(m.gt_class, list(index))
        gt_xyxy, gt_class = m.gt_xyxy[gt_keep], m.gt_class[gt_keep]
        pairs = pair_boxes(pred_xyxy, pred_class, gt_xyxy, gt_class, is_class_aware=False)
        for i, j, _ in pairs:
            matrix[index[int(gt_class[j])], index[int(pred_class[i])]] += 1
        paired_pred = {i for i, _, _ in pairs}
        paired_gt = {j for _, j, _ in pairs}
        for j, c in enumerate(gt_class.tolist()):
            if j not in paired_gt:
                matrix[index[int(c)], k] += 1
        for i, c in enumerate(pred_class.tolist()):
            if i not in paired_pred:
                matrix[k, index[int(c)]] += 1
    return matrix


@dataclass(frozen=True, slots=True)
class ErrorCase:
    """One false positive or miss, for a gallery.

    Attributes:
        kind: ``"false_positive"`` or ``"miss"``.
        class_id: The class predicted (false positive) or labelled (miss).
        image: The image file.
        source: Its source set.
        xyxy: The box, pixels.
        confidence: The prediction's score (false positive), or the best score of a
            same-class prediction overlapping the missed box at IoU 0.5 (0 when none).
        overlap_class: For a false positive, the class of the labelled box it overlaps most
            (``None`` when it overlaps none); for a miss, the class predicted over it at
            the threshold, if any other.
        overlap_iou: That overlap's IoU.
        context_xyxy: Other boxes to draw for context: the labels near a false positive,
            the predictions near a miss (pixels).
    """

    kind: str
    class_id: int
    image: str
    source: str
    xyxy: tuple[float, float, float, float]
    confidence: float
    overlap_class: int | None
    overlap_iou: float
    context_xyxy: tuple[tuple[float, float, float, float], ...] = ()


def _box(row: np.ndarray) -> tuple[float, float, float, float]:
    """A box row as a tuple of floats."""
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def _best_overlap(box: np.ndarray, others: np.ndarray, classes: np.ndarray) -> tuple[int | None, float]:
    """Class and IoU of the box among ``others`` that overlaps ``box`` most (``None, 0`` if none)."""
    if not len(others):
        return None, 0.0
    iou = box_iou_batch(box[None], others)[0]
    best = int(np.argmax(iou))
    return (int(classes[best]), float(iou[best])) if iou[best] > 0 else (None, 0.0)


def _image_errors(m: ImageMatches, confidence: float) -> list[ErrorCase]:
    """False positives and misses of one image at a threshold, class-aware at IoU 0.5."""
    conf = np.asarray(m.pred_confidence, np.float64)
    keep = conf >= confidence
    pred_xyxy, pred_class, pred_conf = m.pred_xyxy[keep], m.pred_class[keep], conf[keep]
    pairs = pair_boxes(pred_xyxy, pred_class, m.gt_xyxy, m.gt_class, is_class_aware=True)
    paired_pred = {i for i, _, _ in pairs}
    paired_gt = {j for _, j, _ in pairs}
    gt_boxes = tuple(_box(b) for b in m.gt_xyxy)
    pred_boxes = tuple(_box(b) for b in pred_xyxy)
    cases = []
    for i in range(len(pred_xyxy)):
        if i in paired_pred:
            continue
        near, near_iou = _best_overlap(pred_xyxy[i], m.gt_xyxy, m.gt_class)
        cases.append(
            ErrorCase(
                "false_positive",
                int(pred_class[i]),
                m.image,
                m.source,
                _box(pred_xyxy[i]),
                float(pred_conf[i]),
                near,
                near_iou,
                gt_boxes,
            )
        )
    for j in range(len(m.gt_xyxy)):
        if j in paired_gt:
            continue
        c = int(m.gt_class[j])
        same = m.pred_class == c
        best = 0.0
        if np.any(same):
            iou = box_iou_batch(m.gt_xyxy[j][None], m.pred_xyxy[same])[0]
            scores = conf[same][iou >= IOU_MATCH]
            best = float(scores.max()) if len(scores) else 0.0
        other, other_iou = _best_overlap(m.gt_xyxy[j], pred_xyxy, pred_class)
        cases.append(
            ErrorCase("miss", c, m.image, m.source, _box(m.gt_xyxy[j]), best, other, other_iou, pred_boxes)
        )
    return cases


def find_errors(images: Sequence[ImageMatches], confidence: float) -> dict[tuple[str, int], list[ErrorCase]]:
    """Every false positive and miss of each class at a confidence threshold, worst first.

    Worst first: false positives by decreasing confidence (the surest wrong alarms); misses
    by increasing best same-class score over them (what the model did not see at all
    first), larger boxes first among equals.

    Returns:
        ``(kind, class id)`` to its cases; ``kind`` is ``"false_positive"`` or ``"miss"``.
    """
    found: dict[tuple[str, int], list[ErrorCase]] = {}
    for m in images:
        for case in _image_errors(m, confidence):
            found.setdefault((case.kind, case.class_id), []).append(case)

    def area(case: ErrorCase) -> float:
        x1, y1, x2, y2 = case.xyxy
        return (x2 - x1) * (y2 - y1)

    for key, cases in found.items():
        if key[0] == "false_positive":
            cases.sort(key=lambda c: -c.confidence)
        else:
            cases.sort(key=lambda c: (c.confidence, -area(c)))
    return found
