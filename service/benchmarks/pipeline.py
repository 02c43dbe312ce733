"""``anjian bench pipeline``: analysed frames/s, latency, CPU and memory of the engine vs its peers and the model's limit.

Every phase runs in its own fresh process (so CPU %, RSS and imports are its own),
over ``cameras`` copies of one video file, for ``seconds`` after a short warm-up,
each camera analysed at ``analysis_fps`` (frames sampled in stream time):

- **naive**: what a user would write first: one ``cv2.VideoCapture`` per camera,
  read in turn in one loop, and ``ultralytics.YOLO(model).predict`` on every sampled
  frame, as fast as it goes; same model and input size;
- **ultralytics openvino**: the peer a capable user would pick: the same loop over the
  same model through ultralytics' OpenVINO backend (what ``yolo export format=openvino``
  gives: an fp32 IR of the same weights with ultralytics' ``metadata.yaml``);
- **anjian**: ``PipelineRunner`` (a reader per camera, cross-camera batches, OpenVINO
  when installed else ONNX Runtime, ByteTrack, the rules), files read as fast as the
  engine takes their frames (a reader decodes its next sampled frame once the last
  one was taken: like the naive loop it decodes only what is analysed, but decoding
  overlaps the analysis);
- **anjian fp32**: the same with OpenVINO held to fp32 (``anjian`` as shipped runs the
  version's accepted int8 model, else bf16 where the CPU has native bf16);
- **anjian onnxruntime** (on request): the same with ONNX Runtime;
- **anjian + motion gate**: the same with motion gating on, as a site enables it (still
  frames of an empty scene skip the model and still reach the tracker and rules:
  analysed, not inferred; a scene with something in it is inferred on every frame);
- **anjian real time**: the real ``VideoSource`` with files paced like live cameras, started
  spread over one analysis period (live cameras are not in phase): latency from capture to
  rule result, and frames dropped (newest frame wins);
- **model limit** and **model limit fp32**: the model's own raw throughput on this CPU
  (OpenVINO compiled as anjian compiles it, every infer request busy with as many images as
  the engine gives it, the model input the pipeline feeds for a random frame of the video's
  size, no decoding): no engine feeding such batches can analyse more frames per second.

The report ends with ``ratio anjian / naive``, ``ratio anjian / ultralytics openvino`` and
``share of the model's limit`` (each anjian phase against the limit at its own precision),
with the CPU time per analysed frame of each side: the difference is what a frame costs
besides the model's arithmetic.

``cpu="avx2"`` (``--cpu avx2``) runs every phase as on an AVX2-only CPU, most plants' edge boxes:
CPUID is masked in the phases' processes (:mod:`anjian.service.benchmarks.cpu_mask`), so ONNX Runtime,
OpenVINO, numpy, OpenCV and FFmpeg all run their AVX2 code, not only oneDNN as under
``ONEDNN_MAX_CPU_ISA``.

ultralytics (the ``train`` extra) is imported by the naive phase only. A ``.pt``
model is exported once to a dynamic-shape ONNX file for anjian; an ``.onnx`` model
is used by both sides as it is.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from anjian.service.benchmarks.cpu_mask import build_cpu_mask, masked_children
from anjian.service.benchmarks.processes import process_rss_bytes

__all__ = ["DEFAULT_PHASES", "BenchPhase", "PipelineBenchReport", "decoder_cpu_s", "run_pipeline_bench"]

_WARMUP_S = 4.0
DEFAULT_PHASES = (
    "naive",
    "ultralytics openvino",
    "anjian",
    "anjian fp32",
    "anjian + motion gate",
    "anjian real time",
    "model limit",
    "model limit fp32",
)
_KNOWN_PHASES = (*DEFAULT_PHASES, "anjian onnxruntime")
_PEERS = ("naive", "ultralytics openvino")
_LIMITS = {"anjian": "model limit", "anjian fp32": "model limit fp32"}
_MB = 1024 * 1024
_MAX_BATCH = 8
"""The engine's largest batch in the anjian phases (one frame per camera up to it)."""


