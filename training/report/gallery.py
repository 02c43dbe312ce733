"""JPEG crops of false positives and misses, with their boxes drawn, for the report's galleries."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from anjian.training.report.matching import ErrorCase

__all__ = ["GalleryItem", "write_gallery"]

logger = logging.getLogger(__name__)

_CONTEXT = 0.5  # the crop reaches this share of the box's size beyond each side
_MIN_CROP_PX = 96
_MAX_SIDE_PX = 320
_RED = (40, 40, 220)  # BGR: the false positive
_ORANGE = (0, 150, 255)  # the missed box
_GREEN = (60, 180, 60)  # labels around a false positive
_GREY = (170, 170, 170)  # predictions around a miss


@dataclass(frozen=True, slots=True)
class GalleryItem:
    """One written crop.

    Attributes:
        case: The error it shows.
        file: The JPEG, relative to the report folder.
    """

    case: ErrorCase
    file: str


def _crop_window(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[int, int, int, int]:
    """Pixel window around a box with some context, inside the image."""
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = max(w * (0.5 + _CONTEXT), _MIN_CROP_PX / 2)
    half_h = max(h * (0.5 + _CONTEXT), _MIN_CROP_PX / 2)
    left, top = int(max(cx - half_w, 0)), int(max(cy - half_h, 0))
    right, bottom = int(min(cx + half_w, width)), int(min(cy + half_h, height))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def _draw(
    picture: np.ndarray,
    box: tuple[float, float, float, float],
    offset: tuple[int, int],
    scale: float,
    colour: tuple[int, int, int],
    thickness: int,
) -> None:
    """Draw one box of the original image onto the scaled crop."""
    x1, y1, x2, y2 = ((v - offset[k % 2]) * scale for k, v in enumerate(box))
    cv2.rectangle(picture, (round(x1), round(y1)), (round(x2), round(y2)), colour, thickness, cv2.LINE_AA)


def _render(picture: np.ndarray, case: ErrorCase) -> np.ndarray:
    """The crop around one error, scaled to at most 320 px, its box bold, context boxes thin."""
    height, width = picture.shape[:2]
    left, top, right, bottom = _crop_window(case.xyxy, width, height)
    crop = picture[top:bottom, left:right]
    scale = min(_MAX_SIDE_PX / max(crop.shape[:2]), 3.0)
    crop = cv2.resize(
        crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    context_colour = _GREEN if case.kind == "false_positive" else _GREY
    for other in case.context_xyxy:
        if other != case.xyxy:
            _draw(crop, other, (left, top), scale, context_colour, 1)
    _draw(crop, case.xyxy, (left, top), scale, _RED if case.kind == "false_positive" else _ORANGE, 2)
    return crop


def write_gallery(
    errors: Mapping[tuple[str, int], list[ErrorCase]], out_dir: Path, *, jpeg_quality: int = 85
) -> dict[tuple[str, int], list[GalleryItem]]:
    """Write one JPEG per error into ``out_dir/gallery/``, reading each image once.

    Images that cannot be read any more are skipped with a warning.

    Returns:
        The written crops, in the order of ``errors``.
    """
    folder = out_dir / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    by_image: dict[str, list[tuple[tuple[str, int], int, ErrorCase]]] = {}
    for key, cases in errors.items():
        for rank, case in enumerate(cases):
            by_image.setdefault(case.image, []).append((key, rank, case))
    written: dict[tuple[str, int], dict[int, GalleryItem]] = {key: {} for key in errors}
    for image, wanted in by_image.items():
        picture = cv2.imread(image)
        if picture is None:
            logger.warning("gallery: cannot read %s any more; its %d crop(s) skipped", image, len(wanted))
            continue
        for (kind, class_id), rank, case in wanted:
            name = f"{'fp' if kind == 'false_positive' else 'miss'}_{class_id}_{rank:03d}.jpg"
            cv2.imwrite(str(folder / name), _render(picture, case), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            written[(kind, class_id)][rank] = GalleryItem(case, f"gallery/{name}")
    return {key: [items[r] for r in sorted(items)] for key, items in written.items()}
