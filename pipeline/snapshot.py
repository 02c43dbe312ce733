"""Render evidence snapshots: the confirming frame with boxes and zones drawn, as JPEG."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.config import ZoneConfig
from pipeline.event import EventBox

__all__ = ["render_snapshot"]

_BOX_COLOUR = (0, 0, 255)  # BGR red
_ZONE_COLOUR = (255, 200, 0)


def render_snapshot(
    image: np.ndarray, boxes: Sequence[EventBox], zones: Sequence[ZoneConfig] = (), quality: int = 85
) -> bytes:
    """Draw ``boxes`` (labelled with class and confidence) and ``zones`` on a copy and encode JPEG.

    Args:
        image: ``(h, w, 3) uint8`` BGR frame; not modified.
        boxes: Boxes normalised to the frame.
        zones: Zone polygons (normalised) to outline.
        quality: JPEG quality, 1..100.

    Returns:
        The JPEG bytes.
    """
    canvas = image.copy()
    h, w = canvas.shape[:2]
    thickness = max(1, round(min(w, h) / 300))
    for zone in zones:
        pts = np.array([[x * w, y * h] for x, y in zone.polygon], dtype=np.int32)
        cv2.polylines(canvas, [pts], isClosed=True, color=_ZONE_COLOUR, thickness=thickness)
        cv2.putText(canvas, zone.name or zone.id, tuple(pts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _ZONE_COLOUR, 1)
    for box in boxes:
        x1, y1, x2, y2 = (round(v) for v in (box.xyxy_norm[0] * w, box.xyxy_norm[1] * h,
                                             box.xyxy_norm[2] * w, box.xyxy_norm[3] * h))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _BOX_COLOUR, thickness)
        label = f"{box.class_name} {box.confidence:.2f}"
        cv2.putText(canvas, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _BOX_COLOUR, 1)
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return encoded.tobytes()
