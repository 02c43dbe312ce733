"""Decode raw YOLO outputs into boxes and suppress overlaps (class-aware NMS via OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from anjian.models.config import DetectorConfig
from anjian.models.preprocess import LetterboxTransform

__all__ = ["decode_outputs", "decode_yolo_output", "nms_per_class"]


def nms_per_class(
    xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float, max_detections: int
) -> np.ndarray:
    """Return indices kept by class-aware non-maximum suppression, best first.

    Args:
        xyxy: ``(n, 4) float32`` boxes.
        scores: ``(n,) float32`` scores.
        class_ids: ``(n,) int`` classes; boxes of different classes never suppress each other.
        iou_threshold: Overlap above which the lower-scored box is dropped.
        max_detections: Keep at most this many.

    Returns:
        ``(k,) int64`` indices into the inputs.
    """
    if len(xyxy) == 0:
        return np.zeros((0,), np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(), scores.tolist(), class_ids.astype(np.int32).tolist(), 0.0, iou_threshold
    )
    keep: np.ndarray = np.asarray(kept, dtype=np.int64).reshape(-1)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return keep[:max_detections]


def decode_yolo_output(
    output: np.ndarray, confidence_threshold: float, iou_threshold: float, max_detections: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one image's ultralytics detect head output.

    Args:
        output: ``(4 + nc, anchors) float32``: ``cx, cy, w, h`` in input pixels then one
            score per class (YOLOv8/11 layout, no objectness).
        confidence_threshold: Minimum class score.
        iou_threshold: NMS overlap threshold.
        max_detections: Maximum boxes kept.

    Returns:
        ``xyxy (k, 4) float32``, ``confidence (k,) float32``, ``class_id (k,) int32`` in
        model-input pixels.
    """
    scores_all = output[4:]
    class_ids = scores_all.argmax(axis=0)
    scores = scores_all[class_ids, np.arange(scores_all.shape[1])]
    candidates = scores >= confidence_threshold
    if not candidates.any():
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32)
    cxcywh = output[:4, candidates].T
    scores = scores[candidates].astype(np.float32)
    class_ids = class_ids[candidates].astype(np.int32)
    xyxy = np.empty_like(cxcywh, dtype=np.float32)
    xyxy[:, :2] = cxcywh[:, :2] - cxcywh[:, 2:] / 2
    xyxy[:, 2:] = cxcywh[:, :2] + cxcywh[:, 2:] / 2
    keep = nms_per_class(xyxy, scores, class_ids, iou_threshold, max_detections)
    return xyxy[keep], scores[keep], class_ids[keep]


def decode_outputs(
    outputs: np.ndarray, transforms: list[LetterboxTransform], config: DetectorConfig
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, LetterboxTransform]]:
    """Decode a batch's raw outputs, ``(b, 4 + nc, anchors)``, with each image's letterbox transform.

    Returns:
        Per image: boxes, scores and classes in model-input pixels (after NMS), and the transform.
    """
    return [
        (
            *decode_yolo_output(
                output.astype(np.float32, copy=False),
                config.confidence_threshold,
                config.iou_threshold,
                config.max_detections,
            ),
            transform,
        )
        for output, transform in zip(outputs, transforms, strict=True)
    ]
