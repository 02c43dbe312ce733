"""Check a detection set's files: unreadable images, duplicate images, groups across splits.

Reading a set (:mod:`anjian.datasets.yolo`, :mod:`anjian.datasets.coco`) already reports bad label lines,
unknown classes, boxes out of range, empty label files and labels without images;
:func:`validate_set` adds the checks that need the image files themselves and a view of
the whole set, and sums everything up in a :class:`ValidationReport`.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2

from anjian.datasets.labels import DetectionSet, Issue, IssueKind, ProgressFn, Severity, no_progress

__all__ = ["ValidationReport", "validate_set"]


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Everything found wrong with a set.

    Attributes:
        set_name: The set checked.
        images: Images in the set.
        boxes: Boxes kept after reading.
        issues: Every issue, reading and checking.
    """

    set_name: str
    images: int
    boxes: int
    issues: tuple[Issue, ...]

    @property
    def has_errors(self) -> bool:
        """Whether any issue lost data."""
        return any(i.severity is Severity.ERROR for i in self.issues)

    def counts(self) -> dict[tuple[str, str], int]:
        """Issue count per ``(severity, kind)``."""
        return dict(Counter((i.severity.value, i.kind.value) for i in self.issues))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "set": self.set_name,
            "images": self.images,
            "boxes": self.boxes,
            "has_errors": self.has_errors,
            "counts": [{"severity": s, "kind": k, "count": n} for (s, k), n in sorted(self.counts().items())],
            "issues": [i.to_dict() for i in self.issues],
        }


def _image_problem(path: Path) -> str | None:
    """Why an image cannot be used, or ``None``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot stat: {exc}"
    if size == 0:
        return "empty file"
    picture = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    return "cannot be decoded" if picture is None else None


def validate_set(
    dataset: DetectionSet, *, is_decoding_images: bool = True, progress: ProgressFn = no_progress
) -> ValidationReport:
    """Check a set that was read, and report every problem.

    Args:
        dataset: The set (its reading issues are included in the report).
        is_decoding_images: Decode every image (slower) rather than only checking it is not empty.
        progress: Wraps the per-image loop.

    Returns:
        The report; nothing is raised for bad data.
    """
    issues = list(dataset.issues)
    by_digest: dict[str, list[Path]] = defaultdict(list)
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for item in progress(dataset.images, f"check {dataset.name}", len(dataset.images)):
        splits_of_group[f"{item.source}/{item.group}"].add(item.split)
        problem = _image_problem(item.image) if is_decoding_images else None
        if not is_decoding_images and (not item.image.is_file() or item.image.stat().st_size == 0):
            problem = "missing or empty file"
        if problem:
            issues.append(Issue(IssueKind.UNREADABLE_IMAGE, Severity.ERROR, item.image, problem))
            continue
        by_digest[hashlib.sha256(item.image.read_bytes()).hexdigest()].append(item.image)
    for paths in by_digest.values():
        for dup in paths[1:]:
            issues.append(
                Issue(IssueKind.DUPLICATE_IMAGE, Severity.WARNING, dup, f"same bytes as {paths[0]}")
            )
    for group, splits in sorted(splits_of_group.items()):
        if len(splits) > 1:
            issues.append(
                Issue(
                    IssueKind.GROUP_ACROSS_SPLITS,
                    Severity.WARNING,
                    Path(group),
                    f"augmented copies in splits {sorted(splits)}: val would measure memory",
                )
            )
    return ValidationReport(
        set_name=dataset.name, images=len(dataset.images), boxes=dataset.box_count(), issues=tuple(issues)
    )
