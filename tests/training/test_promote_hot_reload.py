"""Promote and roll back while a pipeline runs: the runner swaps models without dropping a camera."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from anjian.datasets.synthetic import write_demo_video
from anjian.models.detections import Detections
from anjian.models.detector import FileDetector
from anjian.models.onnx_detector import OnnxDetector
from anjian.models.registry import PromotionWatch, promote, register_version, resolve_model_path, rollback
from anjian.pipeline.config import BehavioursConfig, CameraPipelineConfig, OpenFlameConfig
from anjian.pipeline.event import Behaviour
from anjian.pipeline.runner import CameraAssignment, PipelineRunner
from anjian.pipeline.sink import ListSink
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


class _Counted(FileDetector):
    """Wraps a detector (same file, same model info) and counts the images it analysed."""

    def __init__(self, inner: OnnxDetector) -> None:
        super().__init__(inner.path, inner.config)
        self.info = inner.info
        self.inner = inner
        self.images = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.images += len(images)
        return self.inner.detect(images)


def test_promotion_and_rollback_reach_a_running_pipeline(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from anjian.training.export import to_fp16

    registry = tmp_path / "registry"
    demo = resolve_model_path("builtin:anjian-demo")
    register_version("flame", demo, {}, "# v1\n", root=registry)
    register_version("flame", to_fp16(demo, tmp_path / "fp16.onnx"), {}, "# v2\n", root=registry)
    promote("flame", "1", root=registry)
    clip = write_demo_video(tmp_path / "fire.mp4", seconds=12, fps=10, size_wh=(480, 270))
    cameras = [
        CameraPipelineConfig(
            id=camera_id,
            url=str(clip),
            analysis_fps=5,
            realtime=True,
            behaviours=BehavioursConfig(open_flame=OpenFlameConfig(k=3, n=5, clear_after_s=2)),
        )
        for camera_id in ("a", "b")
    ]
    watch = PromotionWatch("builtin:flame", root=registry)
    first = _Counted(OnnxDetector(watch.current))
    sink = ListSink()
    runner = PipelineRunner("site", [CameraAssignment("ws", c) for c in cameras], first, sink)
    loaded: list[_Counted] = []
    stop = threading.Event()

    def reload_loop() -> None:  # what the service does: poll the registry, swap on a change
        while not stop.wait(0.05):
            path = watch.poll()
            if path is not None:
                loaded.append(_Counted(OnnxDetector(path)))
                runner.swap_detector(loaded[-1])
                watch.accept(path)  # in use now (ModelReloader accepts only a model that loaded)

    poller = threading.Thread(target=reload_loop, daemon=True)
    runner.start()
    poller.start()
    try:
        assert wait_for(lambda: runner.stats().frames_analysed >= 5)
        promote("flame", "2", root=registry)
        assert wait_for(lambda: runner.detector is (loaded[0] if loaded else None))
        assert wait_for(lambda: loaded[0].images >= 5)
        rollback("flame", root=registry)
        assert wait_for(lambda: len(loaded) == 2 and runner.detector is loaded[1])
        assert runner.wait_finished(timeout_s=120)
    finally:
        stop.set()
        poller.join(5)
        health = {h.camera_id: h for h in runner.health()}
        runner.stop()

    v1, v2 = first.version, loaded[0].version
    assert v1 != v2 and loaded[1].version == v1
    assert runner.stats().detector_swaps == 2
    assert first.images > 0 and loaded[0].images > 0 and loaded[1].images > 0
    assert all(h.frames_delivered >= 55 for h in health.values()), health  # 12 s at 5 fps, both cameras
    opened = [e for e in sink.events if e.revision == 1]
    assert sorted(e.camera_id for e in opened if e.behaviour is Behaviour.OPEN_FLAME) == ["a", "b"]
    assert not [e for e in opened if e.behaviour is Behaviour.CAMERA_FAULT]