@dataclass(frozen=True, slots=True)
class BenchPhase:
    """What one phase measured.

    Attributes:
        name: Phase label.
        analysed_fps: Frames whose detections reached the rules (or ``predict``), per second.
        inferred_fps: Frames the detector ran on, per second.
        cpu_percent: Process CPU time over wall time, in % of one core.
        rss_mb: Resident memory at the end, MB.
        rss_per_camera_mb: (RSS at the end - RSS before the cameras started) / cameras.
        latency_p50_s: Capture → rule result, median (real-time phase only).
        latency_p95_s: The same, 95th percentile.
        dropped: Frames sampled but never analysed (replaced by newer ones, or stale).
        mean_batch: Frames per detector batch.
        runtime: What ran the model (library and precision).
        decode_cpu_percent: CPU of the cameras' decoding threads alone, in % of one core (anjian's
            phases; None where the decoding is not in threads of its own, or the clocks are not readable).
    """

    name: str
    analysed_fps: float
    inferred_fps: float
    cpu_percent: float
    rss_mb: float
    rss_per_camera_mb: float
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    dropped: int = 0
    mean_batch: float = 1.0
    runtime: str = ""
    decode_cpu_percent: float | None = None

    @property
    def cpu_ms_per_frame(self) -> float | None:
        """CPU time per analysed frame, ms (all cores together); None when nothing was analysed."""
        return 10 * self.cpu_percent / self.analysed_fps if self.analysed_fps > 0 else None

    @property
    def decode_ms_per_frame(self) -> float | None:
        """The decoding threads' CPU time per analysed frame, ms; None where not measured."""
        if self.decode_cpu_percent is None or self.analysed_fps <= 0:
            return None
        return 10 * self.decode_cpu_percent / self.analysed_fps


@dataclass(frozen=True, slots=True)
class PipelineBenchReport:
    """All phases of one run, and the settings they shared."""

    cameras: int
    model: str
    video: str
    analysis_fps: float
    seconds: float
    phases: list[BenchPhase]
    failures: dict[str, str] = field(default_factory=dict)
    """Phases that did not run to the end, with the reason (the rest of the report stands)."""
    cpu: str = "native"
    """The CPU the phases ran as: ``native``, or a CPUID-masked level (``cpu_mask.CpuMask.description``)."""

    def phase(self, name: str) -> BenchPhase | None:
        """The phase called ``name``, if it ran."""
        return next((p for p in self.phases if p.name == name), None)

    def render(self) -> str:
        """A plain-text table and the ratios against the naive baseline."""

        def opt(value: float | None, fmt: str) -> str:
            return "-" if value is None else format(value, fmt)

        lines = [
            (
                f"anjian bench pipeline: {self.cameras} cameras x {Path(self.video).name}, model {self.model}, "
                f"{self.analysis_fps:g} analysed fps per camera, {self.seconds:g} s per phase"
                + ("" if self.cpu == "native" else f", CPU as {self.cpu}")
            ),
            (
                f"{'phase':<24}{'analysed/s':>11}{'inferred/s':>11}{'CPU %':>7}{'RSS MB':>8}{'MB/cam':>8}"
                f"{'p50 s':>7}{'p95 s':>7}{'dropped':>9}{'batch':>7}  runtime"
            ),
        ]
        for p in self.phases:
            lines.append(
                f"{p.name:<24}{p.analysed_fps:>11.2f}{p.inferred_fps:>11.2f}{p.cpu_percent:>7.0f}"
                f"{p.rss_mb:>8.0f}{p.rss_per_camera_mb:>8.1f}{opt(p.latency_p50_s, '.2f'):>7}"
                f"{opt(p.latency_p95_s, '.2f'):>7}{p.dropped:>9}{p.mean_batch:>7.1f}  {p.runtime}"
            )
        engines = [p for p in self.phases if p.name.startswith("anjian") and "real time" not in p.name]
        for peer_name in _PEERS:
            peer = self.phase(peer_name)
            if peer is None or peer.analysed_fps <= 0:
                continue
            for p in engines:
                lines.append(
                    f"ratio {p.name} / {peer_name}: {p.analysed_fps / peer.analysed_fps:.2f}x analysed frames/s"
                )
        for engine_name, limit_name in _LIMITS.items():
            engine, limit = self.phase(engine_name), self.phase(limit_name)
            if engine is not None and limit is not None and limit.analysed_fps > 0:
                lines.append(
                    f"share of the model's limit: {engine_name} {100 * engine.analysed_fps / limit.analysed_fps:.0f}% "
                    f"of {limit_name} ({engine.analysed_fps:.1f} of {limit.analysed_fps:.1f} frames/s, {limit.runtime})"
                )
                engine_ms, limit_ms = engine.cpu_ms_per_frame, limit.cpu_ms_per_frame
                if engine_ms is not None and limit_ms is not None:
                    # where the rest of the limit goes: what a frame costs besides the model's arithmetic
                    besides = f"{engine_ms - limit_ms:.1f} ms besides the model"
                    decode_ms = engine.decode_ms_per_frame
                    split = (
                        " (decoding, evidence, tracking, rules)"
                        if decode_ms is None
                        else f": decoding {decode_ms:.1f} ms (to BGR pixels), the rest {engine_ms - limit_ms - decode_ms:.1f} ms "
                        "(letterbox, evidence, tracking, rules)"
                    )
                    lines.append(
                        f"CPU per analysed frame: {engine_name} {engine_ms:.1f} ms, {limit_name} {limit_ms:.1f} ms: "
                        f"{besides}{split}"
                    )
        lines.extend(f"phase {name} failed: {reason}" for name, reason in self.failures.items())
        return "\n".join(lines)


