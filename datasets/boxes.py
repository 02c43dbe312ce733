"""Clean and compare normalised ``class, cx, cy, w, h`` boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from anjian.datasets.labels import Issue, IssueKind, Severity

__all__ = ["clean_boxes", "cxcywh_to_xyxy", "iou_cxcywh"]

_TOLERANCE = 1e-3  # rounding in exports: boxes this far outside [0, 1] are clipped without a word


def iou_cxcywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes given as ``(n, 4)`` and ``(m, 4)`` ``cx, cy, w, h`` arrays.

    The arithmetic is supervision's ``box_iou_batch`` (loaded on the first call); datasets
    imports nothing of anjian, so it cannot share ``anjian.models.boxes``.

    Returns:
        ``(n, m) float32`` IoU matrix.
    """
    from supervision.detection.utils.iou_and_nms import box_iou_batch

    return box_iou_batch(cxcywh_to_xyxy(a), cxcywh_to_xyxy(b))


def cxcywh_to_xyxy(cxcywh: np.ndarray, wh: tuple[int, int] = (1, 1)) -> np.ndarray:
    """``(n, 4)`` ``cx, cy, w, h`` boxes as ``(n, 4) x1, y1, x2, y2``, scaled by ``wh``.

    Label files hold boxes normalised by the image's size; pass the image's ``(width,
    height)`` to get pixels, or leave ``wh`` at ``(1, 1)`` to stay normalised. The one
    conversion every label reader and crop writer uses.
    """
    boxes = np.asarray(cxcywh).reshape(-1, 4)
    centre, size = boxes[:, :2], boxes[:, 2:]
    corners = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    if wh == (1, 1):
        return corners
    scaled: np.ndarray = corners * np.array([wh[0], wh[1], wh[0], wh[1]], corners.dtype)
    return scaled


def clean_boxes(raw: ArrayLike, class_count: int, path: Path) -> tuple[np.ndarray, list[Issue]]:
    """Drop or repair invalid boxes of one image and say what was done.

    Unknown class ids and boxes without area are dropped (errors); boxes reaching out of
    the image are clipped to it (warnings, silent within rounding); exact duplicates are
    dropped (warnings).

    Args:
        raw: ``(n, 5)`` rows ``class_id, cx, cy, w, h``, normalised.
        class_count: Number of classes the set names; ids must be in ``[0, class_count)``.
        path: Label file (or annotation file) the rows came from, for the issues.

    Returns:
        The clean ``(k, 5) float32`` boxes and the issues found.
    """
    issues: list[Issue] = []
    with np.errstate(over="ignore"):  # a value past float32 becomes infinite, and its box is dropped below
        boxes = np.asarray(raw, np.float32).reshape(-1, 5)
    if not len(boxes):
        return boxes, issues
    cls = boxes[:, 0]
    bad_class = (cls < 0) | (cls >= class_count) | (cls != np.round(cls))
    for row in boxes[bad_class]:
        issues.append(
            Issue(
                IssueKind.UNKNOWN_CLASS,
                Severity.ERROR,
                path,
                f"class id {row[0]:g} not in 0..{class_count - 1}",
            )
        )
    boxes = boxes[~bad_class]
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and infinite rows are dropped by name below
        x1, y1 = boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 2] - boxes[:, 4] / 2
        x2, y2 = boxes[:, 1] + boxes[:, 3] / 2, boxes[:, 2] + boxes[:, 4] / 2
    outside = (x1 < -_TOLERANCE) | (y1 < -_TOLERANCE) | (x2 > 1 + _TOLERANCE) | (y2 > 1 + _TOLERANCE)
    x1, y1, x2, y2 = (np.clip(v, 0.0, 1.0) for v in (x1, y1, x2, y2))
    no_area = ((x2 - x1) <= 0) | ((y2 - y1) <= 0) | ~np.isfinite(boxes).all(axis=1)
    for row, gone in zip(boxes[outside | no_area], no_area[outside | no_area], strict=True):
        what = "has no area inside the image; dropped" if gone else "reaches outside the image; clipped"
        severity = Severity.ERROR if gone else Severity.WARNING
        issues.append(
            Issue(IssueKind.BOX_OUT_OF_RANGE, severity, path, f"box {row[1:].round(4).tolist()} {what}")
        )
    fixed = np.stack([boxes[:, 0], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)[~no_area]
    _, first = np.unique(np.round(fixed, 5), axis=0, return_index=True)
    if len(first) < len(fixed):
        issues.append(
            Issue(
                IssueKind.DUPLICATE_BOX,
                Severity.WARNING,
                path,
                f"{len(fixed) - len(first)} duplicate box(es) dropped",
            )
        )
        fixed = fixed[np.sort(first)]
    return fixed.astype(np.float32), issues
