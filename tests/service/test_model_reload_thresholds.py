"""A promoted model's calibrated thresholds reach the running pipeline with the model, and leave with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.models.config import DetectorConfig
from anjian.models.loader import load_detector
from anjian.models.registry import promote, register_version, resolve_model_path, rollback
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.runner import CameraAssignment, PipelineRunner
from anjian.pipeline.sink import ListSink
from anjian.service.model_reload import ModelReloader
from tests.support.clips import make_test_clip
from tests.support.waiting import wait_for

pytest.importorskip("onnx", reason="onnx (the train extra) stamps the thresholds")


def test_promoting_a_calibrated_version_swaps_in_its_thresholds(tmp_path: Path) -> None:
    from anjian.training.thresholds import stamp_thresholds

    registry = tmp_path / "registry"
    demo = resolve_model_path("builtin:anjian-demo")
    register_version("flame", demo, {}, "# uncalibrated\n", version="1", root=registry)
    calibrated = stamp_thresholds(demo, {"fire": 0.2, "smoke": 0.3}, tmp_path / "calibrated.onnx")
    register_version("flame", calibrated, {"thresholds": {"fire": 0.2}}, "# v2\n", version="2", root=registry)
    promote("flame", "1", root=registry)

    clip = make_test_clip(tmp_path / "clip.mp4", seconds=2, fps=10, size_wh=(160, 120))
    camera = CameraPipelineConfig(id="cam", url=str(clip), analysis_fps=5, loop=True)
    detector = load_detector(resolve_model_path("builtin:flame", root=registry), DetectorConfig(device="cpu"))
    runner = PipelineRunner("site", [CameraAssignment("ws", camera)], detector, ListSink())
    reloader = ModelReloader("builtin:flame", DetectorConfig(device="cpu"), runner, root=registry)
    runner.start()
    try:
        assert runner.detector.class_thresholds == {}
        promote("flame", "2", root=registry)
        assert reloader.check_once() is True
        assert wait_for(lambda: runner.detector.class_thresholds == {"fire": 0.2, "smoke": 0.3})
        analysed = runner.stats().frames_analysed
        assert wait_for(lambda: runner.stats().frames_analysed > analysed + 2)  # frames keep flowing

        rollback("flame", root=registry)
        assert reloader.check_once() is True
        assert wait_for(lambda: runner.detector.class_thresholds == {})
    finally:
        runner.stop()
