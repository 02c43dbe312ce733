"""``anjian bench pipeline``: the ratios against both peers and the share of the model's limit, from one run."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from anjian.service.benchmarks.pipeline import (
    BenchPhase,
    PipelineBenchReport,
    decoder_cpu_s,
    run_pipeline_bench,
)
from tests.support.waiting import wait_for


def _phase(name: str, fps: float, runtime: str = "") -> BenchPhase:
    return BenchPhase(name, fps, fps, 180.0, 400.0, 20.0, runtime=runtime)


def test_report_gives_both_ratios_and_the_share_of_the_limit_at_equal_precision() -> None:
    report = PipelineBenchReport(
        cameras=4,
        model="builtin:anjian-n",
        video="clip.mp4",
        analysis_fps=2.0,
        seconds=20.0,
        phases=[
            _phase("naive", 10.0),
            _phase("ultralytics openvino", 20.0),
            _phase("anjian", 45.0, "OpenVinoDetector int8"),
            _phase("anjian fp32", 30.0, "OpenVinoDetector fp32"),
            _phase("anjian real time", 8.0),
            _phase("model limit", 50.0, "OpenVINO int8 raw, 2 requests"),
            _phase("model limit fp32", 40.0, "OpenVINO fp32 raw, 2 requests"),
        ],
    )
    lines = report.render().splitlines()
    assert "ratio anjian / naive: 4.50x analysed frames/s" in lines
    assert "ratio anjian / ultralytics openvino: 2.25x analysed frames/s" in lines
    assert "ratio anjian fp32 / ultralytics openvino: 1.50x analysed frames/s" in lines
    assert (
        "share of the model's limit: anjian 90% of model limit (45.0 of 50.0 frames/s, OpenVINO int8 raw, 2 requests)"
        in lines
    )
    assert any(
        line.startswith("share of the model's limit: anjian fp32 75% of model limit fp32") for line in lines
    )
    assert not any("real time /" in line for line in lines)  # paced phases are not throughput
    # 180% CPU: 40 ms a frame at 45 frames/s, 36 ms at the limit's 50
    assert (
        "CPU per analysed frame: anjian 40.0 ms, model limit 36.0 ms: 4.0 ms besides the model "
        "(decoding, evidence, tracking, rules)"
    ) in lines


def test_the_cpu_line_splits_off_the_decoding_where_it_was_measured() -> None:
    limit = _phase("model limit", 50.0)
    report = PipelineBenchReport(
        4,
        "m.onnx",
        "clip.mp4",
        2.0,
        20.0,
        [dataclasses.replace(_phase("anjian", 45.0), decode_cpu_percent=9.0), limit],
    )
    # 9% of a core at 45 frames/s: 2.0 ms a frame of the 4.0 besides the model
    assert (
        "CPU per analysed frame: anjian 40.0 ms, model limit 36.0 ms: 4.0 ms besides the model: decoding 2.0 ms "
        "(to BGR pixels), the rest 2.0 ms (letterbox, evidence, tracking, rules)"
    ) in report.render().splitlines()


def _burn_cpu(seconds: float) -> None:
    """Spin until this thread has used ``seconds`` of CPU (its own clock: a busy machine only makes it slower)."""
    clock = time.pthread_getcpuclockid(threading.get_ident())
    until = time.clock_gettime(clock) + seconds
    while time.clock_gettime(clock) < until:
        pass


def test_decoder_cpu_counts_the_camera_threads_alone() -> None:
    worked, release = threading.Barrier(3), threading.Event()

    def work_then_wait() -> None:
        _burn_cpu(0.05)
        worked.wait(60)
        release.wait(60)

    decoder = threading.Thread(target=work_then_wait, name="camera-cam-1", daemon=True)
    other = threading.Thread(target=work_then_wait, name="pipeline", daemon=True)
    decoder.start()
    other.start()
    try:
        worked.wait(60)  # both threads have used their 50 ms of CPU
        clocks = decoder_cpu_s()
    finally:
        release.set()
        decoder.join()
        other.join()
    assert decoder.ident is not None and decoder.native_id is not None
    assert clocks[(decoder.ident, decoder.native_id)] >= 0.05
    assert {ident for ident, _ in clocks}.isdisjoint({other.ident})


def test_report_without_the_peers_or_limits_prints_no_ratio() -> None:
    report = PipelineBenchReport(1, "m.onnx", "clip.mp4", 2.0, 5.0, [_phase("anjian", 12.0)])
    assert "ratio" not in report.render() and "share" not in report.render()


@pytest.mark.slow
def test_the_peer_and_the_limit_run_on_this_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ultralytics through its OpenVINO export of the same model, and the model's raw throughput: both measured;
    the batch-1 copy of the model the peers run goes with the run (one was left in /tmp by every run)."""
    pytest.importorskip("ultralytics")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # the phases' processes too
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    report = run_pipeline_bench(
        cameras=1,
        model="builtin:anjian-demo",
        seconds=1.0,
        phases=("ultralytics openvino", "model limit fp32"),
    )
    peer, limit = report.phases
    assert peer.name == "ultralytics openvino" and peer.analysed_fps > 0
    assert peer.runtime == "ultralytics openvino fp32"
    assert limit.name == "model limit fp32" and limit.analysed_fps > 0
    assert limit.runtime.startswith("OpenVINO fp32 raw")
    assert list(temp.rglob("*.onnx")) == []  # (torch and ONNX Runtime keep caches of their own there)


