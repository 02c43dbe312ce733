"""Where a second-stage detector looks: the upper body of a person box, and boxes mapped in and out of it.

One home for this geometry so the crops a crop model is trained on
(:mod:`anjian.training.cigarette_crops`) are cut exactly as the running detector
(:mod:`anjian.models.second_stage`) cuts them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["boxes_from_crop", "boxes_into_crop", "upper_body_regions"]


def upper_body_regions(
    person_xyxy: np.ndarray,
    frame_wh: tuple[int, int],
    *,
    fraction: float,
    margin: float,
    min_side_px: int = 8,
) -> np.ndarray:
    """The upper-body crop of each person box, in whole frame pixels.

    The crop is the top ``fraction`` of the person box, grown by ``margin`` times the
    person's width on the left and right and by ``margin`` times the upper body's height
    above and below (a hand held in front of the chest sticks out of a tight box), then
    clipped to the frame.

    Args:
        person_xyxy: ``(n, 4)`` person boxes, frame pixels.
        frame_wh: Frame ``(width, height)``.
        fraction: Share of the person box's height, from its top, in ``(0, 1]``.
        margin: Growth on each side, relative to the box, ``>= 0``.
        min_side_px: Crops narrower or lower than this after clipping are widened to it
            (within the frame), so a tiny person still gives an image the model can take.

    Returns:
        ``(n, 4) int32`` crops ``x1, y1, x2, y2`` with ``0 <= x1 < x2 <= width`` and likewise in y.

    Raises:
        ValueError: ``fraction`` or ``margin`` out of range, or boxes not ``(n, 4)``.

    Example:
        >>> upper_body_regions(np.array([[10, 10, 50, 110]], np.float32), (200, 200), fraction=0.5, margin=0.0)
        array([[10, 10, 50, 60]], dtype=int32)
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    boxes = np.asarray(person_xyxy, np.float64).reshape(-1, 4) if len(person_xyxy) else np.zeros((0, 4))
    if np.asarray(person_xyxy).ndim != 2 and len(person_xyxy):
        raise ValueError(f"person_xyxy must have shape (n, 4), got {np.asarray(person_xyxy).shape}")
    width, height = frame_wh
    w = boxes[:, 2] - boxes[:, 0]
    upper_h = (boxes[:, 3] - boxes[:, 1]) * fraction
    x1 = boxes[:, 0] - margin * w
    x2 = boxes[:, 2] + margin * w
    y1 = boxes[:, 1] - margin * upper_h
    y2 = boxes[:, 1] + upper_h + margin * upper_h
    out = np.stack([x1, y1, x2, y2], axis=1)
    out = np.round(out)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    side = min(min_side_px, width, height)
    for lo, hi, limit in ((0, 2, width), (1, 3, height)):
        short = out[:, hi] - out[:, lo] < side
        centre = (out[short, lo] + out[short, hi]) / 2
        start = np.clip(np.round(centre - side / 2), 0, limit - side)
        out[short, lo] = start
        out[short, hi] = start + side
    return out.astype(np.int32)


def boxes_from_crop(xyxy: np.ndarray, crop_xyxy: np.ndarray) -> np.ndarray:
    """Map boxes found in a crop (crop pixels) back to the whole frame: add the crop's origin.

    Args:
        xyxy: ``(n, 4)`` boxes in the crop's pixels.
        crop_xyxy: ``(4,)`` the crop in frame pixels.

    Returns:
        ``(n, 4) float32`` boxes in frame pixels.
    """
    offset = np.array([crop_xyxy[0], crop_xyxy[1], crop_xyxy[0], crop_xyxy[1]], np.float32)
    return (np.asarray(xyxy, np.float32).reshape(-1, 4) + offset).astype(np.float32)


def boxes_into_crop(
    xyxy: np.ndarray, crop_xyxy: np.ndarray, *, min_inside: float
) -> tuple[np.ndarray, np.ndarray]:
    """Move frame boxes into a crop: clip each to it, keep those mostly inside.

    Args:
        xyxy: ``(n, 4)`` boxes in frame pixels.
        crop_xyxy: ``(4,)`` the crop in frame pixels.
        min_inside: Least share of a box's area that must lie inside the crop to keep it.

    Returns:
        The kept boxes in crop pixels ``(k, 4) float32`` and the ``(n,)`` mask of which were kept.
    """
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    cx1, cy1, cx2, cy2 = (float(v) for v in crop_xyxy)
    clipped = np.stack(
        [
            np.clip(boxes[:, 0], cx1, cx2),
            np.clip(boxes[:, 1], cy1, cy2),
            np.clip(boxes[:, 2], cx1, cx2),
            np.clip(boxes[:, 3], cy1, cy2),
        ],
        axis=1,
    )
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    inside = np.maximum(clipped[:, 2] - clipped[:, 0], 0) * np.maximum(clipped[:, 3] - clipped[:, 1], 0)
    keep = (area > 0) & (inside >= min_inside * np.maximum(area, 1e-9))
    moved = clipped[keep] - np.array([cx1, cy1, cx1, cy1])
    return moved.astype(np.float32), keep
