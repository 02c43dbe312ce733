"""Per-class precision, recall, AP50 and AP50-95 of any detector on a labelled split.

:func:`evaluate_detector` runs a :class:`anjian.models.Detector` (so an ONNX export is measured
exactly as the pipeline runs it) over one split of a :class:`anjian.datasets.DetectionSet`,
maps the data's class names onto the model's through a class map, ignores data classes
that map to nothing and model classes no data class maps to, and computes COCO-style
101-point interpolated average precision in numpy.

Matching follows ultralytics' validator: at each IoU threshold, prediction/ground-truth
pairs of the same class are taken in order of decreasing IoU, each used once. Precision
and recall are reported at the confidence that maximises F1 at IoU 0.5.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from anjian.datasets.boxes import cxcywh_to_xyxy
from anjian.datasets.classmap import ClassMap
from anjian.datasets.labels import DetectionSet, ProgressFn, no_progress
from anjian.datasets.merge import merge_sets
from anjian.models.boxes import box_iou_batch
from anjian.models.detector import Detector
from anjian.pipeline.config import RuleConfig
from anjian.training.thresholds import ScoredPredictions

__all__ = [
    "IOU_THRESHOLDS",
    "ClassResult",
    "EvalReport",
    "ImageMatches",
    "apply_class_map",
    "average_precision",
    "class_table",
    "evaluate_detector",
    "match_predictions",
    "scored_classes",
]

logger = logging.getLogger(__name__)

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
"""IoU thresholds of AP50-95."""

_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def match_predictions(
    pred_xyxy: np.ndarray,
    pred_class: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_class: np.ndarray,
    thresholds: np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """Which predictions of one image are true positives at each IoU threshold.

    Args:
        pred_xyxy: ``(n, 4)`` predicted boxes, pixels.
        pred_class: ``(n,)`` their class ids.
        gt_xyxy: ``(m, 4)`` ground-truth boxes, same pixels.
        gt_class: ``(m,)`` their class ids.
        thresholds: ``(t,)`` IoU thresholds.

    Returns:
        ``(n, t) bool``: prediction ``i`` matched a ground-truth box at threshold ``t``.
    """
    tp = np.zeros((len(pred_xyxy), len(thresholds)), bool)
    if not len(pred_xyxy) or not len(gt_xyxy):
        return tp
    iou = box_iou_batch(pred_xyxy, gt_xyxy) * (pred_class[:, None] == gt_class[None, :])
    for k, threshold in enumerate(thresholds):
        i, j = np.nonzero(iou >= threshold)
        order = np.argsort(-iou[i, j], kind="stable")
        used_pred: set[int] = set()
        used_gt: set[int] = set()
        for pred, gt in zip(i[order].tolist(), j[order].tolist(), strict=True):
            # Greedy by decreasing IoU, each box once: a prediction that is the best candidate of two
            # ground truths takes one, and the other stays free for the next prediction that fits it.
            if pred in used_pred or gt in used_gt:
                continue
            used_pred.add(pred)
            used_gt.add(gt)
            tp[pred, k] = True
    return tp


def average_precision(
    tp: np.ndarray, confidence: np.ndarray, n_gt: int
) -> tuple[np.ndarray, float, float, float]:
    """COCO 101-point AP per threshold, and precision/recall at the best-F1 confidence.

    Args:
        tp: ``(n, t) bool`` true-positive flags of every prediction of one class.
        confidence: ``(n,)`` their scores.
        n_gt: Ground-truth boxes of the class.

    Returns:
        ``(t,)`` AP per IoU threshold, then precision, recall and the confidence at the
        best F1 of the first threshold. All zero without predictions; NaN without ground truth.
    """
    t = tp.shape[1]
    if n_gt == 0:
        return np.full(t, math.nan), math.nan, math.nan, math.nan
    if not len(tp):
        return np.zeros(t), 0.0, 0.0, 0.0
    order = np.argsort(-confidence, kind="stable")
    tp, confidence = tp[order], confidence[order]
    ctp = np.cumsum(tp, axis=0)
    cfp = np.cumsum(~tp, axis=0)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    ap = np.zeros(t)
    for k in range(t):
        envelope = np.maximum.accumulate(precision[::-1, k])[::-1]
        index = np.searchsorted(recall[:, k], _RECALL_POINTS, side="left")
        sampled = np.where(index < len(envelope), envelope[np.minimum(index, len(envelope) - 1)], 0.0)
        ap[k] = sampled.mean()
    f1 = 2 * precision[:, 0] * recall[:, 0] / np.maximum(precision[:, 0] + recall[:, 0], 1e-12)
    best = int(np.argmax(f1))
    return ap, float(precision[best, 0]), float(recall[best, 0]), float(confidence[best])


@dataclass(frozen=True, slots=True)
class ClassResult:
    """Scores of one model class.

    Attributes:
        name: The model's class name.
        data_classes: Data class names mapped onto it.
        images: Images holding at least one of its ground-truth boxes.
        instances: Its ground-truth boxes.
        precision: At the best-F1 confidence, IoU 0.5 (NaN without ground truth).
        recall: Same point.
        ap50: AP at IoU 0.5.
        ap50_95: AP averaged over IoU 0.5:0.95.
        confidence: The best-F1 confidence.
        images_scored: Images the class was scored on: those whose source labels it. A
            prediction of the class on any other image is neither right nor wrong, and ignored.
        sources: The sources those images come from.
        false_alarms: Predictions at or above ``alarm_confidence`` that match no ground truth at
            IoU 0.5: what the class would raise where nothing is. The one figure that speaks for a
            class with no ground truth in the split (its P, R and AP are undefined).
        alarm_confidence: The score a detection of the class needs in the pipeline: the model's
            calibrated threshold, else the rules' default.
        predictions: Every scored prediction of the class (score, true positive at IoU
            0.5) and its ground-truth count: the PR curve ``anjian.training.thresholds``
            calibrates the operating threshold from. Not part of ``to_dict``.
    """

    name: str
    data_classes: tuple[str, ...]
    images: int
    instances: int
    precision: float
    recall: float
    ap50: float
    ap50_95: float
    confidence: float
    images_scored: int = 0
    sources: tuple[str, ...] = ()
    false_alarms: int = 0
    alarm_confidence: float = math.nan
    predictions: ScoredPredictions | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (NaN as ``None``)."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 4)

        return {
            "name": self.name,
            "data_classes": list(self.data_classes),
            "images": self.images,
            "instances": self.instances,
            "precision": clean(self.precision),
            "recall": clean(self.recall),
            "ap50": clean(self.ap50),
            "ap50_95": clean(self.ap50_95),
            "confidence": clean(self.confidence),
            "images_scored": self.images_scored,
            "sources": list(self.sources),
            "false_alarms": self.false_alarms,
            "alarm_confidence": clean(self.alarm_confidence),
        }


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Result of one evaluation.

    Attributes:
        model: The detector's version string.
        data: Name of the set (and split) evaluated.
        images: Images evaluated.
        classes: One row per evaluated model class.
        ignored_data_classes: Data classes that map onto no model class.
        ignored_model_classes: Model classes no data class maps onto (their boxes are not scored).
        seconds: Wall time.
        unreadable_images: Images of the split that could not be read: their ground truth counts
            as missed (the pipeline would find nothing on them either), so no box leaves the figures.
    """

    model: str
    data: str
    images: int
    classes: tuple[ClassResult, ...]
    ignored_data_classes: tuple[str, ...] = ()
    ignored_model_classes: tuple[str, ...] = ()
    seconds: float = 0.0
    unreadable_images: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def map50(self) -> float:
        """Mean AP50 over classes with ground truth (NaN when none)."""
        values = [c.ap50 for c in self.classes if c.instances]
        return float(np.mean(values)) if values else math.nan

    @property
    def map50_95(self) -> float:
        """Mean AP50-95 over classes with ground truth (NaN when none)."""
        values = [c.ap50_95 for c in self.classes if c.instances]
        return float(np.mean(values)) if values else math.nan

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "data": self.data,
            "images": self.images,
            "map50": None if math.isnan(self.map50) else round(self.map50, 4),
            "map50_95": None if math.isnan(self.map50_95) else round(self.map50_95, 4),
            "classes": [c.to_dict() for c in self.classes],
            "ignored_data_classes": list(self.ignored_data_classes),
            "ignored_model_classes": list(self.ignored_model_classes),
            "seconds": round(self.seconds, 1),
            "unreadable_images": list(self.unreadable_images),
            **self.extra,
        }