def test_the_limit_of_a_second_stage_pair_is_its_primary_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A version with a crop model loads as a pair; the raw throughput measured is the primary detector's."""
    from types import SimpleNamespace

    from anjian.models.config import DetectorConfig
    from anjian.models.loader import load_detector
    from anjian.service.benchmarks import pipeline

    fp32 = DetectorConfig(device="cpu", backend="openvino", cpu_precision="fp32")  # what the phase asks for
    primary = load_detector("builtin:anjian-demo", fp32)
    monkeypatch.setattr(
        "anjian.models.loader.load_detector", lambda *_a, **_k: SimpleNamespace(primary=primary)
    )
    from anjian.datasets.synthetic import write_demo_video

    video = write_demo_video(tmp_path / "clip.mp4", seconds=12, fps=1, size_wh=(640, 360))
    phase = pipeline._model_limit_phase("model limit fp32", "builtin:anjian-demo", str(video), 4, 0.5)
    height, width = primary.info.input_hw  # a static-shape model: the whole input whatever the frame
    assert phase.analysed_fps > 0 and phase.runtime.startswith(f"OpenVINO fp32 raw {width}x{height}")
    # each request takes what the engine's batch of 4 (one frame per camera) gives it
    assert phase.runtime.endswith(f"requests of {primary.request_chunk(4)}")


