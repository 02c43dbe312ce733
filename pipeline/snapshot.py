"""Render evidence snapshots: the confirming frame with boxes and zones drawn, as JPEG.

Labels and the caption are drawn on solid dark boxes (legible on any background, no
outline that OpenCV 5 draws wider than the fill) with Noto Sans CJK when the
``noto-cjk-sans-otc`` package is installed (a dependency of anjian: Chinese names and
captions render offline), else OpenCV's Hershey font, which has ASCII only. The caption
is a strip across the top; a zone label that would fall under it moves below it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import cv2
import numpy as np

from anjian.pipeline.config import ZoneConfig
from anjian.pipeline.event import EventBox

__all__ = ["render_snapshot"]

logger = logging.getLogger(__name__)

_BOX_COLOUR = (0, 0, 255)  # BGR red
_ZONE_COLOURS = {  # BGR, by zone kind
    "post": (255, 200, 0),
    "exit": (0, 200, 0),
    "dust": (0, 200, 255),
    "no_smoking": (200, 0, 200),
    "exclusion": (128, 128, 128),
    "generic": (255, 200, 0),
}
_LABEL_BACKGROUND = (24, 24, 24)
_PAD = 3
_font_lock = threading.Lock()  # one FontFace for the process (~35 MB each): text is drawn under this lock
_font_face: list[cv2.FontFace | None] = []  # loaded on first use: [face], or [None] for Hershey


def _font() -> cv2.FontFace | None:
    """Noto Sans CJK, loaded once for the process, or ``None`` (Hershey) when the font package is missing.

    One face, not one per thread: a wall of live frames drawn from the web server's thread
    pool loaded a 35 MB face in each thread (24 cameras: 83 MB to 928 MB). Use it under
    ``_font_lock``.
    """
    with _font_lock:
        if not _font_face:
            _font_face.append(_load_font())
        return _font_face[0]


def _load_font() -> cv2.FontFace | None:
    try:
        from noto_cjk_sans_otc import FONT_PATH
    except ImportError:
        logger.warning("noto-cjk-sans-otc is not installed: evidence text falls back to ASCII")
        return None
    if not hasattr(cv2, "FontFace"):  # OpenCV 5 draws TrueType; 4.x has Hershey only
        logger.warning("OpenCV %s draws no TrueType text: evidence text falls back to ASCII", cv2.__version__)
        return None
    return cv2.FontFace(str(FONT_PATH))


def _label(
    canvas: np.ndarray,
    text: str,
    top_left: tuple[int, int],
    colour: tuple[int, int, int],
    size_px: int,
    *,
    min_width: int = 0,
) -> tuple[int, int, int, int]:
    """Draw ``text`` on a dark box whose top-left corner is ``top_left`` (kept inside the image).

    Returns:
        The box drawn, ``(x1, y1, x2, y2)`` in pixels.
    """
    h, w = canvas.shape[:2]
    face = _font()
    if face is not None:
        with _font_lock:
            _, _, text_w, text_h = cv2.getTextSize((w, h), text, (0, size_px), face, size_px)
    else:
        scale = size_px / 30
        (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        text_h += baseline
    box_w, box_h = max(min_width, text_w + 2 * _PAD), text_h + 2 * _PAD
    x1 = min(max(0, top_left[0]), max(0, w - box_w))
    y1 = min(max(0, top_left[1]), max(0, h - box_h))
    cv2.rectangle(canvas, (x1, y1), (x1 + box_w, y1 + box_h), _LABEL_BACKGROUND, cv2.FILLED)
    if face is not None:
        with _font_lock:
            cv2.putText(canvas, text, (x1 + _PAD, y1 + _PAD + round(size_px * 0.88)), colour, face, size_px)
    else:
        cv2.putText(
            canvas,
            text,
            (x1 + _PAD, y1 + box_h - _PAD - baseline),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            colour,
            1,
            cv2.LINE_AA,
        )
    return x1, y1, x1 + box_w, y1 + box_h


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
    size_px = max(12, round(min(w, h) / 28))
    caption_bottom = 0
    if caption:
        caption_bottom = _label(canvas, caption[:120], (0, 0), (255, 255, 255), size_px, min_width=w)[3]
    for zone in zones:
        pts = np.array([[x * w, y * h] for x, y in zone.polygon], dtype=np.int32)
        colour = _ZONE_COLOURS.get(zone.kind, _ZONE_COLOURS["generic"])
        if zone.id == highlight_zone:
            overlay = canvas.copy()
            cv2.fillPoly(overlay, [pts], colour)
            cv2.addWeighted(overlay, 0.25, canvas, 0.75, 0, dst=canvas)
        cv2.polylines(canvas, [pts], True, colour, thickness * (2 if zone.id == highlight_zone else 1))
        top = pts[np.argmin(pts[:, 1])]  # the zone's highest corner, or below the caption
        _label(
            canvas, zone.name or zone.id, (int(top[0]), max(int(top[1]), caption_bottom + 1)), colour, size_px
        )
    for box in boxes:
        x1, y1, x2, y2 = (
            round(v)
            for v in (box.xyxy_norm[0] * w, box.xyxy_norm[1] * h, box.xyxy_norm[2] * w, box.xyxy_norm[3] * h)
        )
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _BOX_COLOUR, thickness)
        label_h = size_px + 2 * _PAD + size_px // 3
        _label(
            canvas,
            f"{box.class_name} {box.confidence:.2f}",
            (x1, max(caption_bottom + 1, y1 - label_h)),
            (255, 255, 255),
            size_px,
        )
    if caption:  # again on top: a zone's fill must not dim it
        _label(canvas, caption[:120], (0, 0), (255, 255, 255), size_px, min_width=w)
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return encoded.tobytes()
