"""The pipeline that ``anjian run`` loads behind the API: a failure after the model loaded is never silent.

The loader thread built the runner, then made the promotion reloader and started the cameras
outside its error handling: a failure there died in the thread, the runner never started and
nothing was reported (the service answered with no camera analysed, for good). The model in
hand must keep the cameras running, or the failure must reach the CLI, which stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anjian.pipeline.runner import PipelineRunner
from anjian.service.config import AnjianConfig
from anjian.service.runtime import Runtime, build_runtime
from tests.support.waiting import wait_for


def _site(tmp_path: Path, clip: Path) -> AnjianConfig:
    camera = {"id": "cam-1", "url": str(clip), "loop": True, "analysis_fps": 2}
    return AnjianConfig.model_validate(
        {
            "site": {"id": "plant-1", "workshops": [{"id": "ws-1", "cameras": [camera]}]},
            "model": {"path": "builtin:anjian-demo"},
            "storage": {"dir": str(tmp_path / "data")},
        }
    )


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that end a thread (what would otherwise only reach stderr)."""
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def _loading(tmp_path: Path, clip: Path) -> tuple[Runtime, list[Exception]]:
    runtime = build_runtime(_site(tmp_path, clip), with_pipeline=True, is_pipeline_deferred=True)
    reported: list[Exception] = []
    runtime.on_pipeline_error = reported.append
    runtime.start()
    runtime.start_pipeline_loading()
    return runtime, reported


@pytest.fixture
def unmakeable_reloader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The promotion reloader cannot be made (the registry turned unreadable after the model loaded)."""

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", "/srv/registry/anjian-demo")

    monkeypatch.setattr("anjian.service.model_reload.ModelReloader.__init__", refuse)
    yield


@pytest.mark.usefixtures("unmakeable_reloader")
def test_a_reloader_that_cannot_be_made_leaves_the_cameras_running_on_the_loaded_model(
    tmp_path: Path, test_clip: Path, thread_errors: list[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="anjian.service.runtime")
    runtime, reported = _loading(tmp_path, test_clip)
    try:
        assert wait_for(
            lambda: runtime.runner is not None and runtime.runner.stats().frames_analysed > 0, timeout_s=60
        ), (reported, thread_errors)
        assert runtime.model_reloader is None and not reported and not thread_errors
    finally:
        runtime.stop()
    [line] = [r.getMessage() for r in caplog.records if "promotions are not followed" in r.getMessage()]
    assert "builtin:anjian-demo" in line and "Permission denied" in line


def test_a_pipeline_that_fails_to_start_after_the_load_is_reported(
    tmp_path: Path, test_clip: Path, thread_errors: list[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    def cannot_start(self: PipelineRunner) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(PipelineRunner, "start", cannot_start)
    runtime, reported = _loading(tmp_path, test_clip)
    try:
        assert wait_for(lambda: bool(reported or thread_errors), timeout_s=60)
        assert [str(e) for e in reported] == ["can't start new thread"] and not thread_errors
    finally:
        runtime.stop()
