"""Promoting or rolling back a model swaps the running pipeline's detector, with no camera dropped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from anjian.models.config import DetectorConfig
from anjian.models.errors import ModelError
from anjian.models.registry import PromotionWatch, promote, register_version, resolve_model_path, rollback
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.runner import CameraAssignment, PipelineRunner
from anjian.pipeline.sink import ListSink
from anjian.service.model_reload import ModelReloader
from tests.support.clips import make_test_clip
from tests.support.models import demo_model_named, unrunnable_model
from tests.support.waiting import wait_for

onnx = pytest.importorskip("onnx", reason="onnx (the train extra) re-labels the test model")


def _variant(source: Path, out: Path, tag: str) -> Path:
    """The shipped demo model with a different metadata tag: same network, another digest."""
    model = onnx.load(str(source))
    entry = model.metadata_props.add()
    entry.key, entry.value = "test_variant", tag
    onnx.save(model, str(out))
    return out


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    shipped = resolve_model_path("builtin:anjian-demo")
    for tag in ("1", "2"):
        variant = _variant(shipped, tmp_path / f"v{tag}.onnx", tag)
        register_version("site-model", variant, {"tag": tag}, f"# v{tag}\n", version=tag, root=root)
    promote("site-model", "1", root=root)
    return root


@pytest.fixture
def runner(tmp_path: Path, registry: Path) -> Iterator[PipelineRunner]:
    from anjian.models.loader import load_detector

    clip = make_test_clip(tmp_path / "clip.mp4", seconds=2, fps=10, size_wh=(160, 120))
    camera = CameraPipelineConfig(id="cam", url=str(clip), analysis_fps=5, loop=True)
    detector = load_detector(resolve_model_path("builtin:site-model", root=registry), DetectorConfig())
    runner = PipelineRunner("site", [CameraAssignment("ws", camera)], detector, ListSink())
    runner.start()
    yield runner
    runner.stop()


def test_promote_and_rollback_swap_the_running_detector(registry: Path, runner: PipelineRunner) -> None:
    reloader = ModelReloader("builtin:site-model", DetectorConfig(), runner, root=registry)
    first = runner.detector.version
    assert reloader.check_once() is False  # nothing promoted since start

    promote("site-model", "2", root=registry)
    assert reloader.check_once() is True
    assert wait_for(lambda: runner.detector.version != first)
    analysed = runner.stats().frames_analysed
    assert wait_for(lambda: runner.stats().frames_analysed > analysed + 3)  # frames keep flowing
    assert runner.camera_ids() == ["cam"]

    assert rollback("site-model", root=registry) == "1"
    assert reloader.check_once() is True
    assert wait_for(lambda: runner.detector.version == first)
    assert reloader.swaps == 2 and reloader.failures == 0


def test_a_promotion_landing_while_the_model_loads_is_applied(tmp_path: Path, registry: Path) -> None:
    """The reloader's baseline was resolved after the load: a promotion during it was never applied."""
    from anjian.models.loader import load_detector

    watch = PromotionWatch("builtin:site-model", root=registry)  # made before the load, as the runtime does
    detector = load_detector(resolve_model_path("builtin:site-model", root=registry), DetectorConfig())
    promote("site-model", "2", root=registry)  # lands while the pipeline is being built
    clip = make_test_clip(tmp_path / "clip.mp4", seconds=2, fps=10, size_wh=(160, 120))
    camera = CameraPipelineConfig(id="cam", url=str(clip), analysis_fps=5, loop=True)
    runner = PipelineRunner("site", [CameraAssignment("ws", camera)], detector, ListSink())
    reloader = ModelReloader("builtin:site-model", DetectorConfig(), runner, watch=watch)
    runner.start()
    try:
        assert reloader.check_once() is True
        assert wait_for(lambda: runner.detector.version != detector.version)
    finally:
        runner.stop()


