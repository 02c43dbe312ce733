"""A model whose ``imgsz`` metadata contradicts its static graph input is refused at load, in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.models.config import DetectorConfig
from anjian.models.errors import ModelMetadataError
from anjian.models.loader import load_detector, probe_detector
from tests.support.models import demo_model_with

BACKENDS = ["onnxruntime", "openvino"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_imgsz_metadata_other_than_the_graphs_static_input_is_refused_at_load(
    tmp_path: Path, backend: str
) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    path = demo_model_with(tmp_path / "m.onnx", {"imgsz": "[640, 640]"})
    with pytest.raises(ModelMetadataError, match=r"imgsz metadata 640x640 but the graph's input is 320x320"):
        load_detector(path, DetectorConfig(device="cpu", backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_imgsz_metadata_that_matches_the_graph_loads_and_runs(tmp_path: Path, backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    path = demo_model_with(tmp_path / "m.onnx", {"imgsz": "[320, 320]"})
    detector = load_detector(path, DetectorConfig(device="cpu", backend=backend))
    assert detector.info.input_hw == (320, 320) and probe_detector(detector) is None
