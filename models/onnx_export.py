"""What every runtime of an ultralytics ONNX export shares: reading the file's metadata and input shape,
the detect loop on the host (letterbox, infer, decode, boxes back to each image's pixels) and the
chunking a static-batch export needs.

``OnnxDetector`` (ONNX Runtime) and ``OpenVinoDetector`` (OpenVINO) derive from ``ExportDetector``
and bring only how their runtime loads the file and runs a batch (``_infer``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from anjian.models.detections import Detections
from anjian.models.detector import FileDetector, host_images
from anjian.models.errors import ModelLoadError, ModelMetadataError
from anjian.models.metadata import file_digest, floor_to_thresholds, parse_ultralytics_metadata
from anjian.models.postprocess import decode_outputs
from anjian.models.preprocess import LetterboxTransform, letterbox_batch, letterbox_shape

__all__ = ["ExportDetector", "RawDetections", "fixed_batch_chunks", "open_session"]

RawDetections = tuple[np.ndarray, np.ndarray, np.ndarray, LetterboxTransform]
"""One image's boxes, scores and class ids in model-input pixels, and the letterbox that maps them back."""


def open_session(
    path: Path,
    *,
    providers: Sequence[str | tuple[str, dict[str, Any]]] = ("CPUExecutionProvider",),
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """An ONNX Runtime session over ``path``.

    Raises:
        ModelLoadError: ONNX Runtime cannot load the file (corrupt, truncated, not ONNX), with its reason.
    """
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped pybind errors
        raise ModelLoadError(f"cannot load model {path}: {str(exc).strip()[:300]}") from None


def fixed_batch_chunks(batch: np.ndarray, size: int) -> list[np.ndarray]:
    """``batch`` cut into chunks of exactly ``size`` images, the last filled up with blank ones.

    A static-batch export (ultralytics' default: ``batch=1``) takes exactly ``size`` images
    per run; the caller drops the outputs of the blank images (``[: len(batch)]``).
    """
    chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
    last = chunks[-1]
    if len(last) < size:
        blank = np.zeros((size - len(last), *last.shape[1:]), last.dtype)
        chunks[-1] = np.concatenate([last, blank])
    return chunks


def _check_output(shape: Sequence[int | str | None] | None, class_names: dict[int, str], source: str) -> None:
    """Refuse an output that is not ``(batch, 4 + classes, anchors)`` for ``class_names``.

    A file whose names were edited, or an export with NMS embedded (``(1, 300, 6)``), would
    otherwise load and label every box with the wrong class. Only a dimension the graph fixes
    is checked: a dynamic one (a name, or None) is left to the first run, and so is an output
    of unknown rank.

    Raises:
        ModelMetadataError: The output is not rank 3, or its fixed channel count is not ``4 + len(class_names)``.
    """
    if shape is None:
        return
    expected = 4 + len(class_names)
    if len(shape) != 3:
        raise ModelMetadataError(
            f"{source}: output shape {list(shape)} is not (batch, {expected}, anchors); "
            "anjian runs ultralytics detect exports without embedded NMS"
        )
    channels = shape[1]
    if isinstance(channels, int) and channels != expected:
        raise ModelMetadataError(
            f"{source}: output has {channels} channels but metadata 'names' lists {len(class_names)} "
            f"classes (expected 4 + {len(class_names)} = {expected}); the names do not fit this model, "
            "or it is an export with NMS embedded"
        )


def _check_input_hw(metadata_hw: tuple[int, int], graph_hw: tuple[int, int] | None, source: str) -> None:
    """Refuse ``imgsz`` metadata that a static graph input contradicts.

    Frames would be letterboxed to the metadata's size and every inference would fail on the
    graph's, with the runtime's message (OpenVINO's is internals cut before the point).

    Raises:
        ModelMetadataError: The graph's input height and width are fixed and differ from the metadata's.
    """
    if graph_hw is None or tuple(graph_hw) == tuple(metadata_hw):
        return
    raise ModelMetadataError(
        f"{source}: imgsz metadata {metadata_hw[0]}x{metadata_hw[1]} but the graph's input is "
        f"{graph_hw[0]}x{graph_hw[1]}: the file's metadata does not describe this graph (re-export it, "
        "or correct its 'imgsz')"
    )


class ExportDetector(FileDetector, ABC):
    """A YOLO detector from an ultralytics ONNX export (NMS not embedded), whatever runtime runs it.

    Class names, input size and task come from the file's metadata, so a model carries its
    own label map. Images of any size are letterboxed (only to the stride multiple they need
    when the model's input height and width are dynamic); boxes come back in each image's
    own pixels. Not thread-safe: one analysis thread calls ``detect``.

    A subclass checks the file (``FileDetector``), calls ``_read_export`` with an ONNX Runtime
    session over it, and implements ``_infer``; it may override ``_detect_raw`` (the ONNX
    Runtime backend keeps CUDA frames on the GPU).
    """

    def _read_export(self, session: ort.InferenceSession) -> None:
        """Take the model's metadata and input shape from ``session``; floor the thresholds to its calibrated ones.

        Raises:
            ModelMetadataError: It lacks class names or an input size, is not a detector, its
                ``imgsz`` metadata differs from a static graph input, or its output does not
                fit its class names (``_check_output``).
        """
        shape = session.get_inputs()[0].shape
        fixed_hw = (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
        self._is_dynamic_hw = fixed_hw is None
        self._fixed_batch: int | None = shape[0] if isinstance(shape[0], int) else None
        props = dict(session.get_modelmeta().custom_metadata_map)
        self.info = parse_ultralytics_metadata(
            props, source=self.path.name, fallback_hw=fixed_hw, digest=file_digest(self.path)
        )
        _check_input_hw(self.info.input_hw, fixed_hw, self.path.name)
        _check_output(session.get_outputs()[0].shape, self.info.class_names, self.path.name)
        self.config = floor_to_thresholds(self.config, self.info)
        self._stride = self.info.stride if self._is_dynamic_hw and self.config.minimal_padding else None

    def input_hw_for(self, resolution_wh: tuple[int, int]) -> tuple[int, int]:
        """The model input ``(height, width)`` a frame of this size runs at.

        The nominal input size for a static-shape model; for a dynamic-shape one only what
        the scaled frame needs (a 16:9 frame: 448x640 of a 640x640 model). What a
        benchmark of the model alone must feed to be compared with the pipeline.
        """
        return letterbox_shape([resolution_wh], self.info.input_hw, self._stride)

    def detect(self, images: Sequence[Any]) -> list[Detections]:
        """Detect objects in each BGR image.

        Args:
            images: ``(h, w, 3) uint8`` BGR images, any sizes: numpy arrays, or CUDA tensors
                (frames decoded on the GPU; downloaded unless the backend runs on the GPU).

        Returns:
            One ``Detections`` per image, boxes in that image's pixels.
        """
        if not images:
            return []
        return self._in_image_pixels(self._detect_raw(images), images)

    def _in_image_pixels(self, raw: list[RawDetections], images: Sequence[Any]) -> list[Detections]:
        """Each image's raw detections as ``Detections`` in that image's own pixels."""
        results = []
        for (xyxy, confidence, class_id, transform), image in zip(raw, images, strict=True):
            xyxy = transform.boxes_to_original(xyxy, (int(image.shape[1]), int(image.shape[0])))
            results.append(
                Detections(xyxy=xyxy, confidence=confidence, class_id=class_id, class_names=self.class_names)
            )
        return results

    def _detect_raw(self, images: Sequence[Any]) -> list[RawDetections]:
        """Letterbox on the CPU, ``_infer``, decode: each image's boxes in model-input pixels."""
        batch, transforms = self._letterbox(host_images(images))
        return decode_outputs(self._infer(batch), transforms, self.config)

    def _letterbox(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[LetterboxTransform]]:
        """The model input for ``images`` and each one's transform: ``letterbox_batch``'s floats.

        A backend whose model converts the frames itself feeds something else (OpenVINO: bytes).
        """
        return letterbox_batch(images, self.info.input_hw, stride=self._stride)

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model: ``(b, 3, H, W) float32`` in, ``(b, 4 + classes, anchors)`` out, any batch size."""
