"""The decoded frame that travels from a camera into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Frame"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded, sampled video frame.

    Attributes:
        camera_id: Id of the camera that produced the frame.
        image: ``(h, w, 3) uint8`` BGR pixels: a numpy array, or, for cameras decoded
            on the GPU (``decode_device: cuda``), a CUDA ``torch.Tensor`` of the same
            shape and layout, which never left the GPU. ``host_image()`` gives numpy
            either way.
        captured_at: Wall-clock capture time, seconds since the epoch (for files in
            replay mode: the stream start time plus ``pts_s``).
        pts_s: Presentation time in the stream, seconds (monotonic within one connection).
        index: Running count of frames delivered by this source since it started.
    """

    camera_id: str
    image: Any
    captured_at: float
    pts_s: float
    index: int

    def __post_init__(self) -> None:
        shape = tuple(getattr(self.image, "shape", ()))
        dtype = str(getattr(self.image, "dtype", ""))
        if len(shape) != 3 or shape[2] != 3 or dtype not in ("uint8", "torch.uint8"):
            raise ValueError(f"Frame.image must be (h, w, 3) uint8, got {shape} {dtype or type(self.image)}")

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """Frame size as ``(width, height)`` in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])

    @property
    def is_on_gpu(self) -> bool:
        """True when ``image`` is a GPU tensor rather than a numpy array."""
        return not isinstance(self.image, np.ndarray)

    def host_image(self) -> np.ndarray:
        """Return the pixels as a ``(h, w, 3) uint8`` numpy array, downloading them if on the GPU."""
        if isinstance(self.image, np.ndarray):
            return self.image
        return np.ascontiguousarray(self.image.cpu().numpy())