def test_a_phase_that_fails_is_reported_and_the_others_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime that cannot compile the model on this CPU costs its phase, not the run: the reason is printed."""
    from anjian.service.benchmarks import pipeline

    run_phase = pipeline._run_phase

    def failing_peer(name: str, *args: object, **kwargs: object) -> BenchPhase:
        if name == "ultralytics openvino":
            raise RuntimeError(
                "Exception from src/inference/src/cpp/core.cpp:117:\n"
                "Supported primitive descriptors list is empty for node: /model.9/m/MaxPool type: Pooling\n\n"
            )
        return run_phase(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_run_phase", failing_peer)
    lines: list[str] = []
    report = run_pipeline_bench(
        cameras=1,
        model="builtin:anjian-demo",
        seconds=0.5,
        phases=("ultralytics openvino", "model limit fp32"),
        progress=lines.append,
    )
    assert [p.name for p in report.phases] == ["model limit fp32"] and report.phases[0].analysed_fps > 0
    reason = "RuntimeError: Supported primitive descriptors list is empty for node: /model.9/m/MaxPool type: Pooling"
    assert report.failures == {"ultralytics openvino": reason}
    assert f"phase 'ultralytics openvino' failed: {reason}" in lines
    assert f"phase ultralytics openvino failed: {reason}" in report.render().splitlines()


def test_the_command_prints_what_ran_and_exits_non_zero_when_a_phase_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from anjian.service.cli import app

    report = PipelineBenchReport(
        1, "m.onnx", "clip.mp4", 2.0, 5.0, [_phase("naive", 10.0)], failures={"anjian": "RuntimeError: boom"}
    )
    monkeypatch.setattr("anjian.service.benchmarks.pipeline.run_pipeline_bench", lambda **_k: report)
    result = CliRunner().invoke(app, ["bench", "pipeline", "--phase", "naive", "--phase", "anjian"])
    assert result.exit_code == 1
    assert "phase anjian failed: RuntimeError: boom" in result.output
    assert "1 of 2 phases failed" in result.output
    assert "Traceback" not in result.output


def test_the_naive_phase_on_a_base_install_names_the_train_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from anjian.service.benchmarks import pipeline as bench

    monkeypatch.setitem(sys.modules, "ultralytics", None)  # the base install: no ultralytics
    with pytest.raises(RuntimeError, match=r"naive phase runs ultralytics, from the train extra"):
        bench._naive_phase("naive", "model.onnx", "clip.mp4", 1, 2.0, 1.0, str(tmp_path))


@pytest.mark.parametrize(
    ("video", "message"),
    [
        ("missing.mp4", "no such file; give a video file"),
        (".", "a folder; give a video file"),
        ("notes.txt", "not a readable video"),
    ],
    ids=["missing", "a-folder", "not-a-video"],
)
def test_footage_no_phase_could_read_is_refused_before_any_phase_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, video: str, message: str
) -> None:
    """A missing file once left the naive loop rewinding a capture that reads nothing, for good."""
    from typer.testing import CliRunner

    from anjian.service.benchmarks import pipeline as bench
    from anjian.service.cli import app

    (tmp_path / "notes.txt").write_text("not a video\n")
    ran: list[str] = []
    monkeypatch.setattr(bench, "_run_phase", lambda name, *_a, **_k: ran.append(name))
    result = CliRunner().invoke(
        app, ["bench", "pipeline", "--video", str(tmp_path / video), "--seconds", "1"]
    )

    assert result.exit_code == 2 and ran == []
    assert message in result.output and "Traceback" not in result.output


def write_pid_and_wait(path: str) -> None:
    """A phase that never ends on its own (run in the bench's child process)."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def test_a_phase_process_ends_when_the_bench_is_killed_outright(tmp_path: Path) -> None:
    """A SIGKILLed bench left its phases spinning on the cores (one for 16 minutes, reading a missing video)."""
    pid_file = tmp_path / "child.pid"
    script = (
        "from anjian.service.benchmarks.pipeline import _in_child\n"
        "from tests.service.benchmarks.test_pipeline_bench import write_pid_and_wait\n"
        f"_in_child(write_pid_and_wait, {str(pid_file)!r})\n"
    )
    bench = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[3])
    try:
        assert wait_for(
            pid_file.exists, timeout_s=180
        )  # a spawned interpreter importing the bench, on a loaded CI
        child = int(pid_file.read_text())
        bench.kill()
        bench.wait(10)
        assert wait_for(lambda: not _is_running(child), timeout_s=20)
    finally:
        bench.kill()


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pipeline", "--seconds", "nan"], "seconds > 0, got 4 and nan"),
        (["pipeline", "--analysis-fps", "0"], "analysis_fps must be a positive number, got 0.0"),
        (["decode", "--seconds", "inf"], "must be positive numbers, got inf"),
        (["decode", "--repeats", "0"], "repeats must be >= 1, got 0"),
    ],
    ids=["pipeline-seconds-nan", "pipeline-fps-zero", "decode-seconds-inf", "decode-no-repeat"],
)
def test_a_bench_length_or_rate_that_is_no_positive_number_is_named(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """NaN passed the `> 0` checks: every phase then failed, or a clip of NaN seconds was asked of FFmpeg."""
    from typer.testing import CliRunner

    from anjian.service.cli import app

    extra = ["--dir", str(tmp_path)] if args[0] == "decode" else []
    result = CliRunner().invoke(app, ["bench", *args, *extra])

    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_the_real_time_phase_starts_its_cameras_spread_over_one_analysis_period(tmp_path: Path) -> None:
    """Live cameras are not in phase: each real camera starts a 1/cameras of a period after the one before."""
    from anjian.cameras.source import VideoSource
    from anjian.datasets.synthetic import write_demo_video
    from anjian.pipeline.config import CameraPipelineConfig
    from anjian.service.benchmarks import pipeline

    video = write_demo_video(tmp_path / "clip.mp4", seconds=12, fps=5, size_wh=(160, 96))
    factory = pipeline._out_of_phase_cameras(4, 2.0)  # 0.5 s period over 4 cameras: 0.125 s apart
    condition = threading.Condition()
    sources = [
        factory(CameraPipelineConfig(id=f"cam-{i}", url=str(video), realtime=True, loop=True), condition)
        for i in range(4)
    ]
    assert all(isinstance(source, VideoSource) and not source.keeps_every_frame for source in sources)
    started = time.monotonic()
    for source in sources:
        source.start()
    try:
        assert time.monotonic() - started >= 4 * 0.125  # a lower bound: a busy CPU only adds to it
        assert wait_for(lambda: all(source.take_latest() is not None for source in sources), timeout_s=30)
    finally:
        for source in sources:
            source.stop()
