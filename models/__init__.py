"""Detectors: load models, letterbox, infer, decode boxes, NMS."""

from models.config import DetectorConfig
from models.detections import Detections
from models.detector import Detector
from models.errors import ModelError, ModelLoadError, ModelMetadataError
from models.loader import load_detector
from models.metadata import ModelInfo
from models.onnx_detector import OnnxDetector, execution_providers
from models.registry import builtin_model_names, resolve_model_path

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
