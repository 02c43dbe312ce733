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
from anjian.models.errors import ModelLoadError
from anjian.models.onnx_export import ExportDetector, RawDetections, fixed_batch_chunks, open_session

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


class OnnxDetector(ExportDetector):
    """A YOLO detector (ultralytics ONNX export, NMS not embedded) run by ONNX Runtime.

    Everything but the session is ``ExportDetector``'s (metadata, letterbox, decode, static
    batches). Frames that are CUDA tensors stay on the GPU when the session runs there.

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
        super().__init__(path, config)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.config.intra_op_threads:
            options.intra_op_num_threads = self.config.intra_op_threads
        self._session = open_session(self.path, providers=execution_providers(self.config), options=options)
        self._read_export(self._session)
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        self._output_name = self._session.get_outputs()[0].name
        self._fp16 = model_input.type == "tensor(float16)"
        self._on_gpu = self._session.get_providers()[0] in _GPU_PROVIDERS
        logger.info(
            "loaded %s (%d classes, input %s%s, providers %s)",
            self.info.version,
            len(self.info.class_names),
            self.info.input_hw,
            " dynamic" if self._is_dynamic_hw else "",
            self._session.get_providers(),
        )

    @property
    def providers(self) -> list[str]:
        """The execution providers ONNX Runtime uses, best first."""
        return list(self._session.get_providers())

    def _detect_raw(self, images: Sequence[Any]) -> list[RawDetections]:
        """On the GPU when the session runs there and every frame is a CUDA tensor, else on the host."""
        if self._on_gpu and not any(isinstance(im, np.ndarray) for im in images):
            return self._detect_on_gpu(images)
        return super()._detect_raw(images)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if self._fp16:
            batch = batch.astype(np.float16)
        if self._fixed_batch is None:
            return np.asarray(self._session.run([self._output_name], {self._input_name: batch})[0])
        outputs = [
            self._session.run([self._output_name], {self._input_name: chunk})[0]
            for chunk in fixed_batch_chunks(batch, self._fixed_batch)
        ]
        return np.concatenate(outputs)[: len(batch)]

    def _detect_on_gpu(self, images: Sequence[Any]) -> list[RawDetections]:
        """Letterbox, infer (IOBinding) and decode on the GPU; only kept boxes come back."""
        import torch

        from anjian.models.gpu_ops import decode_yolo_output_torch, letterbox_tensors

        dtype = torch.float16 if self._fp16 else torch.float32
        batch, transforms = letterbox_tensors(images, self.info.input_hw, stride=self._stride, dtype=dtype)
        size = self._fixed_batch
        chunks = [batch] if size is None else list(batch.split(size))
        if size is not None and len(chunks[-1]) < size:  # a static batch: fill up with blank images
            chunks[-1] = torch.cat(
                [chunks[-1], chunks[-1].new_zeros((size - len(chunks[-1]), *batch.shape[1:]))]
            )
        outputs = [self._run_bound(chunk.contiguous()) for chunk in chunks]
        output = (outputs[0] if len(outputs) == 1 else torch.cat(outputs))[: len(transforms)]
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
