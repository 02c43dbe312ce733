"""Run an ultralytics-exported YOLO detector with ONNX Runtime, batched, on CPU or GPU.

On the CPU, images are letterboxed with OpenCV/numpy and boxes decoded with
vectorised numpy and OpenCV's batched NMS. With ``onnxruntime-gpu`` and an NVIDIA
GPU, the TensorRT (fp16) or CUDA execution provider runs the model; frames that are
already CUDA tensors (NVDEC decoding) are letterboxed in torch, bound to the session
with IOBinding, and decoded on the GPU, so only the surviving boxes reach the host.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from anjian.models.config import DetectorConfig
from anjian.models.detections import Detections
from anjian.models.errors import ModelLoadError
from anjian.models.metadata import ModelInfo, file_digest, floor_to_thresholds, parse_ultralytics_metadata
from anjian.models.postprocess import detect_on_host
from anjian.models.preprocess import LetterboxTransform

__all__ = ["OnnxDetector", "execution_providers"]

logger = logging.getLogger(__name__)

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_HEAD_STRIDES = (8, 16, 32)  # YOLOv8/11 detect head: one anchor per cell of each level


def execution_providers(config: DetectorConfig) -> list[str | tuple[str, dict[str, Any]]]:
    """ONNX Runtime providers for ``config.device``, best first, CPU always last.

    Raises:
        ModelLoadError: ``device`` is ``cuda`` but this ONNX Runtime has no GPU provider.
    """
    available = ort.get_available_providers()
    if config.device == "cpu":
        return ["CPUExecutionProvider"]
    chosen: list[str | tuple[str, dict[str, Any]]] = []
    if "TensorrtExecutionProvider" in available:
        cache = Path(tempfile.gettempdir()) / "anjian-tensorrt"
        chosen.append(
            (
                "TensorrtExecutionProvider",
                {
                    "trt_fp16_enable": config.fp16,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                },
            )
        )
    if "CUDAExecutionProvider" in available:
        chosen.append("CUDAExecutionProvider")
    if config.device == "cuda" and not chosen:
        raise ModelLoadError(f"device 'cuda' asked for, but ONNX Runtime offers only {available}")
    return [*chosen, "CPUExecutionProvider"]


class OnnxDetector:
    """A YOLO detector (ultralytics ONNX export, NMS not embedded) run by ONNX Runtime.

    Class names, input size and task come from the file's metadata, so a model
    carries its own label map. Images of any size are letterboxed (to the stride
    multiple they need when the model's input shape is dynamic); boxes come back in
    each image's own pixels. Not thread-safe: one analysis thread calls ``detect``.

    Example:
        >>> detector = OnnxDetector(Path("model.onnx"), DetectorConfig())
        >>> [dets] = detector.detect([image_bgr])
    """

    def __init__(self, path: Path, config: DetectorConfig | None = None) -> None:
        """Load the model.

        Raises:
            ModelLoadError: The file is missing or ONNX Runtime cannot load it.
            ModelMetadataError: It lacks class names or an input size, or is not a detector.
        """
        self.path = Path(path)
        self.config = config or DetectorConfig()
        if not self.path.is_file():
            raise ModelLoadError(f"model file not found: {self.path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.config.intra_op_threads:
            options.intra_op_num_threads = self.config.intra_op_threads
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=execution_providers(self.config)
            )
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped pybind errors
            raise ModelLoadError(f"cannot load model {self.path}: {str(exc).strip()[:300]}") from None
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        self._output_name = self._session.get_outputs()[0].name
        shape = model_input.shape
        fixed_hw = (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
        self._is_dynamic_batch = not isinstance(shape[0], int)
        self._fp16 = model_input.type == "tensor(float16)"
        props = dict(self._session.get_modelmeta().custom_metadata_map)
        self.info: ModelInfo = parse_ultralytics_metadata(
            props, source=self.path.name, fallback_hw=fixed_hw, digest=file_digest(self.path)
        )
        self.config = floor_to_thresholds(self.config, self.info)
        self._stride = self.info.stride if fixed_hw is None and self.config.minimal_padding else None
        self._on_gpu = self._session.get_providers()[0] in _GPU_PROVIDERS
        logger.info(
            "loaded %s (%d classes, input %s%s, providers %s)",
            self.info.version,
            len(self.info.class_names),
            self.info.input_hw,
            " dynamic" if fixed_hw is None else "",
            self._session.get_providers(),
        )

    @property
    def class_names(self) -> dict[int, str]:
        """Class id to name, from the model's metadata."""
        return self.info.class_names

    @property
    def version(self) -> str:
        """Version string recorded in events."""
        return self.info.version

    @property
    def class_thresholds(self) -> dict[str, float]:
        """Calibrated operating score per class name, from the model's metadata (may be empty)."""
        return self.info.class_thresholds

    @property
    def providers(self) -> list[str]:
        """The execution providers ONNX Runtime uses, best first."""
        return list(self._session.get_providers())

    def detect(self, images: Sequence[Any]) -> list[Detections]:
        """Detect objects in each BGR image.

        Args:
            images: ``(h, w, 3) uint8`` BGR images, any sizes: numpy arrays, or CUDA
                tensors (frames decoded on the GPU), which stay on the GPU when the
                session runs there.

        Returns:
            One ``Detections`` per image, boxes in that image's pixels.
        """
        if not images:
            return []
        is_tensor = [not isinstance(im, np.ndarray) for im in images]
        if self._on_gpu and all(is_tensor):
            raw = self._detect_on_gpu(images)
        else:
            host = [im.cpu().numpy() if t else im for im, t in zip(images, is_tensor, strict=True)]
            raw = self._detect_on_host(host)
        results = []
        for (xyxy, confidence, class_id, transform), image in zip(raw, images, strict=True):
            xyxy = transform.boxes_to_original(xyxy, (int(image.shape[1]), int(image.shape[0])))
            results.append(
                Detections(xyxy=xyxy, confidence=confidence, class_id=class_id, class_names=self.class_names)
            )
        return results

    def _detect_on_host(
        self, images: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, LetterboxTransform]]:
        return detect_on_host(images, self.info, self._stride, self.config, self._infer_host)

    def _infer_host(self, batch: np.ndarray) -> np.ndarray:
        if self._fp16:
            batch = batch.astype(np.float16)
        if self._is_dynamic_batch:
            return np.asarray(self._session.run([self._output_name], {self._input_name: batch})[0])
        return np.concatenate(
            [
                self._session.run([self._output_name], {self._input_name: batch[i : i + 1]})[0]
                for i in range(len(batch))
            ]
        )

    def _detect_on_gpu(
        self, images: Sequence[Any]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, LetterboxTransform]]:
        """Letterbox, infer (IOBinding) and decode on the GPU; only kept boxes come back."""
        import torch

        from anjian.models.gpu_ops import decode_yolo_output_torch, letterbox_tensors

        dtype = torch.float16 if self._fp16 else torch.float32
        batch, transforms = letterbox_tensors(images, self.info.input_hw, stride=self._stride, dtype=dtype)
        chunks = [batch] if self._is_dynamic_batch else list(batch.split(1))
        outputs = [self._run_bound(chunk.contiguous()) for chunk in chunks]
        output = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        cfg = self.config
        decoded = decode_yolo_output_torch(
            output, cfg.confidence_threshold, cfg.iou_threshold, cfg.max_detections
        )
        return [(*d, t) for d, t in zip(decoded, transforms, strict=True)]

    def _run_bound(self, batch: Any) -> Any:
        """Run the session on a CUDA tensor through IOBinding into a preallocated CUDA output."""
        import torch

        b, _, h, w = (int(x) for x in batch.shape)
        anchors = sum((h // s) * (w // s) for s in _HEAD_STRIDES)
        output = torch.empty((b, 4 + len(self.class_names), anchors), dtype=batch.dtype, device=batch.device)
        element = np.float16 if batch.dtype == torch.float16 else np.float32
        device_id = batch.device.index or 0
        binding = self._session.io_binding()
        binding.bind_input(self._input_name, "cuda", device_id, element, tuple(batch.shape), batch.data_ptr())
        binding.bind_output(
            self._output_name, "cuda", device_id, element, tuple(output.shape), output.data_ptr()
        )
        torch.cuda.current_stream(batch.device).synchronize()  # the letterbox is done before ORT reads it
        self._session.run_with_iobinding(binding)
        return output
