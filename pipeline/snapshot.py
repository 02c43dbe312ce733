"""Render evidence snapshots: the confirming frame with boxes and zones drawn, as JPEG."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from anjian.pipeline.config import ZoneConfig
from anjian.pipeline.event import EventBox

__all__ = ["render_snapshot"]

_BOX_COLOUR = (0, 0, 255)  # BGR red
_ZONE_COLOURS = {  # BGR, by zone kind
    "post": (255, 200, 0),
    "exit": (0, 200, 0),
    "dust": (0, 200, 255),
    "no_smoking": (200, 0, 200),
    "exclusion": (128, 128, 128),
    "generic": (255, 200, 0),
}


def _text(
    canvas: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int], scale: float
) -> None:
    """Text with a dark outline, readable on any background."""
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def render_snapshot(
    image: np.ndarray,
    boxes: Sequence[EventBox],
    zones: Sequence[ZoneConfig] = (),
    quality: int = 85,
    *,
    highlight_zone: str | None = None,
    caption: str = "",
) -> bytes:
    """Draw ``zones``, ``boxes`` (labelled with class and confidence) and a caption on a copy; encode JPEG.

    Args:
        image: ``(h, w, 3) uint8`` BGR frame; not modified.
        boxes: Boxes normalised to the frame.
        zones: Zone polygons (normalised) to outline, coloured by kind.
        quality: JPEG quality, 1..100.
        highlight_zone: Id of the event's zone, drawn thicker and lightly filled.
        caption: One line written across the top (behaviour, time, message).

    Returns:
        The JPEG bytes.
    """
    canvas = image.copy()
    h, w = canvas.shape[:2]
    thickness = max(1, round(min(w, h) / 300))
    scale = max(0.4, min(w, h) / 900)
    for zone in zones:
        pts = np.array([[x * w, y * h] for x, y in zone.polygon], dtype=np.int32)
        colour = _ZONE_COLOURS.get(zone.kind, _ZONE_COLOURS["generic"])
        if zone.id == highlight_zone:
            overlay = canvas.copy()
            cv2.fillPoly(overlay, [pts], colour)
            cv2.addWeighted(overlay, 0.25, canvas, 0.75, 0, dst=canvas)
        cv2.polylines(canvas, [pts], True, colour, thickness * (2 if zone.id == highlight_zone else 1))
        _text(canvas, zone.name or zone.id, (int(pts[0][0]) + 3, int(pts[0][1]) + 14), colour, scale)
    for box in boxes:
        x1, y1, x2, y2 = (
            round(v)
            for v in (box.xyxy_norm[0] * w, box.xyxy_norm[1] * h, box.xyxy_norm[2] * w, box.xyxy_norm[3] * h)
        )
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _BOX_COLOUR, thickness)
        _text(canvas, f"{box.class_name} {box.confidence:.2f}", (x1, max(12, y1 - 4)), _BOX_COLOUR, scale)
    if caption:
        _text(canvas, caption[:120], (6, max(16, round(22 * scale * 1.5))), (255, 255, 255), scale)
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return encoded.tobytes()
