"""Detections of one image: boxes, scores and classes as parallel arrays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Detections"]


@dataclass(frozen=True)
class Detections:
    """Objects detected in one image, in that image's pixel coordinates.

    Attributes:
        xyxy: ``(n, 4) float32`` boxes as ``x1, y1, x2, y2`` pixels.
        confidence: ``(n,) float32`` scores in ``[0, 1]``.
        class_id: ``(n,) int32`` indices into ``class_names``.
        class_names: Mapping from class id to name, shared by every detection of a model.
        tracker_id: ``(n,) int64`` track ids, or ``None`` before tracking.

    Example:
        >>> d = Detections.empty({0: "fire"})
        >>> len(d)
        0
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: Mapping[int, str] = field(default_factory=dict)
    tracker_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (n, 4), got {self.xyxy.shape}")
        for name, arr in (("confidence", self.confidence), ("class_id", self.class_id)):
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        if self.tracker_id is not None and self.tracker_id.shape != (n,):
            raise ValueError(f"tracker_id must have shape ({n},), got {self.tracker_id.shape}")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls, class_names: Mapping[int, str] | None = None) -> Detections:
        """Return detections with no boxes."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int32),
            class_names=dict(class_names or {}),
        )

    def names(self) -> list[str]:
        """Class name of each detection, in order."""
        return [self.class_names.get(int(c), str(int(c))) for c in self.class_id]

    def filter(self, mask: np.ndarray) -> Detections:
        """Return the detections where the boolean ``(n,)`` mask is true."""
        return Detections(
            xyxy=self.xyxy[mask],
            confidence=self.confidence[mask],
            class_id=self.class_id[mask],
            class_names=self.class_names,
            tracker_id=None if self.tracker_id is None else self.tracker_id[mask],
        )

    def with_classes(self, names: set[str] | frozenset[str]) -> Detections:
        """Return only detections whose class name is in ``names``."""
        wanted = np.array([n in names for n in self.names()], dtype=bool)
        return self.filter(wanted) if len(self) else self
