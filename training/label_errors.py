"""Refuse to score a labelled split whose label files lost boxes when they were read.

Reading a set (:mod:`anjian.datasets.yolo`, :mod:`anjian.datasets.coco`) drops what it cannot
use, an unknown class id or a malformed line, and records an ERROR-severity
:class:`~anjian.datasets.labels.Issue`. Scored as they are, the images of those lines count
their objects as background: AP and recall drop, false alarms rise and calibrated thresholds
move, with nothing to say why. ``anjian eval``, ``anjian models compare`` and ``anjian models
calibrate`` therefore refuse such a split (``--allow-label-errors`` scores it anyway, with the
summary as a warning). The counts per kind are those ``anjian dataset validate`` prints
(:meth:`~anjian.datasets.checks.ValidationReport.counts`).
"""

from __future__ import annotations

from pathlib import Path

from anjian.datasets.checks import ValidationReport
from anjian.datasets.errors import DatasetError
from anjian.datasets.labels import DetectionSet, Issue, Severity
from anjian.datasets.yolo import label_path_for

__all__ = ["ALLOW_HINT", "LabelErrorsError", "check_label_errors", "label_error_summary"]

ALLOW_HINT = "--allow-label-errors"
"""The option of the scoring commands that scores a split with label errors anyway."""


class LabelErrorsError(DatasetError):
    """A split to score has label errors (boxes lost when it was read); the message sums them up in one line."""


def _other_splits_files(dataset: DetectionSet, split: str) -> set[Path]:
    """Images, label files and misplaced label files of the images outside ``split``."""
    files: set[Path] = set()
    for item in dataset.images:
        if item.split != split:
            files.update((item.image, label_path_for(item.image), item.image.with_suffix(".txt")))
    return files


def _errors_of_split(dataset: DetectionSet, split: str) -> list[Issue]:
    """The ERROR issues that can touch ``split``: all but those of another split's images."""
    errors = [issue for issue in dataset.issues if issue.severity is Severity.ERROR]
    if not errors:
        return []
    elsewhere = _other_splits_files(dataset, split)
    return [issue for issue in errors if issue.path not in elsewhere]


def label_error_summary(dataset: DetectionSet, split: str) -> str | None:
    """One line summing up the label errors that touch ``split`` (count by kind, the first file), or ``None``.

    Example:
        ``fire/val: 8 label error(s) (unknown_class 6, malformed_line 2), the first in
        .../labels/val/a.txt: class id 9 not in 0..5``
    """
    errors = _errors_of_split(dataset, split)
    if not errors:
        return None
    report = ValidationReport(dataset.name, len(dataset.images), dataset.box_count(), tuple(errors))
    counts = sorted(report.counts().items(), key=lambda item: (-item[1], item[0]))
    kinds = ", ".join(f"{kind} {count}" for (_, kind), count in counts)
    first = errors[0]
    return (
        f"{dataset.name}/{split}: {len(errors)} label error(s) ({kinds}), the first in {first.path}: "
        f"{first.detail}"
    )


def check_label_errors(
    dataset: DetectionSet, split: str, *, is_allowed: bool, data: Path | None = None
) -> str | None:
    """Refuse a split with label errors unless ``is_allowed``; the summary to warn with when allowed.

    Args:
        dataset: The loaded set.
        split: The split about to be scored (``all`` for a set scored whole).
        is_allowed: Score anyway (``--allow-label-errors``): return the summary instead of raising.
        data: The set's file, named in the hint to ``anjian dataset validate``.

    Returns:
        ``None`` when the split has no label errors, else (only when allowed) its one-line summary.

    Raises:
        LabelErrorsError: The split has label errors and they are not allowed.
    """
    summary = label_error_summary(dataset, split)
    if summary is None or is_allowed:
        return summary
    where = f" {data}" if data is not None else ""
    raise LabelErrorsError(
        f"{summary}; their boxes would be scored as background: fix them (`anjian dataset validate{where}` "
        f"lists them all) or score anyway with {ALLOW_HINT}"
    )
