"""A bad model file fails at load time with a message that names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.models.config import DetectorConfig
from anjian.models.errors import ModelLoadError, ModelMetadataError
from anjian.models.onnx_detector import OnnxDetector
from anjian.models.registry import resolve_model_path

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
    ],
    ids=["malformed-names", "names-wrong-types", "not-a-detector"],
)
def test_bad_metadata_is_explained(tmp_path: Path, metadata: dict[str, str], expected: str) -> None:
    path = _identity_model(tmp_path / "bad.onnx", metadata)
    with pytest.raises(ModelMetadataError, match=expected):
        OnnxDetector(path, DetectorConfig(device="cpu"))


def test_unknown_builtin_lists_the_shipped_ones() -> None:
    with pytest.raises(ModelLoadError, match=r"no builtin model 'nope'; shipped models: .*anjian-demo"):
        resolve_model_path("builtin:nope")
