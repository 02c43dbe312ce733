"""Start-up: the CLI and the service load no heavy module they do not use; the API answers while the
pipeline loads (the seconds are ``anjian bench startup``'s to show, not these tests')."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from anjian.service.benchmarks.startup import StartupFigure, format_startup_report, run_startup_bench
from anjian.service.cli import app
from anjian.service.config import AnjianConfig
from anjian.service.lazy_cli import source_help
from anjian.service.runtime import Runtime, build_runtime
from tests.service.conftest import bearer
from tests.support.models import unrunnable_model
from tests.support.waiting import wait_for

_PIPELINE_ONLY = ("supervision", "scipy", "trackers", "onnxruntime", "openvino", "av", "cv2")
_NEVER = ("torch", "ultralytics")
_HELP_OF_DATASET = "from typer.testing import CliRunner; from service.cli import app; CliRunner().invoke(app, ['dataset', '--help'])"


def _modules_after(statement: str) -> set[str]:
    """Modules loaded by a fresh interpreter after ``statement`` (full names and their top-level packages)."""
    probe = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
        timeout=120,
    )
    names = set(json.loads(result.stdout.strip().splitlines()[-1]))
    return names | {name.split(".")[0] for name in names}


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        ("import service.cli", (*_PIPELINE_ONLY, *_NEVER, "uvicorn", "sqlalchemy", "fastapi", "numpy")),
        (
            "from typer.testing import CliRunner; from service.cli import app; CliRunner().invoke(app, ['--help'])",
            (*_PIPELINE_ONLY, *_NEVER, "numpy", "anjian.datasets.cli", "anjian.training.cli"),
        ),
        (
            _HELP_OF_DATASET,
            _NEVER,
        ),
        ("import service.runtime", (*_PIPELINE_ONLY, *_NEVER)),
        ("import service.config", (*_PIPELINE_ONLY, *_NEVER, "fastapi", "sqlalchemy")),
    ],
    ids=["cli", "cli-help", "dataset-help", "runtime-for-serve", "site-config"],
)
def test_importing_loads_no_module_it_does_not_use(statement: str, forbidden: tuple[str, ...]) -> None:
    loaded = _modules_after(statement) & set(forbidden)
    assert not loaded, f"{statement!r} loads {sorted(loaded)}"


def _site(tmp_path: Path, test_clip: Path, model: str = "builtin:anjian-demo") -> AnjianConfig:
    camera = {"id": "cam-1", "url": str(test_clip), "loop": True, "analysis_fps": 2}
    return AnjianConfig.model_validate(
        {
            "site": {"id": "plant-1", "workshops": [{"id": "ws-1", "cameras": [camera]}]},
            "model": {"path": model},
            "storage": {"dir": str(tmp_path / "data")},
        }
    )


def test_the_api_answers_while_the_pipeline_is_still_loading(tmp_path: Path, test_clip: Path) -> None:
    runtime = build_runtime(_site(tmp_path, test_clip), with_pipeline=True, is_pipeline_deferred=True)
    assert runtime.runner is None and runtime.pending_pipeline is not None and runtime.app is not None
    load = runtime.pending_pipeline
    release = threading.Event()

    def slow_load():  # type: ignore[no-untyped-def]
        release.wait(60)
        return load()

    runtime.pending_pipeline = slow_load
    runtime.start()
    runtime.start_pipeline_loading()
    try:
        client = TestClient(runtime.app)
        assert runtime.parts is not None
        headers = bearer(runtime.parts.store, "viewer")
        assert client.get("/readyz").status_code == 200
        assert client.get("/cameras", headers=headers).json() == []
        assert runtime.runner is None  # still loading
        release.set()
        assert wait_for(lambda: runtime.runner is not None, timeout_s=60)

        def states() -> list[str]:
            return [camera["state"] for camera in client.get("/cameras", headers=headers).json()]

        assert wait_for(lambda: states() == ["online"], timeout_s=60), states()
        assert runtime.app.state.pipeline_control is runtime.control
    finally:
        release.set()
        runtime.stop()


@contextmanager
def _started_without_its_pipeline(
    tmp_path: Path, test_clip: Path, model: Path
) -> Iterator[tuple[Runtime, Exception]]:
    """A runtime over ``model`` started with its pipeline loading behind it, once the load has failed: its error."""
    runtime = build_runtime(
        _site(tmp_path, test_clip, str(model)), with_pipeline=True, is_pipeline_deferred=True
    )
    errors: list[Exception] = []
    runtime.on_pipeline_error = errors.append
    runtime.start()
    runtime.start_pipeline_loading()
    try:
        assert wait_for(lambda: bool(errors), timeout_s=60)
        yield runtime, errors[0]
    finally:
        runtime.stop()


def test_a_pipeline_that_cannot_load_is_reported_and_the_service_keeps_answering(
    tmp_path: Path, test_clip: Path
) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not an onnx model")
    with _started_without_its_pipeline(tmp_path, test_clip, model) as (runtime, error):
        assert "broken.onnx" in str(error) and runtime.runner is None
        assert runtime.app is not None and TestClient(runtime.app).get("/readyz").status_code == 200


def test_a_model_that_loads_but_cannot_run_is_refused_at_start_naming_why(
    tmp_path: Path, test_clip: Path
) -> None:
    """Started, it analysed nothing while the camera looked online, and logged two tracebacks a second."""
    model = unrunnable_model(tmp_path / "unrunnable.onnx")
    with _started_without_its_pipeline(tmp_path, test_clip, model) as (runtime, error):
        assert "loads but cannot run" in str(error) and "blank frame" in str(error), error
        assert runtime.runner is None


def test_stop_while_the_pipeline_loads_never_starts_it(tmp_path: Path, test_clip: Path) -> None:
    runtime = build_runtime(_site(tmp_path, test_clip), with_pipeline=True, is_pipeline_deferred=True)
    load = runtime.pending_pipeline
    assert load is not None
    loading, release, built = threading.Event(), threading.Event(), threading.Event()

    def held_load():  # type: ignore[no-untyped-def]
        loading.set()
        release.wait(60)
        result = load()
        built.set()
        return result

    runtime.pending_pipeline = held_load
    runtime.start()
    runtime.start_pipeline_loading()
    assert loading.wait(30)
    runtime.stop()
    release.set()
    assert built.wait(60)
    assert runtime.runner is None


def test_help_lists_the_lazy_commands_with_their_own_help_and_running_one_loads_it() -> None:
    listing = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    assert re.search(r"models\s+List, promote and roll back model versions", listing.output), listing.output
    assert re.search(r"dataset\s+Import, check, merge, split and count", listing.output), listing.output
    harvest = CliRunner().invoke(app, ["dataset", "harvest", "--help"])
    assert harvest.exit_code == 0 and "false alarms as hard negatives" in harvest.output


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("dataset_app", "Import, check, merge, split and count labelled image sets."),
        ("load_any", "Read a YOLO set"),
    ],
    ids=["typer-help", "docstring"],
)
def test_source_help_reads_help_without_importing(attribute: str, expected: str) -> None:
    assert source_help("anjian.datasets.cli", attribute).startswith(expected)
    assert source_help("anjian.datasets.cli", "no_such_name") == ""


def test_startup_report_gives_median_slowest_and_misses() -> None:
    report = format_startup_report(
        [StartupFigure("anjian --help", [0.4, 0.6, 0.5]), StartupFigure("anjian serve", [1.0, None, 2.0])]
    )
    assert re.search(r"anjian --help\s+0\.50 s\s+0\.60 s\s+0\n", report), report
    assert re.search(r"anjian serve\s+1\.50 s\s+2\.00 s\s+1$", report), report


@pytest.mark.slow
def test_startup_bench_measures_every_milestone() -> None:
    figures = run_startup_bench(runs=1, timeout_s=120)
    assert [f.what.split(":")[0] for f in figures] == [
        "anjian --help",
        "anjian --help (CPU seconds)",
        "anjian serve",
        "anjian serve",
        "anjian serve",
        "anjian run (1 camera, demo model)",
        "anjian run (1 camera, demo model)",
    ]
    assert all(f.median_s is not None for f in figures), figures