def _rss_mb() -> float:
    """Current resident memory of this process, MB."""
    return process_rss_bytes(os.getpid()) / _MB


def _cpu_s() -> float:
    """CPU seconds of this process, all threads, user + system."""
    return time.process_time()


_DECODER_THREAD_PREFIXES = ("camera-", "pull-")
"""Names of the threads that decode a camera: ``VideoSource``'s (real time) and ``_PullFileSource``'s."""


def decoder_cpu_s() -> dict[tuple[int, int], float]:
    """CPU seconds of each live camera-decoding thread of this process, by (ident, native id).

    Read from each thread's own CPU clock (``pthread_getcpuclockid``), so the bench can say how
    much of a frame's cost is decoding; empty where the platform has no per-thread clocks. FFmpeg's
    own frame threads (``decode_threads`` above 1: by default streams above 1080p) are not these
    threads and not counted; the bench's footage decodes on one thread.
    """
    clocks: dict[tuple[int, int], float] = {}
    for thread in threading.enumerate():
        if thread.ident is None or thread.native_id is None:
            continue
        if not thread.name.startswith(_DECODER_THREAD_PREFIXES):
            continue
        try:
            clocks[(thread.ident, thread.native_id)] = time.clock_gettime(
                time.pthread_getcpuclockid(thread.ident)
            )
        except (AttributeError, OSError):  # no per-thread clocks here, or the thread just ended
            continue
    return clocks


def _decode_cpu_percent(
    before: dict[tuple[int, int], float], after: dict[tuple[int, int], float], wall_s: float
) -> float | None:
    """The decoding threads' CPU over ``wall_s``, % of one core: the threads alive at both readings."""
    common = before.keys() & after.keys()
    if not common or wall_s <= 0:
        return None
    return 100 * sum(after[t] - before[t] for t in common) / wall_s


