"""Pre-labels from a model, for the images an analyst sends to a labelling tool.

Correcting a model's boxes is quicker than drawing every box; the model's confident boxes
become the tool's predictions (see :mod:`anjian.datasets.labelling`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2

from anjian.datasets.labelling import LabelBox
from anjian.datasets.labels import ProgressFn, no_progress
from anjian.models.detector import Detector

__all__ = ["predict_label_boxes"]

logger = logging.getLogger(__name__)


def predict_label_boxes(
    detector: Detector, images: Sequence[Path], *, batch_size: int = 8, progress: ProgressFn = no_progress
) -> dict[Path, tuple[LabelBox, ...]]:
    """The detector's boxes on each image, as pre-labels (its own confidence threshold applies).

    Args:
        detector: The model, configured with the confidence its boxes must reach.
        images: Image files.
        batch_size: Images per ``detect`` call.
        progress: Wraps the per-batch loop.

    Returns:
        Image file to its boxes (unreadable images are left out, with a warning).
    """
    names = detector.class_names
    out: dict[Path, tuple[LabelBox, ...]] = {}
    batches = [list(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    for batch in progress(batches, "pre-label", len(batches)):
        pictures = [(path, cv2.imread(str(path))) for path in batch]
        readable = [(path, p) for path, p in pictures if p is not None]
        for path, picture in pictures:
            if picture is None:
                logger.warning("pre-label: cannot read %s", path)
        if not readable:
            continue
        for (path, _), dets in zip(readable, detector.detect([p for _, p in readable]), strict=True):
            out[path] = tuple(
                LabelBox(names[int(c)], (float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(s))
                for b, s, c in zip(dets.xyxy, dets.confidence, dets.class_id, strict=True)
            )
    return out
