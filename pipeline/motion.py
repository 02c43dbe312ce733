"""Motion gating: decide whether a frame changed enough since the last inferred one to run the detector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from anjian.models.detections import Detections
from anjian.pipeline.engine_config import MotionGateConfig

__all__ = ["MotionGate", "MotionGateStats", "is_occupied", "motion_thumbnail"]

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


def is_occupied(detections: Detections | None) -> bool:
    """Whether the detections a skipped frame would reuse hold anything (none yet: not occupied)."""
    return detections is not None and len(detections) > 0


@dataclass(slots=True)
class MotionGateStats:
    """What one camera's gate decided.

    Attributes:
        frames_seen: Frames offered to the gate.
        frames_inferred: Frames that went to the detector (motion, forced, or gate off).
        frames_skipped: Frames whose inference was skipped: the compute saved.
        forced: Inferences forced by ``max_skip_s`` on a still scene.
        occupied: Inferences of a still frame because the last inferred one found something.
    """

    frames_seen: int = 0
    frames_inferred: int = 0
    frames_skipped: int = 0
    forced: int = 0
    occupied: int = 0


class MotionGate:
    """Per-camera gate: infer on motion, when ``max_skip_s`` passed since the last inference, or on
    a still scene the last inference found something in (unless ``skip_occupied``).

    The reference is the last *inferred* frame, so slow drifts add up until they count.
    Why an occupied still scene is inferred anyway: on ``fall_home_1.mp4`` (a person falls and
    lies still) the detector's label of the lying person flips between ``person`` and
    ``fallen_person`` from frame to frame; frozen on one unlucky sample for the rest of the clip,
    the fall rule never confirmed (``anjian eval-events``: fallen_person recall 4/10 -> 3/10).

    Example:
        >>> gate = MotionGate(MotionGateConfig(enabled=True))
        >>> if gate.should_infer(frame.image, frame.captured_at, is_occupied=is_occupied(last_detections)): ...
    """

    def __init__(self, config: MotionGateConfig) -> None:
        self.config = config
        self.stats = MotionGateStats()
        self._reference: np.ndarray | None = None
        self._reference_at: float | None = None

    def should_infer(self, image: Any, at: float, *, is_occupied: bool = False) -> bool:
        """Return True if the detector must run on this frame (and make it the reference if so).

        Args:
            image: The frame's ``(h, w, 3) uint8`` BGR pixels.
            at: The frame's capture time, seconds.
            is_occupied: The last inferred frame's detections are not empty (the ones a
                skipped frame would reuse).
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
        is_kept_occupied = is_occupied and not self.config.skip_occupied
        if not (is_moving or is_forced or is_kept_occupied):
            self.stats.frames_skipped += 1
            return False
        if is_forced and not is_moving:
            self.stats.forced += 1
        elif is_kept_occupied and not is_moving:
            self.stats.occupied += 1
        self._reference, self._reference_at = thumb, at
        self.stats.frames_inferred += 1
        return True

    def reset(self) -> None:
        """Forget the reference, so the next frame is inferred (after a model swap)."""
        self._reference = self._reference_at = None

    def changed_fraction(self, a: np.ndarray, b: np.ndarray) -> float:
        """Share of thumbnail pixels whose grey level differs by more than ``pixel_delta``."""
        return float(np.count_nonzero(np.abs(a - b) > self.config.pixel_delta)) / a.size
