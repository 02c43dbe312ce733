"""Names of ``anjian.models``, loaded on first use (read by lazy_loader at run time, by type checkers as a stub)."""

from .config import DetectorConfig
from .detections import Detections
from .detector import Detector
from .errors import ModelError, ModelLoadError, ModelMetadataError
from .loader import load_detector
from .metadata import ModelInfo
from .onnx_detector import OnnxDetector, execution_providers
from .registry import builtin_model_names, resolve_model_path

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
