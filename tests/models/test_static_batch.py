"""A user's own static-batch export (ultralytics' default ``batch=1``) runs batched on every backend."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from anjian.models.config import DetectorConfig
from anjian.models.loader import load_detector
from tests.support.real_data import require_shared_data


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_a_batch_of_three_through_a_batch_one_export_equals_one_image_at_a_time(backend: str) -> None:
    weights = require_shared_data("weights", "coco_yolov8n_int8.onnx")  # input [1, 3, 640, 640]
    frames = sorted(require_shared_data("forklift_person", "images", "val").iterdir())[:3]
    images = [cv2.imread(str(f)) for f in frames]
    detector = load_detector(
        weights, DetectorConfig(path=str(weights), backend=backend, cpu_precision="fp32", device="cpu")
    )

    batched = detector.detect(images)
    single = [detector.detect([image])[0] for image in images]

    assert len(batched) == 3
    assert sum(len(d) for d in batched) > 0
    if backend == "openvino":  # every request takes the export's one image, however large the batch
        assert detector.request_chunk(3) == 1  # type: ignore[attr-defined]
    for a, b in zip(batched, single, strict=True):
        assert np.array_equal(a.class_id, b.class_id)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
