"""The interface every detector backend implements, and the part of it every model file gives the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from anjian.models.config import DetectorConfig
from anjian.models.detections import Detections
from anjian.models.errors import ModelLoadError
from anjian.models.metadata import ModelInfo

__all__ = ["Detector", "FileDetector", "PendingDetections", "host_images", "start_detection"]


@runtime_checkable
class Detector(Protocol):
    """Something that finds objects in BGR images (ONNX Runtime, ultralytics, ...)."""

    @property
    def class_names(self) -> dict[int, str]:
        """Class id to name."""
        ...

    @property
    def version(self) -> str:
        """Version string recorded in events."""
        ...

    @property
    def class_thresholds(self) -> dict[str, float]:
        """Calibrated operating score per class name (empty when the model carries none).

        Rules whose site config leaves ``min_confidence`` unset use these.
        """
        ...

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Return one ``Detections`` per ``(h, w, 3) uint8`` BGR image, in its pixels."""
        ...


class FileDetector:
    """A detector loaded from one model file: its path, its config and the ``ModelInfo`` it carries.

    The base of every backend (ONNX Runtime, OpenVINO, ultralytics): it checks the file is
    there and answers the ``Detector`` properties from ``info``, which the subclass sets
    while loading; the subclass implements ``detect``.

    Raises:
        ModelLoadError: The file is missing.
    """

    info: ModelInfo

    def __init__(self, path: Path, config: DetectorConfig | None = None) -> None:
        self.path = Path(path)
        self.config = config or DetectorConfig()
        if not self.path.is_file():
            raise ModelLoadError(f"model file not found: {self.path}")

    @property
    def class_names(self) -> dict[int, str]:
        """Class id to name, from the model file."""
        return self.info.class_names

    @property
    def version(self) -> str:
        """Version string recorded in events (the file's name and a digest of its content)."""
        return self.info.version

    @property
    def class_thresholds(self) -> dict[str, float]:
        """Calibrated operating score per class name, from the model's metadata (empty when it carries none)."""
        return self.info.class_thresholds


class PendingDetections:
    """Detections being computed: ``result()`` waits for them (once; later calls return the same list).

    Args:
        finish: Waits for the model and returns the detections.
        is_ready: Whether the model has finished (``result()`` would not wait for it); a
            backend that cannot tell counts as finished, so a caller never waits on it for nothing.
    """

    def __init__(
        self, finish: Callable[[], list[Detections]], *, is_ready: Callable[[], bool] | None = None
    ) -> None:
        self._finish: Callable[[], list[Detections]] | None = finish
        self._is_ready = is_ready
        self._result: list[Detections] = []

    @classmethod
    def done(cls, detections: list[Detections]) -> PendingDetections:
        """Detections already computed."""
        pending = cls(lambda: detections)
        pending.result()
        return pending

    def is_ready(self) -> bool:
        """Whether the model is done with these images (``result()`` then only decodes its output)."""
        return self._finish is None or self._is_ready is None or self._is_ready()

    def result(self) -> list[Detections]:
        """One ``Detections`` per image submitted, in order."""
        if self._finish is not None:
            finish, self._finish = self._finish, None
            self._result = finish()
        return self._result


def start_detection(detector: Detector, images: Sequence[Any]) -> PendingDetections:
    """Start detecting objects in ``images`` and return at once where the backend can, else detect now.

    A backend that runs batches concurrently (OpenVINO's infer requests) offers
    ``detect_async``: the caller then prepares the next batch while the model works on
    this one, and the model is never left idle between batches. Any other detector
    answers synchronously, so every ``Detector`` can be used this way.
    """
    detect_async = getattr(detector, "detect_async", None)
    if detect_async is not None:
        pending: PendingDetections = detect_async(images)
        return pending
    return PendingDetections.done(detector.detect(images))


def host_images(images: Sequence[Any]) -> list[np.ndarray]:
    """The images as numpy arrays: CUDA tensors (frames decoded on the GPU) are downloaded, arrays pass as they are."""
    return [im if isinstance(im, np.ndarray) else im.cpu().numpy() for im in images]
