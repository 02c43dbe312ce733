"""The ONNX backend finds the same boxes as ultralytics' own ``predict`` on the same model and images.

The model is the real COCO YOLOv8n: its float weights are recovered from the shared
int8 file (``anjian.training.coco_init``), saved as a ``.pt``, and exported to a dynamic-shape
ONNX file by ultralytics; both then run on real images (warehouse photos with people,
and frames of a 16:9 video, which exercise the stride-multiple letterbox).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from anjian.models.boxes import box_iou_batch
from anjian.models.config import DetectorConfig
from anjian.models.detections import Detections
from anjian.models.errors import ModelLoadError
from anjian.models.loader import load_detector
from anjian.models.onnx_detector import OnnxDetector

pytest.importorskip("ultralytics", reason="ultralytics (the train extra) is the reference")
pytest.importorskip("onnx", reason="onnx (the train extra) reads the int8 weights")

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
COCO_INT8 = SHARED / "weights" / "coco_yolov8n_int8.onnx"
PERSON_IMAGES = SHARED / "forklift_person" / "images" / "val"
PEOPLE_CLIP = SHARED / "videos" / "people_one_by_one.mp4"
MIN_SCORE = 0.3  # boxes this far above the 0.25 threshold must be found by both backends

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not COCO_INT8.is_file(), reason=f"needs the shared COCO detector under {SHARED}"),
]


@pytest.fixture(scope="module")
def coco_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The recovered COCO model as ``.pt`` and as a dynamic-shape ONNX export of it."""
    from ultralytics import YOLO

    from anjian.training.coco_init import save_recovered_checkpoint

    folder = tmp_path_factory.mktemp("coco")
    pt_path = save_recovered_checkpoint(COCO_INT8, folder / "coco_yolov8n.pt")
    onnx_path = Path(YOLO(str(pt_path)).export(format="onnx", dynamic=True, imgsz=640, simplify=False))
    return pt_path, onnx_path


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    labelled = sorted((SHARED / "forklift_person" / "labels" / "val").glob("*.txt"))
    with_people = [p for p in labelled if any(line.startswith("1 ") for line in p.read_text().splitlines())]
    photos = [cv2.imread(str(PERSON_IMAGES / f"{p.stem}.jpg")) for p in with_people[:6]]
    frames = []
    with av.open(str(PEOPLE_CLIP)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in (100, 300):  # a person in view, 768x432
                frames.append(frame.to_ndarray(format="bgr24"))
            if i > 300:
                break
    return [im for im in photos if im is not None] + frames


def _unmatched(reference: Detections, candidate: Detections) -> list[str]:
    """Confident boxes of ``reference`` with no same-class box in ``candidate`` at IoU >= 0.95."""
    misses = []
    for box, score, cls in zip(reference.xyxy, reference.confidence, reference.class_id, strict=True):
        if score < MIN_SCORE:
            continue
        same_class = candidate.xyxy[candidate.class_id == cls]
        best = float(box_iou_batch(box[None], same_class).max()) if len(same_class) else 0.0
        if best < 0.95:
            misses.append(f"class {cls} score {score:.2f} best IoU {best:.3f}")
    return misses


def _has_openvino() -> bool:
    from anjian.models.openvino_detector import openvino_available

    return openvino_available()


def _has_native_bf16() -> bool:
    from anjian.models.openvino_detector import cpu_has_native_bf16

    return cpu_has_native_bf16()


@pytest.mark.parametrize(
    ("backend", "precision"),
    [
        ("onnxruntime", "fp32"),
        pytest.param(
            "openvino",
            "fp32",
            marks=pytest.mark.skipif(
                not _has_openvino(), reason="openvino (a base dependency) does not import here"
            ),
        ),
        pytest.param(
            "openvino",
            "bf16",
            marks=pytest.mark.skipif(
                not _has_native_bf16(), reason="openvino not installed, or this CPU has no native bf16"
            ),
        ),
    ],
    ids=["onnxruntime", "openvino-fp32", "openvino-bf16"],
)
def test_onnx_backend_matches_ultralytics_predict(
    coco_models: tuple[Path, Path], images: list[np.ndarray], backend: str, precision: str
) -> None:
    from ultralytics import YOLO

    pt_path, onnx_path = coco_models
    reference_model = YOLO(str(pt_path))
    config = DetectorConfig(device="cpu", backend=backend, cpu_precision=precision)  # type: ignore[arg-type]
    detector: Any = load_detector(onnx_path, config)
    assert type(detector).__name__ == {"onnxruntime": "OnnxDetector", "openvino": "OpenVinoDetector"}[backend]
    if backend == "openvino":
        assert detector.precision == precision
    assert detector.class_names[0] == "person" and len(detector.class_names) == 80

    found = 0
    for image in images:
        [result] = reference_model.predict(image, imgsz=640, conf=0.25, iou=0.45, verbose=False)
        reference = Detections(
            xyxy=result.boxes.xyxy.numpy().astype(np.float32),
            confidence=result.boxes.conf.numpy().astype(np.float32),
            class_id=result.boxes.cls.numpy().astype(np.int32),
        )
        [ours] = detector.detect([image])
        assert _unmatched(reference, ours) == []
        assert _unmatched(ours, reference) == []
        found += int((reference.confidence >= MIN_SCORE).sum())
    assert found >= len(images), "the images should hold confident detections to compare"


def test_batched_detection_equals_one_by_one(
    coco_models: tuple[Path, Path], images: list[np.ndarray]
) -> None:
    detector = OnnxDetector(coco_models[1], DetectorConfig(device="cpu"))
    batched = detector.detect(images)
    for image, together in zip(images, batched, strict=True):
        [alone] = detector.detect([image])
        assert _unmatched(alone, together) == [] and _unmatched(together, alone) == []


def test_loader_picks_the_backend_by_file_type(coco_models: tuple[Path, Path], tmp_path: Path) -> None:
    from anjian.models.yolo_detector import YoloDetector

    pt_path, onnx_path = coco_models
    config = DetectorConfig(device="cpu")
    yolo = load_detector(pt_path, config)
    assert isinstance(yolo, YoloDetector) and yolo.class_names[0] == "person"
    assert yolo.info.input_hw == (640, 640)
    onnx_config = DetectorConfig(device="cpu", backend="onnxruntime")
    assert isinstance(load_detector(onnx_path, onnx_config), OnnxDetector)
    weights = tmp_path / "model.tflite"
    weights.write_bytes(b"0")
    with pytest.raises(ModelLoadError, match="unsupported model format '.tflite'"):
        load_detector(weights, config)


def test_int8_file_runs_as_it_is() -> None:
    detector = OnnxDetector(COCO_INT8, DetectorConfig(device="cpu"))
    assert detector.info.input_hw == (640, 640)
    assert detector.detect([np.zeros((432, 768, 3), np.uint8)])[0].xyxy.shape == (0, 4)
