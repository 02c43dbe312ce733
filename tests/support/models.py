"""Model files for tests, made from the shipped demo detector, and one that loads but cannot run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from anjian.models.registry import resolve_model_path

__all__ = ["demo_model_named", "demo_model_with", "unrunnable_model"]


def demo_model_with(path: Path, metadata: dict[str, str]) -> Path:
    """The demo detector (a static 320x320 graph) saved at ``path`` with the given metadata entries replaced."""
    model = onnx.load(str(resolve_model_path("builtin:anjian-demo")))
    for entry in model.metadata_props:
        if entry.key in metadata:
            entry.value = metadata[entry.key]
    onnx.save(model, str(path))
    return path


def demo_model_named(path: Path, names: str) -> Path:
    """The demo detector (fire, smoke) saved at ``path`` with its ``names`` metadata replaced by ``names``."""
    return demo_model_with(path, {"names": names})


def unrunnable_model(path: Path) -> Path:
    """A graph that loads (names fit its declared ``(batch, 6, anchors)`` output) but cannot reshape a real image."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, 2100])
    shape = numpy_helper.from_array(np.array([-1, 6, 2100], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["images", "shape"], ["output0"])], "g", [images], [output], [shape]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {"names": "{0: 'fire', 1: 'smoke'}", "imgsz": "[64, 64]", "task": "detect"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
