"""A second look for small objects: a crop model run on each person's upper body, merged into the primary's boxes.

A 320-pixel view of a whole room cannot show a cigarette. :class:`SecondStageDetector`
runs the primary model, cuts the upper body of every confident person from the
full-resolution frame (:func:`anjian.models.crop_geometry.upper_body_regions`), runs the
crop model once on all crops of the batch, maps its boxes back to frame pixels and merges
them into the primary's detections under the primary's target class.

A model version turns it on in its ``meta.json``::

    "second_stage": {"model": "builtin:anjian-cig/1", "on_classes": ["person"],
                     "target_class": "cigarette", "merge": "nms"}

and the one loader (:func:`anjian.models.loader.load_detector`) builds it, so every command
that loads the version runs the same pair.

**Merging.** ``nms`` (the default) pools the primary's own target boxes with the crop
model's and suppresses overlaps per class: a cigarette the primary sees outside every crop
(a person it missed or scored low) is kept, and where both see the same cigarette the
higher score stands. ``replace`` drops the primary's target boxes whose centre lies in a
crop, so there the crop model alone decides (use it when the primary's boxes for the class
are mostly false alarms).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anjian.models.crop_geometry import boxes_from_crop, upper_body_regions
from anjian.models.detections import Detections
from anjian.models.detector import Detector, host_images
from anjian.models.errors import ModelLoadError
from anjian.models.metadata import ModelInfo
from anjian.models.postprocess import nms_per_class

__all__ = ["SecondStageConfig", "SecondStageDetector", "parse_second_stage"]

logger = logging.getLogger(__name__)


class SecondStageConfig(BaseModel):
    """The ``second_stage`` entry of a model version's ``meta.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(..., min_length=1, description="Crop model spec: builtin:NAME/VERSION or a file path.")
    on_classes: tuple[str, ...] = Field(
        ("person",), min_length=1, description="Primary classes whose boxes are cropped."
    )
    min_score: float = Field(0.3, ge=0, lt=1, description="Least primary score of a box that is cropped.")
    fraction: float = Field(0.6, gt=0, le=1, description="Share of the box's height, from its top, cropped.")
    margin: float = Field(
        0.15, ge=0, le=1, description="Growth of the crop on each side, relative to its size."
    )
    crop_class: str = Field("cigarette", min_length=1, description="The crop model's class taken over.")
    target_class: str = Field("cigarette", min_length=1, description="Primary class the crop boxes become.")
    merge: Literal["nms", "replace"] = Field(
        "nms", description="How crop boxes join the primary's (module doc)."
    )
    iou_threshold: float = Field(0.5, gt=0, lt=1, description="Overlap above which merged boxes suppress.")
    max_crops: int = Field(16, ge=1, le=256, description="Most crops per image (highest scores first).")


def parse_second_stage(raw: object, *, source: str) -> SecondStageConfig:
    """Validate a ``meta.json`` ``second_stage`` entry.

    Raises:
        ModelLoadError: Not an object of the fields of :class:`SecondStageConfig`; the
            message names the file and each bad field.
    """
    try:
        return SecondStageConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'second_stage'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelLoadError(f"{source}: bad 'second_stage': {problems}") from None


def _class_id(names: Mapping[int, str], wanted: str, role: str, version: str) -> int:
    for class_id, name in names.items():
        if name == wanted:
            return class_id
    raise ModelLoadError(
        f"second stage: the {role} {version} has no class {wanted!r} (classes: {sorted(names.values())})"
    )


