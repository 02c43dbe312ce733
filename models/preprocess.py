"""Letterbox resizing: fit an image into the model's square input without distortion."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["LetterboxTransform", "letterbox", "letterbox_batch"]

PAD_VALUE = 114


@dataclass(frozen=True, slots=True)
class LetterboxTransform:
    """How an image was mapped into the model input, to map boxes back.

    Attributes:
        scale: Factor applied to the original pixels.
        pad_xy: Left and top padding in model-input pixels.
    """

    scale: float
    pad_xy: tuple[float, float]

    def boxes_to_original(self, xyxy: np.ndarray, resolution_wh: tuple[int, int]) -> np.ndarray:
        """Map ``(n, 4)`` model-input boxes back to the original image, clipped to it."""
        out = xyxy.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_xy[0]) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_xy[1]) / self.scale
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, resolution_wh[0])
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, resolution_wh[1])
        return out


def letterbox(image: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, LetterboxTransform]:
    """Resize ``image`` to fit ``size_hw`` keeping its aspect ratio, padding with grey.

    Args:
        image: ``(h, w, 3) uint8`` BGR.
        size_hw: Target ``(height, width)``.

    Returns:
        The ``(H, W, 3) uint8`` padded image and the transform that maps boxes back.
    """
    h, w = image.shape[:2]
    target_h, target_w = size_hw
    scale = min(target_h / h, target_w / w)
    new_w, new_h = round(w * scale), round(h * scale)
    resized = image if (new_w, new_h) == (w, h) else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_x = (target_w - new_w) / 2
    pad_y = (target_h - new_h) / 2
    left, top = round(pad_x - 0.1), round(pad_y - 0.1)
    out = cv2.copyMakeBorder(
        resized,
        top,
        target_h - new_h - top,
        left,
        target_w - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
    )
    return out, LetterboxTransform(scale=scale, pad_xy=(float(left), float(top)))


def letterbox_batch(
    images: list[np.ndarray], size_hw: tuple[int, int]
) -> tuple[np.ndarray, list[LetterboxTransform]]:
    """Letterbox several BGR images into one ``(b, 3, H, W) float32`` RGB tensor in ``[0, 1]``."""
    batch = np.empty((len(images), 3, size_hw[0], size_hw[1]), dtype=np.float32)
    transforms: list[LetterboxTransform] = []
    for i, image in enumerate(images):
        boxed, transform = letterbox(image, size_hw)
        # BGR -> RGB, HWC -> CHW, scale to [0, 1]
        np.multiply(boxed[:, :, ::-1].transpose(2, 0, 1), 1.0 / 255.0, out=batch[i], casting="unsafe")
        transforms.append(transform)
    return batch, transforms
