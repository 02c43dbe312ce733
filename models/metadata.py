"""Read what a detector file says about itself: class names, input size, task, version."""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelMetadataError

__all__ = ["ModelInfo", "file_digest", "parse_ultralytics_metadata"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Facts about a detector model.

    Attributes:
        class_names: Class id to name.
        input_hw: Model input ``(height, width)`` in pixels.
        task: ``"detect"`` for the detectors anjian runs.
        version: Version string recorded in events (name plus a content digest).
        stride: Largest feature stride of the network.
    """

    class_names: dict[int, str]
    input_hw: tuple[int, int]
    task: str
    version: str
    stride: int = 32


def file_digest(path: Path, length: int = 12) -> str:
    """Return the first ``length`` hex digits of the file's SHA-256."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def _literal(value: str, key: str, source: str) -> object:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError) as exc:
        raise ModelMetadataError(f"{source}: metadata key {key!r} is not a Python literal: {value!r}") from exc


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
        ModelMetadataError: ``names`` is missing or malformed, or no input size is known.
    """
    if "names" not in props:
        raise ModelMetadataError(
            f"{source}: no 'names' in the model metadata; anjian needs class names "
            "(export with ultralytics or `anjian export`)"
        )
    names = _literal(props["names"], "names", source)
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not all(isinstance(k, int) and isinstance(v, str) for k, v in names.items()):
        raise ModelMetadataError(f"{source}: metadata 'names' must map int ids to str names, got {names!r}")
    input_hw = fallback_hw
    if "imgsz" in props:
        imgsz = _literal(props["imgsz"], "imgsz", source)
        if isinstance(imgsz, int):
            input_hw = (imgsz, imgsz)
        elif isinstance(imgsz, list | tuple) and len(imgsz) == 2:
            input_hw = (int(imgsz[0]), int(imgsz[1]))
    if input_hw is None:
        raise ModelMetadataError(f"{source}: input size unknown (no 'imgsz' metadata and a dynamic input shape)")
    task = props.get("task", "detect")
    if task != "detect":
        raise ModelMetadataError(f"{source}: task is {task!r}; anjian runs 'detect' models")
    name = props.get("anjian_model") or Path(source).stem
    version = f"{name}@{digest}"
    stride_raw = props.get("stride", "32")
    stride = int(stride_raw) if stride_raw.isdigit() else 32
    return ModelInfo(class_names=names, input_hw=input_hw, task=task, version=version, stride=stride)