@dataclass(frozen=True, slots=True)
class ImageMatches:
    """What was scored on one image, for reports that draw curves, confusion and galleries.

    Everything is after class mapping and per-source scoping: only the classes scored on
    this image appear, as model class ids.

    Attributes:
        image: The image file.
        source: The source set it comes from.
        size_wh: Its ``(width, height)``, pixels.
        scored_classes: Model class ids scored on it.
        gt_xyxy: ``(m, 4) float`` ground-truth boxes, pixels.
        gt_class: ``(m,) int64`` their model class ids.
        pred_xyxy: ``(n, 4) float`` predicted boxes of scored classes, pixels.
        pred_class: ``(n,) int64`` their class ids.
        pred_confidence: ``(n,) float`` their scores.
        tp: ``(n, t) bool`` whether each prediction matched at each of :data:`IOU_THRESHOLDS`.
    """

    image: str
    source: str
    size_wh: tuple[int, int]
    scored_classes: tuple[int, ...]
    gt_xyxy: np.ndarray
    gt_class: np.ndarray
    pred_xyxy: np.ndarray
    pred_class: np.ndarray
    pred_confidence: np.ndarray
    tp: np.ndarray


def class_table(
    data_classes: Sequence[str], model_classes: Mapping[int, str], class_map: ClassMap | None, set_name: str
) -> dict[int, int]:
    """Data class id to model class id, for the data classes that map onto a model class.

    Without a class map, a data class maps onto the model class of the same name
    (ignoring case). With one, the map's target name must be a model class.
    """
    by_name = {name.lower(): i for i, name in model_classes.items()}
    table: dict[int, int] = {}
    for data_id, name in enumerate(data_classes):
        target = class_map.target_of(set_name, name) if class_map else name
        if target is not None and target.lower() in by_name:
            table[data_id] = by_name[target.lower()]
    return table


