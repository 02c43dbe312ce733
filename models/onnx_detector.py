"""Run an ultralytics-exported YOLO detector with ONNX Runtime, batched, on CPU or GPU."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.config import DetectorConfig
from models.detections import Detections
from models.errors import ModelLoadError
from models.metadata import ModelInfo, file_digest, parse_ultralytics_metadata
from models.postprocess import decode_yolo_output
from models.preprocess import letterbox_batch

__all__ = ["OnnxDetector"]

logger = logging.getLogger(__name__)


def _providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if device in ("auto", "cuda") else []
    chosen = [p for p in wanted if p in available]
    if device == "cuda" and not chosen:
        raise ModelLoadError(f"device 'cuda' asked for, but ONNX Runtime offers only {available}")
    return [*chosen, "CPUExecutionProvider"]


class OnnxDetector:
    """A YOLO detector (ultralytics ONNX export, NMS not embedded) run by ONNX Runtime.

    Class names, input size and task come from the file's metadata, so a model
    carries its own label map. Images of any size are letterboxed; boxes come back
    in each image's own pixels.

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
                str(self.path), sess_options=options, providers=_providers(self.config.device)
            )
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped pybind errors
            raise ModelLoadError(f"cannot load model {self.path}: {str(exc).strip()[:300]}") from None
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        shape = model_input.shape
        fallback_hw = (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
        self._is_dynamic_batch = not isinstance(shape[0], int)
        self._fp16 = model_input.type == "tensor(float16)"
        props = dict(self._session.get_modelmeta().custom_metadata_map)
        self.info: ModelInfo = parse_ultralytics_metadata(
            props, source=self.path.name, fallback_hw=fallback_hw, digest=file_digest(self.path)
        )
        logger.info(
            "loaded %s (%d classes, input %s, providers %s)",
            self.info.version,
            len(self.info.class_names),
            self.info.input_hw,
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

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect objects in each BGR image.

        Args:
            images: ``(h, w, 3) uint8`` BGR images, any sizes.

        Returns:
            One ``Detections`` per image, boxes in that image's pixels.
        """
        if not images:
            return []
        batch, transforms = letterbox_batch(list(images), self.info.input_hw)
        if self._fp16:
            batch = batch.astype(np.float16)
        if self._is_dynamic_batch:
            outputs = self._session.run(None, {self._input_name: batch})[0]
        else:
            outputs = np.concatenate(
                [self._session.run(None, {self._input_name: batch[i : i + 1]})[0] for i in range(len(images))]
            )
        results = []
        for output, transform, image in zip(outputs, transforms, images, strict=True):
            xyxy, confidence, class_id = decode_yolo_output(
                output.astype(np.float32, copy=False),
                self.config.confidence_threshold,
                self.config.iou_threshold,
                self.config.max_detections,
            )
            xyxy = transform.boxes_to_original(xyxy, (image.shape[1], image.shape[0]))
            results.append(
                Detections(xyxy=xyxy, confidence=confidence, class_id=class_id, class_names=self.class_names)
            )
        return results
