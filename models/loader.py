"""Pick the detector backend for a model file: ONNX Runtime for ``.onnx``, ultralytics for ``.pt``."""

from __future__ import annotations

from pathlib import Path

from anjian.models.config import DetectorConfig
from anjian.models.detector import Detector
from anjian.models.errors import ModelLoadError
from anjian.models.onnx_detector import OnnxDetector
from anjian.models.registry import resolve_model_path

__all__ = ["load_detector"]


def _wants_openvino(config: DetectorConfig) -> bool:
    """OpenVINO when asked for, or on ``auto`` for a CPU run where it is installed."""
    if config.backend != "auto":
        return config.backend == "openvino"
    if config.device == "cuda" or (config.device == "auto" and _has_gpu_provider()):
        return False
    from anjian.models.openvino_detector import openvino_available

    return openvino_available()


def _has_gpu_provider() -> bool:
    import onnxruntime as ort

    return bool({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()))


def load_detector(spec: str | Path, config: DetectorConfig | None = None) -> Detector:
    """Load the detector a model spec names.

    Args:
        spec: A ``.onnx`` file, a ``.pt`` checkpoint (needs the ``train`` extra), or
            ``builtin:NAME[/VERSION]``.
        config: Thresholds, device, threads and the site registry ``builtin:`` specs
            resolve in.

    Returns:
        An ``OnnxDetector``, an ``OpenVinoDetector`` (``.onnx`` on the CPU, see
        ``DetectorConfig.backend``) or a ``YoloDetector``.

    Raises:
        ModelLoadError: Unknown builtin, missing file, unsupported format.
        ModelMetadataError: The file lacks class names or an input size.
    """
    path = resolve_model_path(str(spec), root=config.registry if config else None)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        from anjian.models.yolo_detector import YoloDetector

        return YoloDetector(path, config)
    if suffix == ".onnx":
        config = config or DetectorConfig()
        if _wants_openvino(config):
            from anjian.models.openvino_detector import OpenVinoDetector

            return OpenVinoDetector(path, config)
        return OnnxDetector(path, config)
    raise ModelLoadError(f"{path.name}: unsupported model format {suffix!r}; anjian runs .onnx (or .pt)")
