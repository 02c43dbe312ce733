"""The interface every detector backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from models.detections import Detections

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

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Return one ``Detections`` per ``(h, w, 3) uint8`` BGR image, in its pixels."""
        ...
