"""Read what a detector file says about itself: class names, input size, task, version."""

from __future__ import annotations

import ast
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from anjian.models.config import DetectorConfig
from anjian.models.errors import ModelMetadataError

__all__ = [
    "THRESHOLDS_KEY",
    "ModelInfo",
    "file_digest",
    "floor_to_thresholds",
    "parse_class_thresholds",
    "parse_ultralytics_metadata",
]

THRESHOLDS_KEY = "anjian_thresholds"
"""Metadata key of the per-class operating thresholds: a JSON object ``{class name: score}``."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Facts about a detector model.

    Attributes:
        class_names: Class id to name.
        input_hw: Model input ``(height, width)`` in pixels.
        task: ``"detect"`` for the detectors anjian runs.
        version: Version string recorded in events (name plus a content digest).
        stride: Largest feature stride of the network.
        class_thresholds: Calibrated operating score per class name (from the validation
            PR curves, see ``anjian.training.thresholds``); empty when the model carries none.
    """

    class_names: dict[int, str]
    input_hw: tuple[int, int]
    task: str
    version: str
    stride: int = 32
    class_thresholds: dict[str, float] = field(default_factory=dict)


def file_digest(path: Path, length: int = 12) -> str:
    """Return the first ``length`` hex digits of the file's SHA-256."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def _literal(value: str, key: str, source: str) -> object:
    """``value`` as a Python literal; ModelMetadataError naming ``source`` and ``key`` when it is none."""
    try:
        return ast.literal_eval(value)
    except Exception as exc:  # noqa: BLE001 - literal_eval also raises TypeError ({[0]: 'a'}), MemoryError, RecursionError
        raise ModelMetadataError(
            f"{source}: metadata key {key!r} is not a Python literal: {value[:200]!r} ({type(exc).__name__})"
        ) from None


def _input_hw(imgsz: object, source: str) -> tuple[int, int]:
    """The ``imgsz`` metadata value as ``(height, width)``: one positive int, or a pair of them."""
    sides = list(imgsz) if isinstance(imgsz, list | tuple) else [imgsz, imgsz]
    pixels = [v for v in sides if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    if len(sides) != 2 or len(pixels) != 2:
        raise ModelMetadataError(
            f"{source}: metadata 'imgsz' must be a positive int or a [height, width] pair of them, got {imgsz!r}"
        )
    return (pixels[0], pixels[1])


def parse_class_thresholds(raw: str, class_names: Mapping[int, str], *, source: str) -> dict[str, float]:
    """Parse the ``anjian_thresholds`` metadata value: per-class operating scores.

    Args:
        raw: The JSON text, e.g. ``{"fire": 0.21, "person": 0.38}``.
        class_names: The model's class names; every key must be one of them.
        source: File name, for error messages.

    Returns:
        Class name to score in ``(0, 1)``.

    Raises:
        ModelMetadataError: Not a JSON object of known class names to scores in ``(0, 1)``.
    """
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelMetadataError(f"{source}: metadata {THRESHOLDS_KEY!r} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ModelMetadataError(
            f"{source}: metadata {THRESHOLDS_KEY!r} must be a JSON object of class name to score, got {raw!r}"
        )
    known = set(class_names.values())
    thresholds: dict[str, float] = {}
    for name, score in value.items():
        if name not in known:
            raise ModelMetadataError(
                f"{source}: metadata {THRESHOLDS_KEY!r} names class {name!r}, not one of {sorted(known)}"
            )
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not 0 < score < 1
            or math.isnan(score)
        ):
            raise ModelMetadataError(
                f"{source}: metadata {THRESHOLDS_KEY!r} gives {name!r} the score {score!r}; expected a number in (0, 1)"
            )
        thresholds[name] = float(score)
    return thresholds


def parse_ultralytics_metadata(
    props: dict[str, str], *, source: str, fallback_hw: tuple[int, int] | None, digest: str
) -> ModelInfo:
    """Parse the ``metadata_props`` that an ultralytics export writes into an ONNX file.

    Args:
        props: Key/value strings from the model file.
        source: File name, for error messages.
        fallback_hw: Input size from the graph when the metadata has none.
        digest: Content digest of the file, part of the version string.

    Returns:
        The model's facts.

    Raises:
        ModelMetadataError: ``names`` is missing or malformed, ``imgsz`` is malformed, no
            input size is known, or ``anjian_thresholds`` is malformed.
    """
    if "names" not in props:
        raise ModelMetadataError(
            f"{source}: no 'names' in the model metadata; anjian needs class names "
            "(export with ultralytics or `anjian export`)"
        )
    names = _literal(props["names"], "names", source)
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not all(
        isinstance(k, int) and isinstance(v, str) for k, v in names.items()
    ):
        raise ModelMetadataError(f"{source}: metadata 'names' must map int ids to str names, got {names!r}")
    input_hw = fallback_hw
    if "imgsz" in props:
        input_hw = _input_hw(_literal(props["imgsz"], "imgsz", source), source)
    if input_hw is None:
        raise ModelMetadataError(
            f"{source}: input size unknown (no 'imgsz' metadata and a dynamic input shape)"
        )
    task = props.get("task", "detect")
    if task != "detect":
        raise ModelMetadataError(f"{source}: task is {task!r}; anjian runs 'detect' models")
    name = props.get("anjian_model") or Path(source).stem
    version = f"{name}@{digest}"
    stride_raw = props.get("stride", "32")
    # isascii: "²" is a digit to isdigit() but not to int()
    is_stride = stride_raw.isascii() and stride_raw.isdigit() and int(stride_raw) > 0
    stride = int(stride_raw) if is_stride else 32
    thresholds = (
        parse_class_thresholds(props[THRESHOLDS_KEY], names, source=source) if THRESHOLDS_KEY in props else {}
    )
    return ModelInfo(
        class_names=names,
        input_hw=input_hw,
        task=task,
        version=version,
        stride=stride,
        class_thresholds=thresholds,
    )


def floor_to_thresholds(config: DetectorConfig, info: ModelInfo) -> DetectorConfig:
    """``config`` with its score floor lowered to the model's lowest calibrated threshold.

    The rules default to the calibrated thresholds (a fire may be calibrated at 0.2); a
    detector floor above them (0.25 by default) would drop the very boxes the calibration
    counts. A floor the site set explicitly (``model.confidence_threshold``) is kept.
    """
    if not info.class_thresholds or "confidence_threshold" in config.model_fields_set:
        return config
    floor = min(config.confidence_threshold, *info.class_thresholds.values())
    return config.model_copy(update={"confidence_threshold": floor})
