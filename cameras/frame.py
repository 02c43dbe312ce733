"""The decoded frame that travels from a camera into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Frame"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded, sampled video frame.

    Attributes:
        camera_id: Id of the camera that produced the frame.
        image: ``(h, w, 3) uint8`` BGR pixels.
        captured_at: Wall-clock capture time, seconds since the epoch (for files in
            replay mode: the stream start time plus ``pts_s``).
        pts_s: Presentation time in the stream, seconds (monotonic within one connection).
        index: Running count of frames delivered by this source since it started.
    """

    camera_id: str
    image: np.ndarray
    captured_at: float
    pts_s: float
    index: int

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"Frame.image must be (h, w, 3) uint8, got {self.image.shape} {self.image.dtype}"
            )

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """Frame size as ``(width, height)`` in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])
