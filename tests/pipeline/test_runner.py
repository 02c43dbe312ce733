"""The runner over a real file: decode → shipped ONNX model → open-flame rule → one incident."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets.synthetic import write_demo_video
from models.onnx_detector import OnnxDetector
from models.registry import resolve_model_path
from pipeline.config import BehavioursConfig, CameraPipelineConfig, OpenFlameConfig
from pipeline.event import Behaviour
from pipeline.runner import CameraAssignment, PipelineRunner
from pipeline.sink import ListSink


@pytest.fixture(scope="module")
def fire_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s at 10 fps; a flame burns from 5 s to 7 s."""
    return write_demo_video(tmp_path_factory.mktemp("clips") / "fire.mp4", seconds=12, fps=10, size_wh=(480, 270))


def _camera(camera_id: str, url: str) -> CameraPipelineConfig:
    return CameraPipelineConfig(
        id=camera_id,
        url=url,
        analysis_fps=5,
        realtime=True,  # paced like a live camera, so the runner sees every sampled frame
        behaviours=BehavioursConfig(open_flame=OpenFlameConfig(k=3, n=5, clear_after_s=2)),
    )


@pytest.mark.slow
def test_file_with_a_fire_gives_one_incident_opened_and_closed(fire_clip: Path, tmp_path: Path) -> None:
    detector = OnnxDetector(resolve_model_path("builtin:anjian-demo"))
    sink = ListSink()
    runner = PipelineRunner(
        "site",
        [
            CameraAssignment("ws", _camera("line", str(fire_clip))),
            CameraAssignment("ws", _camera("missing", str(tmp_path / "absent.mp4"))),
        ],
        detector,
        sink,
    )
    runner.start()
    assert runner.wait_finished(timeout_s=120)
    health = {h.camera_id: h for h in runner.health()}
    runner.stop()

    assert health["line"].frames_delivered >= 55  # 12 s at 5 fps
    assert health["missing"].state == "failed_config"
    assert "no such file" in (health["missing"].last_error or "")
    opened = [e for e in sink.events if e.revision == 1]
    assert len(opened) == 1, [(e.revision, e.started_at, e.ended_at) for e in sink.events]
    event = opened[0]
    assert event.behaviour is Behaviour.OPEN_FLAME
    assert event.snapshot_jpeg is not None and event.snapshot_jpeg[:2] == b"\xff\xd8"
    closed = [e for e in sink.events if e.ended_at is not None]
    assert len(closed) == 1 and closed[0].id == event.id
    # The flame burns 5..7 s into the clip: the incident spans about 2 s of wall time.
    assert 1.0 <= closed[0].last_seen_at - event.started_at <= 3.0
