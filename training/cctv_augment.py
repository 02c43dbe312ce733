"""Make a clean training photo look as a plant's CCTV camera would deliver it.

The fire, smoking and fall sets are mostly sharp, well exposed, richly coloured frames; a
plant's cameras deliver a sub-stream of a few hundred pixels, H.264-compressed, noisy, often
washed out, with bright flames clipped to a white core. A model that never saw that look
misses what it knows on a control-room screen (issue 17: a fire detector trained on the
daylight videos of ``fire_continuous`` scored fire AP50 0.02 on the CCTV frames of
``fire_smoke_cctv``). :class:`CctvDegradation` is a training transform that, with a given
probability, passes an image through a random chain of the camera's faults:

- the sub-stream's resolution (shrunk with area averaging, enlarged back with a linear filter);
- defocus (Gaussian blur);
- sensor noise (Gaussian, per pixel and channel);
- auto-exposure and gain (contrast and brightness changed and clipped, which turns bright flames
  white as on an over-exposed camera);
- faded colour (blended toward grey; now and then fully grey, as an IR night mode);
- the codec (JPEG re-encoded at a low quality, always last, as compression is what every camera
  applies).

Geometry never changes, so labels stay valid. :func:`degrade_like_cctv` is the pure function;
the class adapts it to ultralytics' transform protocol (a ``labels`` dict holding ``img``), so
:mod:`anjian.training.train` can put it in the training pipeline just before the tensors are
made.
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CctvDegradation", "CctvLook", "degrade_like_cctv"]


class CctvLook(BaseModel):
    """How hard each camera fault may hit, and how often; ranges are drawn uniformly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shrink: tuple[float, float] = Field((0.35, 0.85), description="Scale of the sub-stream (1: full size).")
    blur_sigma: tuple[float, float] = Field((0.3, 1.3), description="Defocus blur sigma in pixels.")
    blur_p: float = Field(0.5, ge=0, le=1, description="Share of degraded images blurred.")
    noise_sigma: tuple[float, float] = Field((2.0, 9.0), description="Sensor noise sigma in grey levels.")
    noise_p: float = Field(0.5, ge=0, le=1, description="Share of degraded images with sensor noise.")
    gain: tuple[float, float] = Field((0.75, 1.7), description="Contrast gain of the auto exposure.")
    bias: tuple[float, float] = Field((-25.0, 35.0), description="Brightness offset in grey levels.")
    exposure_p: float = Field(0.5, ge=0, le=1, description="Share of degraded images re-exposed (clipped).")
    fade: tuple[float, float] = Field((0.2, 0.7), description="Share of the colour blended toward grey.")
    fade_p: float = Field(0.3, ge=0, le=1, description="Share of degraded images with faded colour.")
    grey_p: float = Field(
        0.05, ge=0, le=1, description="Share of degraded images turned fully grey (IR mode)."
    )
    jpeg_quality: tuple[int, int] = Field((15, 60), description="JPEG quality of the codec step (1-100).")

    @model_validator(mode="after")
    def _ranges(self) -> CctvLook:
        """Refuse a range that is reversed or outside what the step can do."""
        for name in ("shrink", "blur_sigma", "noise_sigma", "gain", "bias", "fade", "jpeg_quality"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: the range must run low to high, got ({low}, {high})")
        if self.shrink[0] < 0.05 or self.shrink[1] > 1.0:
            raise ValueError(f"shrink must lie in [0.05, 1], got {self.shrink}")
        if self.jpeg_quality[0] < 1 or self.jpeg_quality[1] > 100:
            raise ValueError(f"jpeg_quality must lie in [1, 100], got {self.jpeg_quality}")
        if self.blur_sigma[0] < 0 or self.noise_sigma[0] < 0 or self.gain[0] <= 0:
            raise ValueError("blur_sigma and noise_sigma must be >= 0 and gain > 0")
        if self.fade[0] < 0 or self.fade[1] > 1:
            raise ValueError(f"fade must lie in [0, 1], got {self.fade}")
        return self


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def degrade_like_cctv(
    image: np.ndarray, rng: np.random.Generator, look: CctvLook | None = None
) -> np.ndarray:
    """Return ``image`` (uint8 BGR or grey, HxW[xC]) as a CCTV camera would deliver it.

    Each fault of :class:`CctvLook` is drawn from ``rng``; the codec step always runs. The
    result has the input's shape and dtype; the input is not changed.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected a non-empty uint8 HxW or HxWxC image, got {image.dtype} {image.shape}")
    look = look or CctvLook()
    height, width = image.shape[:2]
    out = image
    scale = _uniform(rng, look.shrink)
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    if small != (width, height):
        out = cv2.resize(cv2.resize(out, small, interpolation=cv2.INTER_AREA), (width, height))
    if rng.random() < look.blur_p:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=max(_uniform(rng, look.blur_sigma), 1e-3))
    work = out.astype(np.float32)
    if rng.random() < look.exposure_p:
        work = work * _uniform(rng, look.gain) + _uniform(rng, look.bias)
    if work.ndim == 3 and work.shape[2] == 3:
        if rng.random() < look.grey_p:
            work[...] = work.mean(axis=2, keepdims=True)
        elif rng.random() < look.fade_p:
            fade = _uniform(rng, look.fade)
            work = work * (1 - fade) + work.mean(axis=2, keepdims=True) * fade
    if rng.random() < look.noise_p:
        work = work + rng.normal(0.0, _uniform(rng, look.noise_sigma), work.shape).astype(np.float32)
    out = np.clip(work, 0, 255).astype(np.uint8)
    quality = int(rng.integers(look.jpeg_quality[0], look.jpeg_quality[1] + 1))
    is_encoded, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not is_encoded:  # pragma: no cover - OpenCV encodes any uint8 image
        return out
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return out if decoded is None else decoded.reshape(image.shape)


class CctvDegradation:
    """Ultralytics training transform: with probability ``p``, :func:`degrade_like_cctv` the image.

    Args:
        p: Share of training images degraded (0 turns it off).
        look: The faults and their ranges.
        seed: Seed of this transform's generator. A dataloader worker process forked from the
            trainer draws its own stream (seeded with ``seed`` and its process id), not a copy
            of its siblings'.
    """

    def __init__(self, p: float, look: CctvLook | None = None, *, seed: int = 0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = p
        self.look = look or CctvLook()
        self._seed = seed
        self._pid = os.getpid()
        self._rng = np.random.default_rng(seed)

    def _generator(self) -> np.random.Generator:
        pid = os.getpid()
        if pid != self._pid:  # a forked worker: every worker would otherwise repeat the same draws
            self._pid = pid
            self._rng = np.random.default_rng([self._seed, pid])
        return self._rng

    def __call__(self, labels: dict[str, Any]) -> dict[str, Any]:
        """Degrade ``labels["img"]`` in place of the original; boxes are left as they are."""
        rng = self._generator()
        if self.p > 0 and rng.random() < self.p:
            labels["img"] = degrade_like_cctv(labels["img"], rng, self.look)
        return labels

    def __repr__(self) -> str:
        return f"CctvDegradation(p={self.p})"