def _naive_phase(
    name: str, model: str, video: str, cameras: int, analysis_fps: float, seconds: float, work_dir: str
) -> BenchPhase:
    """One ``cv2.VideoCapture`` per camera, read in turn; ``YOLO.predict`` on every sampled frame.

    ``naive`` runs the model file as it is (ONNX Runtime, or torch for a ``.pt``);
    ``ultralytics openvino`` runs its OpenVINO export, written under ``work_dir``.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import cv2

    try:
        from ultralytics import YOLO  # type: ignore[attr-defined]
    except ImportError:
        raise RuntimeError(
            f"the {name} phase runs ultralytics, from the train extra: pip install -e '.[train]'"
        ) from None

    from anjian.models.config import DetectorConfig
    from anjian.models.loader import load_detector

    reference: Any = load_detector(model, DetectorConfig(cpu_precision="fp32"))
    imgsz = list(reference.info.input_hw)  # the model's own input size
    del reference
    is_openvino = name == "ultralytics openvino"
    if is_openvino:
        _compile_fp32_without_native_bf16()
    weights = (
        _ultralytics_openvino_export(Path(model), imgsz, Path(work_dir))
        if is_openvino
        else _with_fixed_batch(Path(model), Path(work_dir))
    )
    yolo = YOLO(weights, task="detect")
    captures = [cv2.VideoCapture(video) for _ in range(cameras)]
    step = max(1, round(captures[0].get(cv2.CAP_PROP_FPS) / analysis_fps))
    counts = [0] * cameras

    def sampled_frame(i: int) -> Any:
        is_rewound = False
        while True:
            ok, frame = captures[i].read()
            if not ok:  # end of file: loop it
                if is_rewound:  # not even the first frame: it would spin here for good
                    raise RuntimeError(f"cv2.VideoCapture reads no frame of {video}")
                captures[i].set(cv2.CAP_PROP_POS_FRAMES, 0)
                is_rewound = True
                continue
            counts[i] += 1
            if counts[i] % step == 0:
                return frame

    yolo.predict(sampled_frame(0), imgsz=imgsz, verbose=False)  # load and warm up
    rss_before = _rss_mb()

    def run_for(duration_s: float) -> int:
        analysed, until = 0, time.monotonic() + duration_s
        while time.monotonic() < until:
            for i in range(cameras):
                yolo.predict(sampled_frame(i), imgsz=imgsz, verbose=False)
                analysed += 1
        return analysed

    run_for(_WARMUP_S)
    plain = "torch" if model.endswith(".pt") else "onnxruntime"
    runtime = f"ultralytics {'openvino' if is_openvino else plain} fp32"
    return _timed_phase(name, run_for, seconds, rss_before=rss_before, cameras=cameras, runtime=runtime)


def _timed_phase(
    name: str,
    run_for: Callable[[float], int],
    seconds: float,
    *,
    rss_before: float,
    cameras: int,
    runtime: str,
) -> BenchPhase:
    """Time ``run_for(seconds)``, which runs the model on every frame it counts, as one phase.

    Every frame counted is analysed and inferred; RSS grows from ``rss_before`` over ``cameras``.
    """
    started, cpu_started = time.monotonic(), _cpu_s()
    frames = run_for(seconds)
    wall = time.monotonic() - started
    cpu_percent = 100 * (_cpu_s() - cpu_started) / wall
    rss = _rss_mb()
    return BenchPhase(
        name=name,
        analysed_fps=frames / wall,
        inferred_fps=frames / wall,
        cpu_percent=cpu_percent,
        rss_mb=rss,
        rss_per_camera_mb=(rss - rss_before) / cameras,
        runtime=runtime,
    )


def _compile_fp32_without_native_bf16() -> None:
    """Make this process's OpenVINO compile in fp32 where the CPU has no native bf16, as an AVX2-only CPU does.

    Under an instruction-set cap (``ONEDNN_MAX_CPU_ISA=AVX2`` on an AMX Xeon, how AVX2 boxes are
    measured here) OpenVINO still picks bf16 from the processor's flags, and ultralytics' compile
    fails ("Supported primitive descriptors list is empty"); anjian's own detector sets the hint.
    Only the peer's phase process calls this; a hint ultralytics sets itself wins.
    """
    from anjian.models.openvino_detector import cpu_has_native_bf16

    if cpu_has_native_bf16():
        return
    import openvino as ov

    compile_model = ov.Core.compile_model

    def compile_fp32(
        self: Any, model: Any, device_name: Any = None, config: Any = None, **kwargs: Any
    ) -> Any:
        return compile_model(
            self, model, device_name, {"INFERENCE_PRECISION_HINT": "f32", **(config or {})}, **kwargs
        )

    ov.Core.compile_model = compile_fp32


def _ultralytics_openvino_export(model: Path, imgsz: list[int], work_dir: Path) -> str:
    """What ``yolo export format=openvino`` gives for ``model``: ``<stem>_openvino_model/`` (fp32 IR + metadata.yaml).

    A ``.pt`` is exported by ultralytics itself; an ONNX file (no ``.pt`` to export from) is
    converted by OpenVINO the way ultralytics' exporter does (same weights, fp32, batch 1),
    with its ultralytics metadata written to the ``metadata.yaml`` ultralytics reads.
    """
    if model.suffix == ".pt":
        import shutil

        from ultralytics import YOLO  # type: ignore[attr-defined]

        copy = Path(shutil.copy2(model, work_dir / model.name))  # ultralytics writes beside its input
        return str(YOLO(str(copy)).export(format="openvino", imgsz=imgsz, half=False, int8=False))
    import onnx
    import openvino as ov
    import yaml

    fixed = _with_fixed_batch(model, work_dir)
    folder = Path(tempfile.mkdtemp(prefix="peer-", dir=work_dir)) / f"{model.stem}_openvino_model"
    folder.mkdir(parents=True)
    ov.save_model(ov.Core().read_model(fixed), str(folder / f"{model.stem}.xml"), compress_to_fp16=False)
    props = {p.key: p.value for p in onnx.load(fixed).metadata_props}
    # as ultralytics' exporter records it: a static H x W, so predict letterboxes to the full input
    props["args"] = repr({"batch": 1, "dynamic": False, "half": False, "int8": False, "nms": False})
    (folder / "metadata.yaml").write_text(yaml.safe_dump(props))
    return str(folder)


def _model_limit_phase(name: str, model: str, video: str, cameras: int, seconds: float) -> BenchPhase:
    """Raw throughput of the model as anjian compiles and feeds it: every infer request busy, no decoding.

    The input has the shape the pipeline feeds for ``video``'s frames (smaller than the
    nominal size for a dynamic-shape model), and each request takes as many of them as the
    engine gives it: a batch of one frame per camera (at most the engine's 8) split over the
    requests. Batch 1 would understate it: two images a request run 4.5% faster than one
    (anjian-n int8 at 320x256, 2 streams, AVX2: 136.6-137.7 against 131.1-132.1 images/s).
    Where the batch does not split evenly (3 frames on 2 requests: 2 and 1) every request takes
    the larger chunk: the limit errs high, never low.
    """
    import numpy as np
    import openvino as ov

    from anjian.models.config import DetectorConfig
    from anjian.models.loader import load_detector
    from anjian.models.openvino_detector import OpenVinoDetector

    precision = "fp32" if "fp32" in name else "auto"
    detector = load_detector(model, DetectorConfig(backend="openvino", device="cpu", cpu_precision=precision))
    detector = getattr(detector, "primary", detector)  # a second-stage pair: the limit is its primary model's
    if not isinstance(detector, OpenVinoDetector):
        raise TypeError(
            f"the model's limit is measured with OpenVINO; {model} loads as {type(detector).__name__}"
        )
    video_h, video_w = _video_size(video)
    frame = np.random.default_rng(0).integers(0, 256, (video_h, video_w, 3), dtype=np.uint8)
    chunk = detector.request_chunk(min(cameras, _MAX_BATCH))
    images = detector.model_input([frame] * chunk)  # what the pipeline feeds a request for the video's frames
    height, width = detector.input_hw_for((video_w, video_h))
    compiled = detector.compiled_model
    jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    queue = ov.AsyncInferQueue(compiled, jobs)

    def run_for(duration_s: float) -> int:
        done, until = 0, time.monotonic() + duration_s
        while time.monotonic() < until:
            queue.start_async({0: images})  # blocks while every request is busy
            done += chunk
        queue.wait_all()
        return done

    run_for(_WARMUP_S)
    runtime = f"OpenVINO {detector.precision} raw {width}x{height}, {jobs} requests of {chunk}"
    return _timed_phase(name, run_for, seconds, rss_before=_rss_mb(), cameras=1, runtime=runtime)


def _with_fixed_batch(path: Path, work_dir: Path) -> str:
    """An ONNX file with a fixed H x W but a dynamic batch, saved with batch 1 (same weights).

    ultralytics takes a dynamic batch for a dynamic shape and letterboxes to a smaller
    rectangle, which such a model refuses; with batch 1 it letterboxes to the full input.
    """
    if path.suffix != ".onnx":
        return str(path)
    import onnx

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not (dims[0].dim_param and dims[2].dim_value and dims[3].dim_value):
        return str(path)
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    fixed = Path(tempfile.mkdtemp(prefix="naive-", dir=work_dir)) / path.name  # goes with the bench's folder
    onnx.save(model, str(fixed))
    return str(fixed)


class _PullFileSource:
    """A file camera that decodes its next sampled frame only once the last one was taken.

    "As fast as possible" for the engine without the waste of a free-running reader:
    like the naive loop, it decodes only what gets analysed (decoding overlaps the
    analysis instead of racing it). Same surface as ``VideoSource``; bench only.
    """

    def __init__(self, config: Any, condition: threading.Condition) -> None:
        from anjian.cameras.health import HealthTracker

        self.config = config
        self._condition = condition
        self._stop = threading.Event()
        self._latest: Any = None
        self._health = HealthTracker(config.id, time.time())
        self._thread: threading.Thread | None = None
        self.is_finished = False

    @property
    def camera_id(self) -> str:
        return str(self.config.id)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"pull-{self.config.id}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.is_finished = True

    def health(self) -> Any:
        return self._health.snapshot()

    @property
    def keeps_every_frame(self) -> bool:
        return True

    def take_latest(self) -> Any:
        with self._condition:
            frame, self._latest = self._latest, None
            self._condition.notify_all()
            return frame

    def _run(self) -> None:
        from anjian.cameras.decode import decode_frames
        from anjian.cameras.health import CameraState

        self._health.set_state(CameraState.ONLINE, time.time())
        for frame in decode_frames(self.config, stop=self._stop):
            with self._condition:
                while self._latest is not None and not self._stop.is_set():
                    self._condition.wait(0.5)
                if self._stop.is_set():
                    return
                self._latest = frame
                self._condition.notify_all()
            self._health.delivered(frame.captured_at)


def _out_of_phase_cameras(cameras: int, analysis_fps: float) -> Callable[[Any, threading.Condition], Any]:
    """A source factory for the real-time phase: real ``VideoSource`` cameras started one after another.

    Live cameras run on their own clocks, so their sampled frames come spread over the analysis
    period. Copies of one file started together would hand in every camera's frame at the same
    instant, a burst no plant sends: at 40 cameras on an AVX2 2-core box, 40 frames every 0.5 s
    dropped 41 in 20 s at p95 0.43 s and 152% CPU. Each camera here starts ``1 / cameras`` of a
    period after the one before it (half a second in all at 2 fps, within the warm-up).
    """
    from anjian.cameras.source import VideoSource

    gap_s = 1.0 / analysis_fps / cameras

    class OutOfPhaseCamera(VideoSource):
        def start(self) -> None:
            time.sleep(gap_s)
            super().start()

    return lambda config, condition: OutOfPhaseCamera(config, new_frame=condition)


class _CountingSink:
    def __init__(self) -> None:
        self.events = 0

    def publish(self, event: object) -> None:
        self.events += 1


def _anjian_phase(
    name: str,
    model: str,
    video: str,
    cameras: int,
    analysis_fps: float,
    seconds: float,
    *,
    realtime: bool,
    gated: bool,
) -> BenchPhase:
    """``PipelineRunner`` over ``cameras`` copies of ``video``, measured after a warm-up."""
    import numpy as np

    from anjian.models.config import DetectorConfig
    from anjian.models.loader import load_detector
    from anjian.pipeline.config import BehavioursConfig, CameraPipelineConfig, OpenFlameConfig
    from anjian.pipeline.engine_config import EngineConfig, MotionGateConfig
    from anjian.pipeline.runner import CameraAssignment, PipelineRunner

    backend = "onnxruntime" if "onnxruntime" in name else "auto"
    precision = "fp32" if "fp32" in name else "auto"
    detector = load_detector(model, DetectorConfig(backend=backend, cpu_precision=precision))
    runtime = f"{type(detector).__name__} {getattr(detector, 'precision', 'fp32')}"
    max_batch = max(1, min(cameras, _MAX_BATCH))
    height, width = _video_size(video)
    # Warm up with a full batch, so the runtime's buffers are in RSS before the cameras start.
    detector.detect([np.zeros((height, width, 3), np.uint8)] * max_batch)
    rss_before = _rss_mb()
    engine = EngineConfig(motion_gate=MotionGateConfig(enabled=gated))
    assignments = [
        CameraAssignment(
            "bench",
            CameraPipelineConfig(
                id=f"cam-{i}",
                url=video,
                analysis_fps=analysis_fps,
                realtime=realtime,
                loop=True,
                behaviours=BehavioursConfig(open_flame=OpenFlameConfig()),
                engine=engine,
            ),
        )
        for i in range(cameras)
    ]
    runner = PipelineRunner(
        "bench",
        assignments,
        detector,
        _CountingSink(),
        max_batch=max_batch,
        source_factory=_out_of_phase_cameras(cameras, analysis_fps)
        if realtime
        else cast(Any, _PullFileSource),
    )
    runner.start()
    time.sleep(_WARMUP_S)
    before, cpu_started, decode_started, started = runner.stats(), _cpu_s(), decoder_cpu_s(), time.monotonic()
    time.sleep(seconds)
    after, decode_ended, wall = runner.stats(), decoder_cpu_s(), time.monotonic() - started
    cpu = 100 * (_cpu_s() - cpu_started) / wall
    rss = _rss_mb()
    runner.stop()
    batches = after.batcher.batches - before.batcher.batches
    return BenchPhase(
        name=name,
        analysed_fps=(after.frames_analysed - before.frames_analysed) / wall,
        inferred_fps=(after.frames_inferred - before.frames_inferred) / wall,
        cpu_percent=cpu,
        rss_mb=rss,
        rss_per_camera_mb=(rss - rss_before) / cameras,
        latency_p50_s=after.latency_p50_s if realtime else None,  # file time runs ahead of the clock
        latency_p95_s=after.latency_p95_s if realtime else None,
        dropped=after.frames_dropped - before.frames_dropped,
        mean_batch=(after.batcher.frames - before.batcher.frames) / batches if batches else 0.0,
        runtime=runtime,
        decode_cpu_percent=_decode_cpu_percent(decode_started, decode_ended, wall),
    )


def _export_onnx(pt_path: Path, imgsz: int, out_dir: Path) -> Path:
    """Export a copy of ``pt_path`` (ultralytics writes next to its input) to a dynamic-shape ONNX."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import shutil

    from ultralytics import YOLO  # type: ignore[attr-defined]

    copy = Path(shutil.copy2(pt_path, out_dir / pt_path.name))
    return Path(YOLO(str(copy)).export(format="onnx", dynamic=True, imgsz=imgsz, simplify=False))


def _video_size(video: str) -> tuple[int, int]:
    import av

    with av.open(video) as container:
        stream = container.streams.video[0]
        return int(stream.height), int(stream.width)


def _in_child(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one phase in a fresh process (spawned: nothing inherited) that ends with the bench.

    A bench killed outright (a timeout's SIGKILL) would otherwise leave its phase running on
    the cores for its full length, or for good in a loop that waits on input.
    """
    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_end_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        return pool.submit(function, *args, **kwargs).result()


def _end_with_parent(parent_pid: int) -> None:
    """In a phase's process: exit once ``parent_pid`` is gone (this process is handed to another parent)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_pipeline_bench(
    *,
    cameras: int,
    model: str,
    video: Path | None = None,
    analysis_fps: float = 2.0,
    seconds: float = 20.0,
    phases: tuple[str, ...] = DEFAULT_PHASES,
    cpu: str = "native",
    progress: Callable[[str], None] | None = None,
) -> PipelineBenchReport:
    """Measure the phases and return the report (see the module docstring).

    Args:
        cameras: Number of cameras, each reading its own copy of ``video``.
        model: ``.pt``, ``.onnx`` or ``builtin:NAME``; the naive loop runs it with ultralytics.
        video: Footage; a synthetic 30 s clip (640x360, 10 fps) is written when ``None``.
        analysis_fps: Frames sampled per second and camera (stream time).
        seconds: Measured seconds per phase (after a warm-up).
        phases: Which phases to run.
        cpu: Run every phase as this CPU (a key of ``cpu_mask.CPU_LEVELS``): ``avx2`` masks CPUID in
            the phases' processes so that every library runs its AVX2 code, as on most edge boxes.
        progress: Called with a line before each phase (and after one that fails).

    Returns:
        The phases that ran; one that fails (its runtime cannot compile the model on this CPU,
        say) is in ``failures`` with its reason, and the others still run.

    Raises:
        ValueError: ``cameras``, ``seconds`` or ``analysis_fps`` is not a positive number, the footage cannot
            be read, or this machine cannot run as ``cpu`` (``cpu_mask.build_cpu_mask`` says why).
    """
    if cameras < 1 or not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"cameras must be >= 1 and seconds > 0, got {cameras} and {seconds}")
    if not (math.isfinite(analysis_fps) and analysis_fps > 0):
        raise ValueError(f"analysis_fps must be a positive number, got {analysis_fps}")
    unknown = [p for p in phases if p not in _KNOWN_PHASES]
    if unknown:
        raise ValueError(f"unknown phase(s) {unknown}; known: {list(_KNOWN_PHASES)}")
    from anjian.models.registry import resolve_model_path

    say = progress or (lambda _line: None)
    with tempfile.TemporaryDirectory(prefix="anjian-bench-") as tmp:
        folder = Path(tmp)
        mask = build_cpu_mask(cpu, folder)
        if video is None:
            from anjian.datasets.synthetic import write_demo_video

            video = write_demo_video(folder / "demo.mp4", seconds=30, fps=10, size_wh=(640, 360))
        else:
            _check_video(video)
        model_path = resolve_model_path(model)
        engine_model = model_path
        if model_path.suffix == ".pt":
            say(f"exporting {model_path.name} to ONNX (dynamic shape) for anjian")
            engine_model = _in_child(_export_onnx, model_path, 640, folder)
        results: list[BenchPhase] = []
        failures: dict[str, str] = {}
        for name in phases:
            say(f"phase {name!r}: {seconds:g} s after {_WARMUP_S:g} s warm-up")
            try:
                with masked_children(mask):
                    phase = _run_phase(
                        name,
                        model_path,
                        engine_model,
                        video,
                        folder,
                        cameras=cameras,
                        analysis_fps=analysis_fps,
                        seconds=seconds,
                    )
                results.append(phase)
            except Exception as exc:  # noqa: BLE001 - one phase's failure is reported; the others still run
                failures[name] = _reason(exc)
                say(f"phase {name!r} failed: {failures[name]}")
    return PipelineBenchReport(
        cameras=cameras,
        model=model,
        video=str(video),
        analysis_fps=analysis_fps,
        seconds=seconds,
        phases=results,
        failures=failures,
        cpu="native" if mask is None else mask.description,
    )


def _check_video(video: Path) -> None:
    """Refuse footage no phase could read, before any phase spends minutes on it.

    Raises:
        ValueError: ``video`` is missing, not a file, or holds no decodable video frame.
    """
    import av

    if not video.is_file():
        raise ValueError(
            f"--video {video}: {'a folder' if video.is_dir() else 'no such file'}; give a video file"
        )
    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                raise ValueError(f"--video {video}: holds no video stream")
            next(container.decode(container.streams.video[0]))
    except (av.error.FFmpegError, StopIteration) as exc:
        raise ValueError(f"--video {video}: not a readable video ({str(exc) or 'no frame'})") from None


def _run_phase(
    name: str,
    model_path: Path,
    engine_model: Path,
    video: Path,
    folder: Path,
    *,
    cameras: int,
    analysis_fps: float,
    seconds: float,
) -> BenchPhase:
    """Run the phase called ``name`` in its own process."""
    if name in _PEERS:
        return cast(
            BenchPhase,
            _in_child(
                _naive_phase, name, str(model_path), str(video), cameras, analysis_fps, seconds, str(folder)
            ),
        )
    if name.startswith("model limit"):
        return cast(
            BenchPhase, _in_child(_model_limit_phase, name, str(engine_model), str(video), cameras, seconds)
        )
    return cast(
        BenchPhase,
        _in_child(
            _anjian_phase,
            name,
            str(engine_model),
            str(video),
            cameras,
            analysis_fps,
            seconds,
            realtime="real time" in name,
            gated="motion" in name,
        ),
    )


def _reason(exc: BaseException) -> str:
    """A failed phase's cause in one line: the exception's type and the last line of its message.

    OpenVINO's and ONNX Runtime's messages start with where the check sits in their sources and
    end with what went wrong ("Supported primitive descriptors list is empty for node ...").
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else 'no message'}"