def apply_class_map(dataset: DetectionSet, class_map: ClassMap) -> DetectionSet:
    """The set as the class map's training merge would make it: remapped, overlaps resolved.

    Evaluating through a class map must see the same ground truth as training on the
    merged set: ``fall_hospital`` labels each person twice (``patient`` and ``stand`` on one
    box), and only the map's overlap rule makes that one ``person``.
    """
    merged, _ = merge_sets([dataset], class_map, name=dataset.name)
    return merged


def scored_classes(dataset: DetectionSet, table: Mapping[int, int]) -> dict[str, tuple[int, ...]]:
    """Per source, the model class ids scored on its images: those the source labels.

    A source that never labels a class (the fire set and ``person``) says nothing about
    it: the people found in its pictures are neither hits nor false alarms.
    """
    mapped = {dataset.class_names[d]: m for d, m in table.items()}
    sources = {item.source for item in dataset.images}
    out: dict[str, tuple[int, ...]] = {}
    for source in sorted(sources):
        labelled = dataset.labelled_classes.get(source, dataset.class_names)
        out[source] = tuple(sorted({m for name, m in mapped.items() if name in labelled}))
    return out


def evaluate_detector(
    detector: Detector,
    dataset: DetectionSet,
    *,
    split: str = "val",
    class_map: ClassMap | None = None,
    batch_size: int = 8,
    progress: ProgressFn = no_progress,
    on_image: Callable[[ImageMatches], None] | None = None,
    alarm_thresholds: Mapping[str, float] | None = None,
) -> EvalReport:
    """Run a detector over one split and score it per class.

    The detector should keep low-confidence boxes (e.g. ``confidence_threshold=0.001``)
    so the precision-recall curve reaches high recall. With a class map, the ground truth
    is first merged as training merges it (:func:`apply_class_map`: overlap rule included),
    so a raw set and the merged set give the same figures for the same images. On a set
    merged from several sources, each class is scored only on the images of sources that
    label it (:func:`scored_classes`).

    Args:
        detector: The model under test.
        dataset: The labelled set.
        split: Split to evaluate.
        class_map: Maps the data's class names onto the model's; by name when ``None``.
        batch_size: Images per ``detect`` call.
        progress: Wraps the per-batch loop.
        on_image: Called with each image's :class:`ImageMatches` (for the HTML report).
        alarm_thresholds: Score per model class name at which a detection raises in the
            pipeline, for the false-alarm count; default the detector's calibrated thresholds.

    Returns:
        The per-class report.

    Raises:
        ValueError: The split is empty or no data class maps onto a model class.
    """
    started = time.perf_counter()
    thresholds = detector.class_thresholds if alarm_thresholds is None else alarm_thresholds
    items = dataset.in_split(split)
    if not items:
        raise ValueError(f"{dataset.name} has no images in split {split!r} (splits: {dataset.splits})")
    model_names = detector.class_names
    raw_classes = dataset.class_names
    dropped_by_map: tuple[str, ...] = ()
    origins: dict[str, tuple[str, ...]] = {name: (name,) for name in raw_classes}
    if class_map is not None:
        targets = {c: class_map.target_of(dataset.name, c) for c in raw_classes}
        dropped_by_map = tuple(c for c, t in targets.items() if t is None)
        origins = {t: tuple(c for c in raw_classes if targets[c] == t) for t in class_map.classes}
        dataset = apply_class_map(dataset, class_map)
        items = dataset.in_split(split)
    table = class_table(dataset.class_names, model_names, None, dataset.name)
    if not table:
        raise ValueError(
            f"no class of {dataset.name} {list(raw_classes)} maps onto the model's {list(model_names.values())}"
        )
    evaluated = sorted(set(table.values()))
    scope = scored_classes(dataset, table)
    scored_images = dict.fromkeys(evaluated, 0)
    scored_sources: dict[int, set[str]] = {c: set() for c in evaluated}
    n_gt = dict.fromkeys(evaluated, 0)
    images_with = dict.fromkeys(evaluated, 0)
    tps: list[np.ndarray] = []
    confs: list[np.ndarray] = []
    classes: list[np.ndarray] = []
    unreadable: list[str] = []
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    for batch in progress(batches, f"eval {dataset.name}/{split}", len(batches)):
        pictures = [cv2.imread(str(item.image)) for item in batch]
        readable = [(item, p) for item, p in zip(batch, pictures, strict=True) if p is not None]
        for item, picture in zip(batch, pictures, strict=True):
            if picture is None:
                unreadable.append(str(item.image))
        results = detector.detect([p for _, p in readable]) if readable else []
        detections = {id(item): dets for (item, _), dets in zip(readable, results, strict=True)}
        for item, picture in zip(batch, pictures, strict=True):
            scored = scope.get(item.source, tuple(evaluated))
            for c in scored:
                scored_images[c] += 1
                scored_sources[c].add(item.source)
            gt = item.boxes[np.array([table.get(int(c), -1) in scored for c in item.class_ids], bool)]
            gt_class = np.array([table[int(c)] for c in gt[:, 0]], np.int64)
            for c in set(gt_class.tolist()):
                images_with[c] += 1
            for c in gt_class.tolist():
                n_gt[c] += 1
            if picture is None:
                continue  # its ground truth stays in n_gt, missed: nothing was found on it
            h, w = picture.shape[:2]
            gt_xyxy = cxcywh_to_xyxy(gt[:, 1:5], (w, h)).astype(np.float64)
            dets = detections[id(item)]
            keep = np.isin(dets.class_id, scored)
            pred_class = dets.class_id[keep].astype(np.int64)
            tps.append(match_predictions(dets.xyxy[keep], pred_class, gt_xyxy, gt_class))
            confs.append(dets.confidence[keep])
            classes.append(pred_class)
            if on_image is not None:
                on_image(
                    ImageMatches(
                        str(item.image),
                        item.source,
                        (w, h),
                        tuple(int(c) for c in scored),
                        gt_xyxy,
                        gt_class,
                        dets.xyxy[keep],
                        pred_class,
                        dets.confidence[keep],
                        tps[-1],
                    )
                )
    if unreadable:
        logger.warning(
            "%d unreadable image(s) in %s/%s: their ground truth counts as missed (first: %s)",
            len(unreadable),
            dataset.name,
            split,
            unreadable[0],
        )
    tp = np.concatenate(tps) if tps else np.zeros((0, len(IOU_THRESHOLDS)), bool)
    conf = np.concatenate(confs) if confs else np.zeros(0)
    cls = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    rows = []
    unscored = {c for c in evaluated if not scored_images[c]}  # no source of these images labels it
    for c in evaluated:
        if c in unscored:
            continue
        mine = cls == c
        ap, p, r, best_conf = average_precision(tp[mine], conf[mine], n_gt[c])
        alarm_confidence = thresholds.get(model_names[c], RuleConfig.default_min_confidence)
        false_alarms = int(np.count_nonzero((conf[mine] >= alarm_confidence) & ~tp[mine][:, 0]))
        rows.append(
            ClassResult(
                name=model_names[c],
                data_classes=tuple(
                    o for d, m in table.items() if m == c for o in origins.get(dataset.class_names[d], ())
                ),
                images=images_with[c],
                instances=n_gt[c],
                precision=p,
                recall=r,
                ap50=float(ap[0]),
                ap50_95=float(np.mean(ap)),
                confidence=best_conf,
                images_scored=scored_images[c],
                sources=tuple(sorted(scored_sources[c])),
                false_alarms=false_alarms,
                alarm_confidence=alarm_confidence,
                predictions=ScoredPredictions(conf[mine], tp[mine][:, 0], n_gt[c]),
            )
        )
    ignored = dropped_by_map + tuple(n for i, n in enumerate(dataset.class_names) if i not in table)
    return EvalReport(
        model=detector.version,
        data=f"{dataset.name}/{split}",
        images=len(items),
        classes=tuple(rows),
        ignored_data_classes=tuple(dict.fromkeys(ignored)),
        ignored_model_classes=tuple(
            n for i, n in sorted(model_names.items()) if i not in evaluated or i in unscored
        ),
        seconds=time.perf_counter() - started,
        unreadable_images=tuple(unreadable),
    )
