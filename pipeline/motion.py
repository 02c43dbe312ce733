"""Motion gating: decide whether a frame changed enough since the last inferred one to run the detector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from anjian.pipeline.engine_config import MotionGateConfig

__all__ = ["MotionGate", "MotionGateStats", "motion_thumbnail"]

_THUMB_WIDTH = 160


def motion_thumbnail(image: Any) -> np.ndarray:
    """Grey ``(h', w') float32`` thumbnail about 160 px wide, blurred to hide sensor noise.

    Args:
        image: ``(h, w, 3) uint8`` BGR, numpy or a CUDA tensor (only the subsample is downloaded).
    """
    step = max(1, int(image.shape[1]) // (2 * _THUMB_WIDTH))
    small = image[::step, ::step]
    if not isinstance(small, np.ndarray):
        small = small.cpu().numpy()
    small = np.ascontiguousarray(small)
    width = min(small.shape[1], _THUMB_WIDTH)
    height = max(1, round(small.shape[0] * width / small.shape[1]))
    grey = cv2.cvtColor(cv2.resize(small, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)


@dataclass(slots=True)
class MotionGateStats:
    """What one camera's gate decided.

    Attributes:
        frames_seen: Frames offered to the gate.
        frames_inferred: Frames that went to the detector (motion, forced, or gate off).
        frames_skipped: Frames whose inference was skipped: the compute saved.
        forced: Inferences forced by ``max_skip_s`` on a still scene.
    """

    frames_seen: int = 0
    frames_inferred: int = 0
    frames_skipped: int = 0
    forced: int = 0


class MotionGate:
    """Per-camera gate: infer on motion, or when ``max_skip_s`` passed since the last inference.

    The reference is the last *inferred* frame, so slow drifts add up until they count.

    Example:
        >>> gate = MotionGate(MotionGateConfig(enabled=True))
        >>> if gate.should_infer(frame.image, frame.captured_at): ...
    """

    def __init__(self, config: MotionGateConfig) -> None:
        self.config = config
        self.stats = MotionGateStats()
        self._reference: np.ndarray | None = None
        self._reference_at: float | None = None

    def should_infer(self, image: Any, at: float) -> bool:
        """Return True if the detector must run on this frame (and make it the reference if so).

        Args:
            image: The frame's ``(h, w, 3) uint8`` BGR pixels.
            at: The frame's capture time, seconds.
        """
        self.stats.frames_seen += 1
        if not self.config.enabled:
            self.stats.frames_inferred += 1
            return True
        thumb = motion_thumbnail(image)
        reference, reference_at = self._reference, self._reference_at
        is_forced = reference_at is None or not 0 <= at - reference_at < self.config.max_skip_s
        is_moving = (
            reference is None
            or reference.shape != thumb.shape
            or self.changed_fraction(reference, thumb) >= self.config.min_changed_fraction
        )
        if not (is_moving or is_forced):
            self.stats.frames_skipped += 1
            return False
        if is_forced and not is_moving:
            self.stats.forced += 1
        self._reference, self._reference_at = thumb, at
        self.stats.frames_inferred += 1
        return True

    def reset(self) -> None:
        """Forget the reference, so the next frame is inferred (after a model swap)."""
        self._reference = self._reference_at = None

    def changed_fraction(self, a: np.ndarray, b: np.ndarray) -> float:
        """Share of thumbnail pixels whose grey level differs by more than ``pixel_delta``."""
        return float(np.count_nonzero(np.abs(a - b) > self.config.pixel_delta)) / a.size