class SecondStageDetector:
    """A primary detector plus a crop model on the upper body of its confident people.

    Satisfies ``models.Detector``: class names and thresholds are the primary's; the
    version names both models (``primary+crop``) so events record what ran.

    Raises:
        ModelLoadError: The primary lacks an ``on_classes`` or the target class, or the crop
            model lacks ``crop_class``.
    """

    def __init__(self, primary: Detector, crop_model: Detector, config: SecondStageConfig) -> None:
        self.primary = primary
        self.crop_model = crop_model
        self.config = config
        names = primary.class_names
        self._on = [_class_id(names, c, "primary model", primary.version) for c in config.on_classes]
        self._target = _class_id(names, config.target_class, "primary model", primary.version)
        self._crop_class = _class_id(
            crop_model.class_names, config.crop_class, "crop model", crop_model.version
        )

    @property
    def class_names(self) -> dict[int, str]:
        """The primary's class names."""
        return self.primary.class_names

    @property
    def version(self) -> str:
        """``primary-version+crop-version``."""
        return f"{self.primary.version}+{self.crop_model.version}"

    @property
    def class_thresholds(self) -> dict[str, float]:
        """The primary's calibrated thresholds."""
        return self.primary.class_thresholds

    @property
    def info(self) -> ModelInfo:
        """The primary's model facts (input size, task): what tools that size their input read."""
        info: ModelInfo = self.primary.info  # type: ignore[attr-defined]
        return info

    @property
    def precision(self) -> str:
        """The primary's runtime precision (``fp32`` where it does not say)."""
        return str(getattr(self.primary, "precision", "fp32"))

    def regions(self, detections: Detections, frame_wh: tuple[int, int]) -> np.ndarray:
        """The ``(k, 4) int32`` crops of one image: upper bodies of its best-scored ``on_classes`` boxes."""
        mask = np.isin(detections.class_id, self._on) & (detections.confidence >= self.config.min_score)
        chosen = np.flatnonzero(mask)
        chosen = chosen[np.argsort(-detections.confidence[chosen], kind="stable")][: self.config.max_crops]
        return upper_body_regions(
            detections.xyxy[chosen], frame_wh, fraction=self.config.fraction, margin=self.config.margin
        )

    def detect(self, images: Sequence[Any]) -> list[Detections]:
        """Primary detections of each image with the crop model's boxes merged in (frame pixels)."""
        firsts = self.primary.detect(images)
        if not firsts:
            return firsts
        frames = host_images(images)
        regions = [self.regions(d, (f.shape[1], f.shape[0])) for d, f in zip(firsts, frames, strict=True)]
        crops = [f[y1:y2, x1:x2] for f, rs in zip(frames, regions, strict=True) for x1, y1, x2, y2 in rs]
        found = self.crop_model.detect(crops) if crops else []
        out = []
        at = 0
        for first, rs in zip(firsts, regions, strict=True):
            mine = found[at : at + len(rs)]
            at += len(rs)
            out.append(self._merge(first, rs, mine))
        return out

    def _merge(self, first: Detections, regions: np.ndarray, found: Sequence[Detections]) -> Detections:
        """The primary's detections with the crop boxes (mapped to frame pixels) merged under the target class."""
        boxes = [
            boxes_from_crop(d.xyxy[d.class_id == self._crop_class], r)
            for d, r in zip(found, regions, strict=True)
        ]
        scores = [d.confidence[d.class_id == self._crop_class] for d in found]
        new_xyxy = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
        new_conf = np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32)
        is_target = first.class_id == self._target
        keep_first = ~is_target
        own = np.flatnonzero(is_target)
        if self.config.merge == "replace" and len(own) and len(regions):
            centres = (first.xyxy[own, :2] + first.xyxy[own, 2:]) / 2
            inside = (
                (centres[:, None, 0] >= regions[None, :, 0])
                & (centres[:, None, 0] <= regions[None, :, 2])
                & (centres[:, None, 1] >= regions[None, :, 1])
                & (centres[:, None, 1] <= regions[None, :, 3])
            ).any(axis=1)
            own = own[~inside]
        pool_xyxy = np.concatenate([first.xyxy[own], new_xyxy]).astype(np.float32)
        pool_conf = np.concatenate([first.confidence[own], new_conf]).astype(np.float32)
        kept = nms_per_class(
            pool_xyxy,
            pool_conf,
            np.zeros(len(pool_xyxy), np.int32),
            self.config.iou_threshold,
            len(pool_xyxy) or 1,
        )
        return Detections(
            xyxy=np.concatenate([first.xyxy[keep_first], pool_xyxy[kept]]).astype(np.float32),
            confidence=np.concatenate([first.confidence[keep_first], pool_conf[kept]]).astype(np.float32),
            class_id=np.concatenate(
                [first.class_id[keep_first], np.full(len(kept), self._target, np.int32)]
            ).astype(np.int32),
            class_names=first.class_names,
        )
