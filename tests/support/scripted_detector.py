"""A detector that returns boxes a test wrote down, keyed by a tag painted into each image's first pixel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from anjian.models.detections import Detections

__all__ = ["Box", "ScriptedDetector", "tagged_image"]

Box = tuple[float, float, float, float, float, int]
"""``x1, y1, x2, y2, confidence, class_id`` in pixels."""


def tagged_image(path: Path, tag: int, size_wh: tuple[int, int] = (200, 100)) -> Path:
    """Write a grey image whose first pixel holds ``tag`` (1-255), so the detector knows which it is."""
    picture = np.full((size_wh[1], size_wh[0], 3), 90, np.uint8)
    picture[0, 0] = tag
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), picture)
    return path


class ScriptedDetector:
    """Satisfies ``models.Detector``: per image, the boxes listed under the image's tag."""

    def __init__(
        self, names: Mapping[int, str], boxes: Mapping[int, Sequence[Box]], version: str = "scripted@1"
    ):
        self.class_names = dict(names)
        self.version = version
        self.class_thresholds: dict[str, float] = {}
        self._boxes = boxes

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """The scripted boxes of each image (none for an unknown tag)."""
        out = []
        for image in images:
            rows = self._boxes.get(int(image[0, 0, 0]), ())
            arr = np.array([r[:5] for r in rows], np.float32).reshape(-1, 5)
            classes = np.array([r[5] for r in rows], np.int32)
            out.append(Detections(arr[:, :4], arr[:, 4], classes, self.class_names))
        return out
