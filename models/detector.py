"""The interface every detector backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from anjian.models.detections import Detections

__all__ = ["Detector"]


@runtime_checkable
class Detector(Protocol):
    """Something that finds objects in BGR images (ONNX Runtime, ultralytics, ...)."""

    @property
    def class_names(self) -> dict[int, str]:
        """Class id to name."""
        ...

    @property
    def version(self) -> str:
        """Version string recorded in events."""
        ...

    @property
    def class_thresholds(self) -> dict[str, float]:
        """Calibrated operating score per class name (empty when the model carries none).

        Rules whose site config leaves ``min_confidence`` unset use these.
        """
        ...

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Return one ``Detections`` per ``(h, w, 3) uint8`` BGR image, in its pixels."""
        ...
