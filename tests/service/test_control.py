"""Cameras reload from the site YAML while the pipeline runs, touching only what changed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from anjian.models.detections import Detections
from anjian.pipeline.runner import CameraAssignment, PipelineRunner
from anjian.pipeline.sink import ListSink
from anjian.service.app import create_app
from anjian.service.config import load_config
from anjian.service.control import RunnerControl
from anjian.service.errors import ConfigError
from tests.service.conftest import bearer
from tests.support.clips import make_test_clip


class _BlindDetector:
    """Sees nothing: the test is about cameras, not detections."""

    class_names = {0: "person"}  # noqa: RUF012 - read-only
    class_thresholds: dict[str, float] = {}  # noqa: RUF012 - read-only
    version = "blind@1"

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [Detections.empty(self.class_names) for _ in images]


def _camera(camera_id: str, clip: Path, **fields: object) -> dict[str, object]:
    return {"id": camera_id, "url": str(clip), "analysis_fps": 2, "loop": True, **fields}


def _write_site(path: Path, cameras: list[dict[str, object]], site_id: str = "plant") -> Path:
    data = {
        "site": {"id": site_id, "workshops": [{"id": "ws", "cameras": cameras}]},
        "storage": {"dir": str(path.parent / "data")},
    }
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_test_clip(tmp_path / "clip.mp4", seconds=2, fps=10, size_wh=(160, 120))


@pytest.fixture
def running(tmp_path: Path, clip: Path) -> Iterator[tuple[PipelineRunner, RunnerControl, Path]]:
    site = _write_site(tmp_path / "site.yaml", [_camera("a", clip), _camera("b", clip)])
    config = load_config(site)
    runner = PipelineRunner(
        config.site.id,
        [CameraAssignment(w.id, c) for w, c in config.cameras()],
        _BlindDetector(),
        ListSink(),
    )
    runner.start()
    yield runner, RunnerControl(runner, site), site
    runner.stop()


def test_reload_adds_removes_and_keeps_cameras(
    running: tuple[PipelineRunner, RunnerControl, Path], clip: Path
) -> None:
    runner, control, site = running
    reader_of_a = runner.health()[0]
    _write_site(site, [_camera("a", clip, name="renamed"), _camera("c", clip)])

    changes = control.reload_cameras()

    assert (changes.added, changes.removed, changes.updated) == (["c"], ["b"], ["a"])
    assert runner.camera_ids() == ["a", "c"]
    health_a = next(h for h in runner.health() if h.camera_id == "a")
    assert health_a.reconnects == reader_of_a.reconnects  # a rename does not restart the reader


def test_invalid_yaml_or_another_site_changes_nothing(
    running: tuple[PipelineRunner, RunnerControl, Path], clip: Path
) -> None:
    runner, control, site = running
    site.write_text("site: [broken")
    with pytest.raises(ConfigError, match="not valid YAML"):
        control.reload_cameras()
    _write_site(site, [_camera("a", clip)], site_id="other-plant")
    with pytest.raises(ValueError, match="site id changed from 'plant' to 'other-plant'"):
        control.reload_cameras()
    assert runner.camera_ids() == ["a", "b"]


def test_reload_and_reset_over_the_api(
    running: tuple[PipelineRunner, RunnerControl, Path], clip: Path
) -> None:
    runner, control, site = running
    app = create_app(load_config(site), pipeline_control=control)
    with TestClient(app) as client:
        admin = bearer(app.state.store, "admin")
        _write_site(site, [_camera("a", clip)])
        response = client.post("/cameras/reload", headers=admin)
        assert response.status_code == 200, response.text
        assert response.json() == {"added": [], "removed": ["b"], "updated": ["a"]}

        reset = client.post("/cameras/a/zones/door/reset-reference", headers=admin)
        assert reset.status_code == 200 and reset.json()["is_reset"] is False  # no reference rule there
        assert client.post("/cameras/zz/zones/door/reset-reference", headers=admin).status_code == 404

        site.write_text("site: [broken")
        refused = client.post("/cameras/reload", headers=admin)
        assert refused.status_code == 422 and "not valid YAML" in refused.json()["detail"]
    assert runner.camera_ids() == ["a"]


def test_control_routes_answer_409_without_a_pipeline(tmp_path: Path, clip: Path) -> None:
    site = _write_site(tmp_path / "site.yaml", [_camera("a", clip)])
    app = create_app(load_config(site))
    with TestClient(app) as client:
        admin = bearer(app.state.store, "admin")
        assert client.post("/cameras/reload", headers=admin).status_code == 409
