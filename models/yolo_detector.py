"""Run an ultralytics ``.pt`` detector with PyTorch (the ``train`` extra; never on the runtime path).

Useful to check a freshly trained checkpoint before exporting it, and as the
reference the ONNX backend is compared with. ultralytics is imported when a
``YoloDetector`` is created, not when this module is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anjian.models.config import DetectorConfig
from anjian.models.detections import Detections
from anjian.models.detector import FileDetector, host_images
from anjian.models.errors import ModelLoadError, ModelMetadataError
from anjian.models.metadata import ModelInfo, file_digest

__all__ = ["YoloDetector"]

logger = logging.getLogger(__name__)


def _imgsz(value: object) -> tuple[int, int] | None:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    return None


class YoloDetector(FileDetector):
    """A YOLO ``.pt`` checkpoint run by ultralytics' own ``predict``.

    Class names, input size and task are read from the checkpoint. Images of any
    size go in; boxes come back in each image's pixels. A checkpoint carries no
    calibrated thresholds (``anjian export`` stamps them into the ONNX file), so
    ``class_thresholds`` is empty.

    Example:
        >>> detector = YoloDetector(Path("best.pt"), DetectorConfig(device="cpu"))
        >>> [dets] = detector.detect([image_bgr])
    """

    def __init__(self, path: Path, config: DetectorConfig | None = None) -> None:
        """Load the checkpoint.

        Raises:
            ModelLoadError: The file is missing, ultralytics is not installed, or it cannot load the file.
            ModelMetadataError: The checkpoint is not a detection model.
        """
        super().__init__(path, config)
        os.environ.setdefault("YOLO_OFFLINE", "1")
        try:
            from ultralytics import YOLO  # type: ignore[attr-defined]
        except ImportError:
            raise ModelLoadError(
                f"{self.path.name}: .pt models need ultralytics, from the train extra (pip install -e '.[train]'); "
                "export to ONNX for the runtime"
            ) from None
        try:
            self._model = YOLO(str(self.path))
        except Exception as exc:  # noqa: BLE001 - ultralytics/torch raise many unrelated types
            raise ModelLoadError(f"cannot load model {self.path}: {str(exc).strip()[:300]}") from None
        task = self._model.task
        if task != "detect":
            raise ModelMetadataError(f"{self.path.name}: task is {task!r}; anjian runs 'detect' models")
        args = getattr(self._model.model, "args", {}) or {}
        input_hw = _imgsz(self._model.overrides.get("imgsz")) or _imgsz(args.get("imgsz")) or (640, 640)
        names = {int(k): str(v) for k, v in self._model.names.items()}
        stride = int(max(getattr(self._model.model, "stride", [32])))
        self.info = ModelInfo(
            class_names=names,
            input_hw=input_hw,
            task=task,
            version=f"{self.path.stem}@{file_digest(self.path)}",
            stride=stride,
        )
        self._device = "cpu" if self.config.device == "cpu" else None  # None: ultralytics picks
        logger.info(
            "loaded %s with ultralytics (%d classes, input %s)", self.info.version, len(names), input_hw
        )

    def detect(self, images: Sequence[Any]) -> list[Detections]:
        """Detect objects in each ``(h, w, 3) uint8`` BGR image (numpy; tensors are downloaded)."""
        if not images:
            return []
        cfg = self.config
        results: Any = self._model.predict(
            host_images(images),
            imgsz=list(self.info.input_hw),
            conf=cfg.confidence_threshold,
            iou=cfg.iou_threshold,
            max_det=cfg.max_detections,
            device=self._device,
            verbose=False,
        )
        return [self._to_detections(r.boxes) for r in results]

    def _to_detections(self, boxes: Any) -> Detections:
        return Detections(
            xyxy=boxes.xyxy.cpu().numpy().astype(np.float32),
            confidence=boxes.conf.cpu().numpy().astype(np.float32),
            class_id=boxes.cls.cpu().numpy().astype(np.int32),
            class_names=self.class_names,
        )