def test_a_broken_promoted_model_is_refused_and_the_old_one_kept(
    tmp_path: Path, registry: Path, runner: PipelineRunner
) -> None:
    reloader = ModelReloader("builtin:site-model", DetectorConfig(), runner, root=registry)
    before = runner.detector.version
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    register_version("site-model", broken, {}, "# broken\n", version="3", root=registry)
    promote("site-model", "3", root=registry)

    assert reloader.check_once() is False
    assert reloader.failures == 1
    assert runner.detector.version == before
    history = (registry / "site-model" / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["version"] == "3"


def test_a_promoted_model_that_failed_to_load_once_is_tried_again(
    registry: Path, runner: PipelineRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient failure (a GPU still full of the old model) marked the new model as in use: later polls
    and promoting it again did nothing while the registry said it was in force."""
    from anjian.models.errors import ModelLoadError
    from anjian.service import model_reload

    real_load = model_reload.load_detector
    calls: list[Path] = []

    def load_failing_once(path: Path, config: DetectorConfig) -> object:
        calls.append(path)
        if len(calls) == 1:
            raise ModelLoadError("CUDA failure 2: out of memory")
        return real_load(path, config)

    monkeypatch.setattr(model_reload, "load_detector", load_failing_once)
    reloader = ModelReloader("builtin:site-model", DetectorConfig(), runner, root=registry, interval_s=0.01)
    before = runner.detector.version
    promote("site-model", "2", root=registry)

    assert reloader.check_once() is False and reloader.failures == 1
    assert wait_for(reloader.check_once)  # tried again after its wait
    assert wait_for(lambda: runner.detector.version != before)
    assert reloader.check_once() is False  # in use now: nothing more to try
    assert len(calls) == 2


def test_a_promoted_model_that_loads_but_cannot_detect_is_refused_and_the_old_one_kept(
    tmp_path: Path, registry: Path, runner: PipelineRunner, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = ModelReloader("builtin:site-model", DetectorConfig(), runner, root=registry)
    before = runner.detector.version
    unrunnable = unrunnable_model(tmp_path / "unrunnable.onnx")
    register_version("site-model", unrunnable, {}, "# unrunnable\n", version="3", root=registry)
    promote("site-model", "3", root=registry)

    assert reloader.check_once() is False
    assert reloader.failures == 1 and reloader.swaps == 0
    assert runner.detector.version == before
    assert "test detection on a blank frame failed" in caplog.text


def test_a_promoted_model_whose_names_do_not_fit_its_output_is_refused(
    tmp_path: Path, registry: Path, runner: PipelineRunner
) -> None:
    reloader = ModelReloader("builtin:site-model", DetectorConfig(), runner, root=registry)
    before = runner.detector.version
    renamed = demo_model_named(tmp_path / "renamed.onnx", "{0: 'person'}")
    register_version("site-model", renamed, {}, "# renamed\n", version="3", root=registry)
    promote("site-model", "3", root=registry)

    assert reloader.check_once() is False
    assert reloader.failures == 1
    assert runner.detector.version == before


def test_a_promoted_model_that_drops_a_class_the_rules_use_is_refused_and_one_that_keeps_them_swaps(
    tmp_path: Path, registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A model with 'fire' renamed 'flame' was swapped in silently: open flame could never rise again."""
    from anjian.models.loader import load_detector

    clip = make_test_clip(tmp_path / "clip.mp4", seconds=2, fps=10, size_wh=(160, 120))
    camera = CameraPipelineConfig.model_validate(
        {"id": "cam", "url": str(clip), "analysis_fps": 5, "loop": True, "behaviours": {"open_flame": {}}}
    )
    detector = load_detector(resolve_model_path("builtin:site-model", root=registry), DetectorConfig())
    runner = PipelineRunner("site", [CameraAssignment("ws", camera)], detector, ListSink())
    reloader = ModelReloader("builtin:site-model", DetectorConfig(), runner, root=registry)
    flame = "{0: 'flame', 1: 'smoke', 2: 'person', 3: 'fallen_person', 4: 'cigarette', 5: 'pallet'}"
    no_pallet = "{0: 'fire', 1: 'smoke', 2: 'person', 3: 'fallen_person', 4: 'cigarette', 5: 'crate'}"
    register_version(
        "site-model", demo_model_named(tmp_path / "f.onnx", flame), {}, "# f\n", version="3", root=registry
    )
    register_version(
        "site-model",
        demo_model_named(tmp_path / "p.onnx", no_pallet),
        {},
        "# p\n",
        version="4",
        root=registry,
    )
    runner.start()
    try:
        promote("site-model", "3", root=registry)
        assert reloader.check_once() is False and runner.detector is detector
        assert (
            "open_flame on cam names class 'fire'" in caplog.text and "keeping the current one" in caplog.text
        )

        promote("site-model", "4", root=registry)  # 'pallet' gone, but no enabled rule of cam names it
        assert reloader.check_once() is True
        assert wait_for(lambda: runner.detector is not detector)
    finally:
        runner.stop()


def test_at_start_each_class_the_rules_name_that_the_model_does_not_detect_is_warned_about(
    tmp_path: Path, registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from anjian.models.loader import load_detector
    from anjian.service.model_reload import warn_classes_not_detected

    camera = CameraPipelineConfig.model_validate(
        {"id": "cam", "url": "rtsp://127.0.0.1:9/cam", "behaviours": {"uncleaned_dust": {}, "open_flame": {}}}
    )
    detector = load_detector(resolve_model_path("builtin:site-model", root=registry), DetectorConfig())
    runner = PipelineRunner("site", [CameraAssignment("ws", camera)], detector, ListSink())

    warn_classes_not_detected(runner)

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "uncleaned_dust on camera(s) cam names class 'dust'" in warnings[0], (
        warnings
    )


def test_a_promoted_model_that_cannot_serve_at_start_gives_way_to_the_one_promoted_before_it(
    tmp_path: Path, registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """anjian run stopped, the alert service with it, when the promoted model's file was damaged on disk."""
    from anjian.models.loader import load_serving

    register_version(
        "site-model", unrunnable_model(tmp_path / "u.onnx"), {}, "# u\n", version="3", root=registry
    )
    promote("site-model", "3", root=registry)  # forced past its check, or damaged since
    config = DetectorConfig(registry=registry)
    watch = PromotionWatch("builtin:site-model", root=registry)

    serving = load_serving("builtin:site-model", config)

    assert serving.path.parent.name == "1" and "cannot run" in (serving.passed_over or "")
    clip = make_test_clip(tmp_path / "clip.mp4", seconds=2, fps=10, size_wh=(160, 120))
    camera = CameraPipelineConfig(id="cam", url=str(clip), analysis_fps=5, loop=True)
    runner = PipelineRunner("site", [CameraAssignment("ws", camera)], serving.detector, ListSink())
    reloader = ModelReloader("builtin:site-model", config, runner, watch=watch)
    reloader.serving_earlier(serving.path, serving.passed_over or "")
    assert reloader.failures == 1 and "cannot serve at start" in caplog.text
    runner.start()
    try:
        promote("site-model", "2", root=registry)  # one that serves: swapped in at once
        assert reloader.check_once() is True
        assert wait_for(lambda: runner.detector is not serving.detector)
    finally:
        runner.stop()
    with pytest.raises(ModelError, match="cannot run"):
        load_serving(str(tmp_path / "u.onnx"), config)  # a file, not a promotion: nothing earlier to serve


def test_a_promoted_version_whose_folder_was_deleted_gives_way_at_start_and_the_watch_starts_from_nothing(
    registry: Path,
) -> None:
    """The watch, made before the load, refused the dangling pointer: anjian run stopped, the fallback unused."""
    import shutil

    from anjian.models.loader import load_serving

    promote("site-model", "2", root=registry)
    shutil.rmtree(registry / "site-model" / "2")

    watch = PromotionWatch("builtin:site-model", root=registry, is_strict=False)
    serving = load_serving("builtin:site-model", DetectorConfig(registry=registry))

    assert watch.current is None
    assert serving.path.parent.name == "1" and "missing" in (serving.passed_over or "")
    with pytest.raises(ModelError, match="missing"):
        PromotionWatch("builtin:site-model", root=registry)
