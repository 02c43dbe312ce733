"""Complete a merged set's labels before training: the teacher fills in what a source never labels.

A set merged from sources that label different classes (the cigarette photos label
cigarettes, not the people holding them) teaches a detector that every unlabelled object
is background: trained naively, anjian-n's ``person`` AP50 on the cigarette photos fell
from 0.92 to 0.06. :func:`complete_labels` is what ``anjian train`` does by default: it
reads the set's per-source record of labelled classes (written by ``anjian dataset
merge`` and kept by ``split``), runs the COCO teacher over the sources that lack a class
the teacher knows, and writes a completed copy of the set for training. Classes no
teacher knows stay gaps, and are reported.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from anjian.datasets.labels import DetectionSet, ProgressFn, no_progress
from anjian.datasets.yolo import load_yolo_set, write_yolo_set
from anjian.models.config import DetectorConfig
from anjian.models.loader import load_detector
from anjian.training.pseudo_label import PseudoLabelReport, pseudo_label

__all__ = ["LabelCompletion", "complete_labels", "label_gaps"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LabelCompletion:
    """What :func:`complete_labels` did.

    Attributes:
        data_yaml: The set to train on: the input when it had no gaps the teacher could fill,
            else the completed copy.
        filled: Per source, the classes the teacher filled in.
        remaining_gaps: Per source, the classes still unlabelled there (no teacher knows them):
            the detector will learn those objects as background in that source's images.
        report: The teacher's report (boxes added per source, split and class), when it ran.
    """

    data_yaml: Path
    filled: dict[str, tuple[str, ...]] = field(default_factory=dict)
    remaining_gaps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    report: PseudoLabelReport | None = None


def label_gaps(dataset: DetectionSet) -> dict[str, tuple[str, ...]]:
    """Per source, the set's classes that source does not label (sources without gaps left out)."""
    gaps = {}
    for source, labelled in dataset.labelled_classes.items():
        missing = tuple(c for c in dataset.class_names if c not in labelled)
        if missing:
            gaps[source] = missing
    return gaps


def complete_labels(
    data_yaml: Path,
    out_dir: Path,
    teacher: Path | str,
    *,
    min_confidence: float = 0.5,
    classes: Mapping[str, str] | None = None,
    sources: Collection[str] | None = None,
    progress: ProgressFn = no_progress,
) -> LabelCompletion:
    """Fill a merged set's label gaps with a teacher's confident boxes; write the completed set.

    Run it again on its own output with another teacher to fill what the first does not know
    (anjian-n's smoke in the fire videos after COCO's people): the reports are merged.

    Args:
        data_yaml: The (merged) set's ``data.yaml``.
        out_dir: Where the completed copy goes (images are linked, not copied).
        teacher: The teacher model (the COCO YOLOv8n ONNX, or any model ``load_detector`` takes).
        min_confidence: Teacher boxes scoring below are not added.
        classes: The set's class to the teacher's class it is filled from; ``None``: every gap
            class the teacher has by name.
        sources: Only these sources are filled; ``None``: every source with a gap.
        progress: Wraps the long loops.

    Returns:
        Where to train from, and what was filled in and what could not be.

    Raises:
        DatasetFormatError: The set cannot be read.
        ModelError: The teacher cannot be loaded.
    """
    dataset = load_yolo_set(data_yaml, progress=progress)
    gaps = {
        source: missing
        for source, missing in label_gaps(dataset).items()
        if sources is None or source in sources
    }
    if not gaps:
        return LabelCompletion(data_yaml=Path(data_yaml))
    detector = load_detector(
        teacher, DetectorConfig(path=str(teacher), confidence_threshold=min_confidence, cpu_precision="fp32")
    )
    teacher_names = {name.lower(): name for name in detector.class_names.values()}
    if classes is None:
        classes = {
            c: teacher_names[c.lower()] for m in gaps.values() for c in m if c.lower() in teacher_names
        }
    fillable = {c: t for c, t in sorted(classes.items()) if any(c in m for m in gaps.values())}
    if not fillable:
        return LabelCompletion(data_yaml=Path(data_yaml), remaining_gaps=label_gaps(dataset))
    completed, report = pseudo_label(
        dataset, detector, fillable, min_confidence=min_confidence, sources=sources, progress=progress
    )
    extra = _extra_keys(data_yaml)
    written = write_yolo_set(
        completed,
        out_dir,
        by_source=len(completed.labelled_classes) > 1,
        progress=progress,
        extra={
            **extra,
            "pseudo_labels": _merged_reports(extra.get("pseudo_labels"), report.to_dict()),
            "completed_from": str(Path(data_yaml).resolve()),
        },
    )
    remaining = label_gaps(completed)
    logger.info("teacher filled %s; still unlabelled: %s", report.filled_classes, remaining)
    return LabelCompletion(
        data_yaml=written, filled=dict(report.filled_classes), remaining_gaps=remaining, report=report
    )


def _merged_reports(earlier: dict[str, Any] | None, latest: dict[str, Any]) -> dict[str, Any]:
    """The pseudo-label report of a set completed twice: boxes added by both, classes filled by either."""
    if not earlier:
        return latest
    filled = {k: list(v) for k, v in earlier.get("filled_classes", {}).items()}
    for source, names in latest["filled_classes"].items():
        filled[source] = [*filled.get(source, []), *(n for n in names if n not in filled.get(source, []))]
    seen = dict(earlier.get("images_seen", {}))
    for source, n in latest["images_seen"].items():
        seen[source] = max(seen.get(source, 0), n)
    return {
        "added": [*earlier.get("added", []), *latest["added"]],
        "images_seen": seen,
        "filled_classes": filled,
    }


def _extra_keys(data_yaml: Path) -> dict[str, Any]:
    """The keys of a ``data.yaml`` beyond splits, classes and labelled classes (e.g. ``sources``)."""
    data = yaml.safe_load(Path(data_yaml).read_text()) or {}
    own = {"path", "train", "val", "test", "nc", "names", "labelled_classes"}
    return {k: v for k, v in data.items() if k not in own}
