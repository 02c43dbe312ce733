"""Detectors: load models, letterbox, infer, decode boxes, NMS.

The names below load on first use (PEP 562), so importing ``models.config`` or
``models.errors`` does not pull in ONNX Runtime or OpenVINO.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.config import DetectorConfig
    from models.detections import Detections
    from models.detector import Detector
    from models.errors import ModelError, ModelLoadError, ModelMetadataError
    from models.loader import load_detector
    from models.metadata import ModelInfo
    from models.onnx_detector import OnnxDetector, execution_providers
    from models.registry import builtin_model_names, resolve_model_path

_EXPORTS = {
    "DetectorConfig": "models.config",
    "Detections": "models.detections",
    "Detector": "models.detector",
    "ModelError": "models.errors",
    "ModelLoadError": "models.errors",
    "ModelMetadataError": "models.errors",
    "load_detector": "models.loader",
    "ModelInfo": "models.metadata",
    "OnnxDetector": "models.onnx_detector",
    "execution_providers": "models.onnx_detector",
    "builtin_model_names": "models.registry",
    "resolve_model_path": "models.registry",
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
