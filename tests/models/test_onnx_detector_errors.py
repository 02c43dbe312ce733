"""A bad model file fails at load time with a message that names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.models.config import DetectorConfig
from anjian.models.errors import ModelLoadError, ModelMetadataError
from anjian.models.metadata import parse_ultralytics_metadata
from anjian.models.onnx_detector import OnnxDetector
from anjian.models.registry import resolve_model_path
from tests.support.models import demo_model_named

onnx = pytest.importorskip("onnx", reason="onnx (the train extra) builds the test graphs")


def _identity_model(path: Path, metadata: dict[str, str]) -> Path:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 64, 64])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _constant_model(
    path: Path, output_shape: list[int | str], value_shape: tuple[int, ...], names: str
) -> Path:
    """A "detector" with output ``output_shape`` (as declared) that adds the image's mean to zeros of ``value_shape``."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, output_shape)
    zeros = numpy_helper.from_array(np.zeros(value_shape, np.float32), "zeros")
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Add", ["zeros", "mean"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [zeros])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {"names": names, "imgsz": "[64, 64]", "task": "detect", "stride": "32"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("output_shape", "value_shape", "names", "expected"),
    [
        (
            [1, 6, 84],
            (1, 6, 84),
            "{0: 'person'}",
            r"output has 6 channels but metadata 'names' lists 1 classes",
        ),
        ([1, 300, 6], (1, 300, 6), "{0: 'fire', 1: 'smoke'}", r"output has 300 channels .* NMS embedded"),
        (["batch", 300, 6], (1, 300, 6), "['person', 'car']", r"output has 300 channels"),
        (
            [1, 6, 8, 8],
            (1, 6, 8, 8),
            "{0: 'fire', 1: 'smoke'}",
            r"output shape \[1, 6, 8, 8\] is not \(batch, 6, anchors\)",
        ),
    ],
    ids=["names-cut-to-one-class", "nms-embedded", "nms-embedded-dynamic-batch", "not-rank-3"],
)
def test_an_output_that_does_not_fit_the_class_names_is_refused(
    tmp_path: Path, output_shape: list[int | str], value_shape: tuple[int, ...], names: str, expected: str
) -> None:
    path = _constant_model(tmp_path / "misfit.onnx", output_shape, value_shape, names)
    with pytest.raises(ModelMetadataError, match=r"misfit\.onnx: " + expected):
        OnnxDetector(path, DetectorConfig(device="cpu"))


def test_an_output_whose_channels_are_dynamic_is_left_to_the_first_run(tmp_path: Path) -> None:
    path = _constant_model(
        tmp_path / "dynamic.onnx", ["batch", "channels", "anchors"], (1, 6, 84), "['a', 'b']"
    )
    detector = OnnxDetector(path, DetectorConfig(device="cpu"))
    assert detector.class_names == {0: "a", 1: "b"}


def test_the_real_demo_model_with_its_names_cut_to_one_class_is_refused(tmp_path: Path) -> None:
    path = demo_model_named(tmp_path / "renamed.onnx", "{0: 'person'}")
    with pytest.raises(
        ModelMetadataError, match=r"renamed\.onnx: output has 10 channels but metadata 'names' lists 1"
    ):
        OnnxDetector(path, DetectorConfig(device="cpu"))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model file not found: .*absent\.onnx"):
        OnnxDetector(tmp_path / "absent.onnx")


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf model" * 10)
    with pytest.raises(ModelLoadError, match=r"cannot load model .*corrupt\.onnx"):
        OnnxDetector(path)


def test_truncated_real_model_is_rejected(tmp_path: Path) -> None:
    shipped = resolve_model_path("builtin:anjian-demo")
    path = tmp_path / "truncated.onnx"
    path.write_bytes(shipped.read_bytes()[: shipped.stat().st_size // 3])
    with pytest.raises(ModelLoadError, match="truncated.onnx"):
        OnnxDetector(path)


def test_model_without_class_names_is_rejected(tmp_path: Path) -> None:
    path = _identity_model(tmp_path / "nameless.onnx", {"imgsz": "[64, 64]"})
    with pytest.raises(ModelMetadataError, match=r"nameless\.onnx: no 'names' in the model metadata"):
        OnnxDetector(path, DetectorConfig(device="cpu"))


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"names": "{0: 'fire'", "imgsz": "[64, 64]"}, "not a Python literal"),
        ({"names": "{'a': 1}", "imgsz": "[64, 64]"}, "must map int ids to str names"),
        ({"names": "{0: 'fire'}", "imgsz": "[64, 64]", "task": "segment"}, "task is 'segment'"),
        (
            {"names": "{[0]: 'person'}", "imgsz": "[64, 64]"},
            r"bad\.onnx: metadata key 'names' is not a Python literal: .*\(TypeError\)",
        ),
        (
            {"names": "{0: 'fire'}", "imgsz": "['a', 640]"},
            r"bad\.onnx: metadata 'imgsz' must be a positive int",
        ),
        (
            {"names": "{0: 'fire'}", "imgsz": "[0, 64]"},
            r"bad\.onnx: metadata 'imgsz' must be .* got \[0, 64\]",
        ),
        ({"names": "{0: 'fire'}", "imgsz": "[64, 64, 3]"}, r"bad\.onnx: metadata 'imgsz' must be .* pair"),
        ({"names": "{0: 'fire'}", "imgsz": "'640'"}, r"bad\.onnx: metadata 'imgsz' must be .* got '640'"),
    ],
    ids=[
        "malformed-names",
        "names-wrong-types",
        "not-a-detector",
        "names-unhashable-key",
        "imgsz-not-a-number",
        "imgsz-zero",
        "imgsz-three-sides",
        "imgsz-a-string",
    ],
)
def test_bad_metadata_is_explained(tmp_path: Path, metadata: dict[str, str], expected: str) -> None:
    path = _identity_model(tmp_path / "bad.onnx", metadata)
    with pytest.raises(ModelMetadataError, match=expected):
        OnnxDetector(path, DetectorConfig(device="cpu"))


def test_unknown_builtin_lists_the_shipped_ones() -> None:
    with pytest.raises(ModelLoadError, match=r"no builtin model 'nope'; shipped models: .*anjian-demo"):
        resolve_model_path("builtin:nope")


@pytest.mark.parametrize("stride", ["²", "0", "x"], ids=["superscript-digit", "zero", "not-a-number"])
def test_a_stride_that_is_no_positive_number_falls_back_to_32(stride: str) -> None:
    props = {"names": "{0: 'fire'}", "imgsz": "[64, 64]", "stride": stride}
    info = parse_ultralytics_metadata(props, source="m.onnx", fallback_hw=None, digest="abc")
    assert info.stride == 32
