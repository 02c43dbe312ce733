"""What both runtimes of an ONNX export share: static-batch chunking, the metadata read and the detect loop.

A tiny hand-built "detector" (one box whose size and score follow the image's brightness) makes the
loop checkable without real weights: exported with a static batch of 2, it must take batches of any
size on both backends, and give what it gives one image at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anjian.models.config import DetectorConfig
from anjian.models.detector import FileDetector
from anjian.models.errors import ModelLoadError
from anjian.models.onnx_detector import OnnxDetector
from anjian.models.onnx_export import ExportDetector, fixed_batch_chunks
from anjian.models.openvino_detector import OpenVinoDetector, openvino_available

onnx = pytest.importorskip("onnx", reason="onnx (the train extra) builds the test graphs")

_ANCHORS = 8 * 8 + 4 * 4 + 2 * 2  # a 64x64 input at strides 8, 16, 32


@pytest.mark.parametrize(
    ("size", "expected_lengths"),
    [(1, [1, 1, 1]), (2, [2, 2]), (3, [3]), (4, [4])],
    ids=["batch-1", "batch-2", "exact", "larger-than-the-batch"],
)
def test_fixed_batch_chunks_fill_the_last_chunk_with_blank_images(
    size: int, expected_lengths: list[int]
) -> None:
    batch = np.arange(1, 4, dtype=np.float32).reshape(3, 1, 1, 1) * np.ones((3, 3, 2, 2), np.float32)
    chunks = fixed_batch_chunks(batch, size)
    assert [len(c) for c in chunks] == expected_lengths
    joined = np.concatenate(chunks)
    np.testing.assert_array_equal(joined[:3], batch)
    assert not joined[3:].any(), "the filling images are blank"


def _brightness_detector(
    path: Path, batch: int | str, hw: tuple[int | str, int | str] = (64, 64), imgsz: int = 64
) -> Path:
    """An ONNX "detector" whose one box (centre 32,32, side 40*b) scores b, the image's mean brightness in 0..1.

    ``hw`` names the input's height and width (``"height", "width"``: a dynamic-shape export of nominal size ``imgsz``).
    """
    from onnx import TensorProto, helper, numpy_helper

    pattern = np.zeros((1, 5, _ANCHORS), np.float32)
    pattern[0, :, 0] = [32.0, 32.0, 40.0, 40.0, 1.0]
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *hw])
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 5, _ANCHORS])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "pattern"], ["output0"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
        numpy_helper.from_array(pattern, "pattern"),
    ]
    graph = helper.make_graph(nodes, "brightness", [images], [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {
        "names": "{0: 'light'}",
        "imgsz": f"[{imgsz}, {imgsz}]",
        "stride": "32",
        "task": "detect",
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


_BACKENDS = [
    pytest.param(OnnxDetector, id="onnxruntime"),
    pytest.param(
        OpenVinoDetector,
        id="openvino",
        marks=pytest.mark.skipif(not openvino_available(), reason="openvino is not installed"),
    ),
]


@pytest.mark.parametrize("backend", _BACKENDS)
@pytest.mark.parametrize("batch", [2, "batch"], ids=["static-batch-2", "dynamic-batch"])
def test_both_backends_detect_any_number_of_images_through_a_static_or_dynamic_export(
    tmp_path: Path, backend: type[ExportDetector], batch: int | str
) -> None:
    path = _brightness_detector(tmp_path / "bright.onnx", batch)
    detector = backend(path, DetectorConfig(device="cpu", cpu_precision="fp32", confidence_threshold=0.5))
    assert isinstance(detector, FileDetector) and detector.class_names == {0: "light"}
    assert detector.version.startswith("bright@") and detector.class_thresholds == {}
    images = [np.full((64, 64, 3), value, np.uint8) for value in (255, 0, 255)]

    together = detector.detect(images)
    alone = [detector.detect([image])[0] for image in images]

    assert [len(d) for d in together] == [1, 0, 1], "the dark image (score 0) has no box, the bright ones one"
    np.testing.assert_allclose(together[0].xyxy, [[12, 12, 52, 52]], atol=1e-3)
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-4)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
    assert detector.detect([]) == []


@pytest.mark.parametrize("backend", _BACKENDS)
def test_both_backends_name_a_missing_file(tmp_path: Path, backend: type[ExportDetector]) -> None:
    with pytest.raises(ModelLoadError, match=r"model file not found: .*absent\.onnx"):
        backend(tmp_path / "absent.onnx", DetectorConfig(device="cpu"))


@pytest.mark.parametrize("backend", _BACKENDS)
def test_more_static_chunks_than_streams_all_run_and_two_batches_in_flight_keep_their_own(
    tmp_path: Path, backend: type[ExportDetector]
) -> None:
    """A batch-1 export cut into five chunks (more than the CPU's streams), two batches started before either is read."""
    from anjian.models.detector import start_detection

    path = _brightness_detector(tmp_path / "bright1.onnx", 1)
    detector = backend(path, DetectorConfig(device="cpu", cpu_precision="fp32", confidence_threshold=0.05))
    first = [np.full((64, 64, 3), value, np.uint8) for value in (255, 0, 128, 64, 200)]
    second = [np.full((64, 64, 3), value, np.uint8) for value in (30, 250, 0, 100)]
    expected_first, expected_second = detector.detect(first), detector.detect(second)

    running, queued = start_detection(detector, first), start_detection(detector, second)

    for got, expected in ((queued.result(), expected_second), (running.result(), expected_first)):
        assert [len(d) for d in got] == [len(d) for d in expected]
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-5)
    assert [round(float(d.confidence[0]), 2) for d in expected_first if len(d)] == [1.0, 0.5, 0.25, 0.78]


@pytest.mark.parametrize("backend", _BACKENDS)
def test_a_frame_runs_at_the_nominal_size_or_at_what_a_dynamic_shape_needs(
    tmp_path: Path, backend: type[ExportDetector]
) -> None:
    """What a benchmark of the model alone feeds to compare with the pipeline: 1280x720 at 640 is 448x640 when dynamic."""
    config = DetectorConfig(device="cpu", cpu_precision="fp32")
    static = backend(_brightness_detector(tmp_path / "static.onnx", "batch", (640, 640), 640), config)
    dynamic = backend(
        _brightness_detector(tmp_path / "dynamic.onnx", "batch", ("height", "width"), 640), config
    )
    padded = backend(
        _brightness_detector(tmp_path / "padded.onnx", "batch", ("height", "width"), 640),
        DetectorConfig(device="cpu", cpu_precision="fp32", minimal_padding=False),
    )

    assert static.input_hw_for((1280, 720)) == (640, 640)
    assert dynamic.input_hw_for((1280, 720)) == (448, 640)  # 360 rows and a 32-px band each side
    assert dynamic.input_hw_for((480, 640)) == (640, 544)
    assert padded.input_hw_for((1280, 720)) == (640, 640)
