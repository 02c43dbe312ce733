"""Box maths on ``(n, 4)`` pixel ``x1, y1, x2, y2`` arrays: overlap between boxes.

The one place the rules (following an object by overlap), the evaluation (true positives per
IoU threshold) and the training reports (pairing predictions with labels) take an IoU from.
The arithmetic is supervision's (``supervision.detection.utils.iou_and_nms``, tested there);
supervision loads on the first call, so importing this module stays cheap for the CLI and the
site config that import the rules.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_ios_batch", "box_iou", "box_iou_batch"]


def box_iou_batch(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of two sets of boxes.

    Args:
        a_xyxy: ``(n, 4)`` boxes, ``x1, y1, x2, y2`` (any unit, the same in both).
        b_xyxy: ``(m, 4)`` boxes in the same unit.

    Returns:
        ``(n, m) float64``: entry ``[i, j]`` is the IoU of ``a_xyxy[i]`` and ``b_xyxy[j]``, 0 where
        the boxes do not meet or have no area.

    Raises:
        ValueError: When either array is not ``(k, 4)``.

    Example:
        >>> box_iou_batch(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3], [5, 5, 6, 6]])).round(3)
        array([[0.143, 0.   ]])
    """
    from supervision.detection.utils.iou_and_nms import box_iou_batch as _sv_box_iou_batch

    a = _as_boxes(a_xyxy, "a_xyxy")
    b = _as_boxes(b_xyxy, "b_xyxy")
    return _sv_box_iou_batch(a, b).astype(np.float64)


def box_ios_batch(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area: 1 where one box lies wholly inside the other.

    For "is this box on that one" questions IoU answers badly when the sizes differ (a
    "smoking" box on a person's upper body has a low IoU with the whole person).

    Returns:
        ``(n, m) float64``, 0 where the boxes do not meet or either has no area.

    Raises:
        ValueError: When either array is not ``(k, 4)``.

    Example:
        >>> box_ios_batch(np.array([[0, 0, 1, 1]]), np.array([[0, 0, 4, 4], [2, 2, 3, 3]])).round(3)
        array([[1., 0.]])
    """
    from supervision.detection.utils.iou_and_nms import OverlapMetric
    from supervision.detection.utils.iou_and_nms import box_iou_batch as _sv_box_iou_batch

    a = _as_boxes(a_xyxy, "a_xyxy")
    b = _as_boxes(b_xyxy, "b_xyxy")
    return _sv_box_iou_batch(a, b, overlap_metric=OverlapMetric.IOS).astype(np.float64)


def box_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> float:
    """Intersection over union of two ``(4,)`` ``x1, y1, x2, y2`` boxes (0 when they do not meet).

    Example:
        >>> box_iou(np.array([0, 0, 2, 2]), np.array([0, 0, 2, 1]))
        0.5
    """
    from supervision.detection.utils.iou_and_nms import box_iou as _sv_box_iou

    return float(_sv_box_iou(np.asarray(a_xyxy, np.float64), np.asarray(b_xyxy, np.float64)))


def _as_boxes(xyxy: np.ndarray, name: str) -> np.ndarray:
    """``xyxy`` as a ``(k, 4) float64`` array (an empty one as ``(0, 4)``), or a ValueError naming it."""
    boxes = np.asarray(xyxy, np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name}: expected an (n, 4) array of x1, y1, x2, y2 boxes, got shape {boxes.shape}")
    return boxes
