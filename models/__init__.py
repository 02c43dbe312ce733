"""Detectors: load models, letterbox, infer, decode boxes, NMS.

The names below load on first use (PEP 562), so importing ``anjian.models.config`` or
``anjian.models.errors`` does not pull in ONNX Runtime or OpenVINO.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anjian.models.config import DetectorConfig
    from anjian.models.detections import Detections
    from anjian.models.detector import Detector
    from anjian.models.errors import ModelError, ModelLoadError, ModelMetadataError
    from anjian.models.loader import load_detector
    from anjian.models.metadata import ModelInfo
    from anjian.models.onnx_detector import OnnxDetector, execution_providers
    from anjian.models.registry import builtin_model_names, resolve_model_path

_EXPORTS = {
    "DetectorConfig": "anjian.models.config",
    "Detections": "anjian.models.detections",
    "Detector": "anjian.models.detector",
    "ModelError": "anjian.models.errors",
    "ModelLoadError": "anjian.models.errors",
    "ModelMetadataError": "anjian.models.errors",
    "load_detector": "anjian.models.loader",
    "ModelInfo": "anjian.models.metadata",
    "OnnxDetector": "anjian.models.onnx_detector",
    "execution_providers": "anjian.models.onnx_detector",
    "builtin_model_names": "anjian.models.registry",
    "resolve_model_path": "anjian.models.registry",
}

__all__ = [
    "Detections",
    "Detector",
    "DetectorConfig",
    "ModelError",
    "ModelInfo",
    "ModelLoadError",
    "ModelMetadataError",
    "OnnxDetector",
    "builtin_model_names",
    "execution_providers",
    "load_detector",
    "resolve_model_path",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
