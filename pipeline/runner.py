"""Run the whole pipeline: cameras → cross-camera batches → detector → tracker → rules → events to a sink.

One reader thread per camera keeps only its newest frame (``cameras.CameraSet``). An
inference thread takes batches from the ``FrameBatcher``, skips inference on still
frames (motion gating, per camera) and runs the detector once per batch; an analysis
thread tracks each camera's detections (ByteTrack), feeds each camera's
``CameraAnalyzer`` and its ``CameraFaultMonitor``, and publishes every event revision
to the ``EventSink``. The two overlap: the rules of one batch run while the model
infers the next, so the model is not left idle while Python works (one batch waits
between them at most, in order). Cameras can be added, removed and reconfigured while
it runs, and the detector swapped between two batches, without touching the other cameras.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from anjian.cameras.camera_set import CameraSet
from anjian.cameras.config import CameraConfig
from anjian.cameras.frame import Frame
from anjian.cameras.health import CameraHealth, CameraState
from anjian.cameras.source import VideoSource
from anjian.models.detections import Detections
from anjian.models.detector import Detector, PendingDetections, start_detection
from anjian.pipeline.analyzer import CameraAnalyzer
from anjian.pipeline.batcher import BatcherStats, FrameBatcher, PendingFrame
from anjian.pipeline.camera_faults import AnalysisFailure, CameraFaultMonitor
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.engine_config import EngineConfig
from anjian.pipeline.event import Event
from anjian.pipeline.incident_journal import IncidentJournal
from anjian.pipeline.incidents import EventContext
from anjian.pipeline.log_throttle import LogThrottle
from anjian.pipeline.motion import MotionGate, is_occupied
from anjian.pipeline.sink import EventSink

if TYPE_CHECKING:
    from anjian.pipeline.live import LiveView
from anjian.pipeline.tracking import CameraTracker

__all__ = ["CameraAssignment", "PipelineRunner", "RunnerStats", "measured_clip_grace_s"]

logger = logging.getLogger(__name__)

_LATENCY_WINDOW = 2048  # latencies kept for the percentiles
_TICK_INTERVAL_S = 1.0  # how often analyzers of live cameras are ticked (those of down cameras expired)
_CLIP_INFERENCE_GRACE_S = 2.0
"""Beyond ``max_frame_age_s``, how long a frame batched just before it went stale may still take to reach the
rules (the batch ahead of it on the model, then its own): the clip grace until frames have been measured."""
_CLIP_GRACE_MARGIN_S = 1.0
"""Added to the slowest recent frame's way from capture to the rules: the measured clip grace."""
_INFERENCE_FAILURE_LOG_S = 60.0  # a failing inference step is logged at first, then this often
_FAILURE_REASON_CHARS = 300  # of a failed step's error, in the log and the cameras' not_analysed fault
_DOWN = frozenset({CameraState.STALLED, CameraState.OFFLINE, CameraState.FAILED_CONFIG})
"""States of a camera whose analyzer is expired rather than ticked: it sends nothing, and may not for long."""


@dataclass(frozen=True, slots=True)
class CameraAssignment:
    """A camera to analyse and the workshop it belongs to."""

    workshop_id: str
    camera: CameraPipelineConfig


@dataclass(frozen=True, slots=True)
class RunnerStats:
    """What the analysis loop has done since start.

    Attributes:
        frames_analysed: Frames whose detections reached the rules.
        frames_inferred: Of those, frames the detector ran on.
        frames_skipped_motion: Frames motion gating spared the detector (compute saved).
        frames_dropped: Frames never analysed: replaced in a camera before the loop took
            them, superseded while pending, or dropped as stale.
        inference_s: Seconds spent in the detector.
        latency_p50_s: Median capture → rule-result latency over recent frames (``None`` before any).
        latency_p95_s: 95th percentile of the same.
        events_published: Event revisions handed to the sink.
        detector_swaps: Detectors swapped in while running.
        batcher: The batcher's own counters.
    """

    frames_analysed: int
    frames_inferred: int
    frames_skipped_motion: int
    frames_dropped: int
    inference_s: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    events_published: int
    detector_swaps: int
    batcher: BatcherStats


@dataclass(slots=True)
class _CameraWorker:
    """Everything the analysis loop keeps for one camera."""

    assignment: CameraAssignment
    analyzer: CameraAnalyzer
    monitor: CameraFaultMonitor
    tracker: CameraTracker
    gate: MotionGate
    # The runner's detector generation whose version and thresholds the analyzer has (the analysis
    # thread's view): a number, not the Detector, so that a camera sending nothing holds no old model.
    rules_generation: int
    # The detector generation whose detections the tracker follows (the analysis thread's view;
    # ``None``: none yet): another model's detections start afresh, tracks never cross a swap.
    tracked_generation: int | None = None
    last_detections: Detections | None = None  # the inference thread's: reused on motion-gated frames
    faults_checked_at: float = field(default=float("-inf"))
    ticked_at: float = field(default=float("-inf"))


@dataclass(frozen=True, slots=True)
class _SubmittedBatch:
    """A batch whose inference was started: its frames, which of them the model runs on, and the run."""

    detector: Detector
    generation: int  # the runner's detector generation ``detector`` is
    frames: list[tuple[_CameraWorker, Frame, bool]]  # (camera, frame, inferred)
    pending: PendingDetections | None
    started: float

    def is_ready(self) -> bool:
        """Whether the model is done with this batch (or never ran on it)."""
        return self.pending is None or self.pending.is_ready()


@dataclass(frozen=True, slots=True)
class _InferredBatch:
    """A batch on its way from the inference thread to the rules: each frame with the detections it gets."""

    detector: Detector
    generation: int
    frames: list[tuple[_CameraWorker, Frame, Detections]]


def _is_alive(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()


def _engine(camera: CameraPipelineConfig) -> EngineConfig:
    engine = getattr(camera, "engine", None)
    return engine if isinstance(engine, EngineConfig) else EngineConfig()


_NON_RULE_FIELDS = frozenset({"engine", "evidence"})
"""Pipeline fields the rules do not depend on: tracking and motion gating (the worker's), clips (the analyzer's)."""


def _rule_settings(camera: CameraPipelineConfig) -> dict[str, object]:
    """The fields a camera's rules depend on: zones, anchors, schedules, behaviours (not the source's own)."""
    return {
        name: getattr(camera, name)
        for name in type(camera).model_fields
        if name not in CameraConfig.model_fields and name not in _NON_RULE_FIELDS
    }


class PipelineRunner:
    """Reads every camera, detects in batches across cameras, tracks, applies rules, publishes events.

    A dead or slow camera never holds the others back: the batcher waits for no one
    beyond a short deadline, and camera faults (offline, frozen, black) are still
    raised for a camera that sends nothing.

    Example:
        >>> runner = PipelineRunner("site-1", assignments, detector, sink)
        >>> runner.start()
        >>> runner.add_camera(CameraAssignment("ws-2", new_camera))
        >>> runner.swap_detector(retrained)
        >>> runner.stop()
    """

    def __init__(
        self,
        site_id: str,
        assignments: list[CameraAssignment],
        detector: Detector,
        sink: EventSink,
        *,
        clock: Callable[[], float] = time.time,
        max_batch: int = 8,
        batch_deadline_s: float = 0.02,
        max_frame_age_s: float = 2.0,
        fault_check_interval_s: float = 0.5,
        time_zone: str = "UTC",
        language: str = "en",
        source_factory: Callable[[CameraPipelineConfig, threading.Condition], VideoSource] | None = None,
        incident_journal: IncidentJournal | None = None,
        live_view: LiveView | None = None,
    ) -> None:
        """Create a stopped runner.

        Args:
            site_id: Site of every event.
            assignments: Cameras and their workshops; disabled cameras are skipped.
            detector: Runs on every batch.
            sink: Receives every event revision.
            clock: Wall clock, epoch seconds.
            max_batch: Most frames per detector batch.
            batch_deadline_s: Once a frame is ready, longest wait for frames of other cameras.
            max_frame_age_s: A frame not analysed within this long after it arrived is dropped.
            fault_check_interval_s: How often cameras that send no frames are checked for faults.
            time_zone: IANA time zone of the site, for schedules that name none.
            language: Language of the event messages, ``en`` or ``zh-CN`` (``site.language``).
            source_factory: Builds a camera source (tests inject fakes); ``VideoSource`` by default.
            incident_journal: Keeps open incidents across a restart: ``stop`` leaves them
                open and the next runner over the same journal carries on with them.
                ``None``: ``stop`` closes them.
            live_view: Receives every analysed frame with its tracked detections (a
                reference, drawn only when a screen asks: ``pipeline.live``).
        """
        self.site_id = site_id
        self.incident_journal = incident_journal
        self.live_view = live_view
        self.time_zone = time_zone
        self.language = language
        self.detector = detector
        self.sink = sink
        self._clock = clock
        self._fault_check_interval_s = fault_check_interval_s
        self._cameras = CameraSet(clock=clock, source_factory=source_factory)  # type: ignore[arg-type]
        self._batcher = FrameBatcher(
            self._cameras.new_frame,
            max_batch=max_batch,
            deadline_s=batch_deadline_s,
            max_age_s=max_frame_age_s,
        )
        self._clip_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clips")
        self._unmeasured_clip_grace_s = max_frame_age_s + _CLIP_INFERENCE_GRACE_S
        self._lock = threading.RLock()  # held while a batch is analysed and while cameras change
        self._workers: dict[str, _CameraWorker] = {}
        self._pending_detector: Detector | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # analysis: tracking, rules, faults, publishing
        self._infer_thread: threading.Thread | None = None
        # One batch waits for the rules while the next is inferred; None: no batch will follow.
        self._inferred: queue.Queue[_InferredBatch | None] = queue.Queue(maxsize=1)
        self.frames_analysed = 0
        self.frames_inferred = 0
        self.events_published = 0
        self._inference_s = 0.0
        self._detector_swaps = 0  # also the detector's generation: batches and rules compare it
        self._latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        # Set by the inference thread while every batch fails (read by the analysis thread's fault checks).
        self.analysis_failure: AnalysisFailure | None = None
        self._inference_failure_log = LogThrottle(_INFERENCE_FAILURE_LOG_S)
        for assignment in assignments:
            self.add_camera(assignment)

    # ----------------------------------------------------------------- cameras

    def camera_ids(self) -> list[str]:
        """Ids of the cameras being analysed, in the order they were added."""
        return self._cameras.ids()

    def camera_configs(self) -> list[CameraPipelineConfig]:
        """The settings of the cameras being analysed (their rules' included)."""
        with self._lock:
            return [worker.assignment.camera for worker in self._workers.values()]

    def add_camera(self, assignment: CameraAssignment) -> bool:
        """Start analysing a camera (at once if the runner is running).

        Returns:
            False if the camera is disabled (nothing is done), True once added.

        Raises:
            ValueError: A camera with this id is already analysed.
        """
        camera = assignment.camera
        if not camera.enabled:
            return False
        with self._lock:
            if camera.id in self._workers:
                raise ValueError(
                    f"camera {camera.id!r} is already analysed; use update_camera() to change it"
                )
            self._workers[camera.id] = self._new_worker(assignment)
            self._cameras.add(camera)
        return True

    def remove_camera(self, camera_id: str) -> bool:
        """Stop analysing a camera, closing its open incidents and faults (published to the sink).

        Returns:
            Whether the camera was there.
        """
        with self._lock:
            worker = self._workers.pop(camera_id, None)
            self._batcher.forget(camera_id)
        if self.live_view is not None:
            self.live_view.forget(camera_id)
        if worker is None:
            return False
        self._cameras.remove(camera_id)
        self._close_worker(worker)
        logger.info("%s: camera no longer analysed", camera_id)
        return True

    def update_camera(self, assignment: CameraAssignment) -> None:
        """Apply a camera's new settings, touching only what changed and no other camera.

        The reader restarts only when how the stream is read changed; the rules are
        rebuilt (open incidents closed) only when zones, anchors, schedules, behaviours
        or the workshop changed; tracking and motion gating restart when their settings
        or the analysis rate changed; new clip settings apply to the next clips. A
        disabled camera is removed, an unknown one added.

        Every camera's analysis needs the runner's lock, so only the swaps happen under
        it: the old reader is stopped (up to a second for one stuck connecting) and the
        old rules' pending clips encoded after it is let go.
        """
        camera = assignment.camera
        if not camera.enabled:
            self.remove_camera(camera.id)
            return
        closed: list[Event] = []
        retired: CameraAnalyzer | None = None
        with self._lock:
            old = self._workers.get(camera.id)
            if old is None:
                self.add_camera(assignment)
                return
            _, old_reader = self._cameras.replace(camera)
            previous = old.assignment.camera
            now = self._clock()
            if assignment.workshop_id != old.assignment.workshop_id or _rule_settings(
                previous
            ) != _rule_settings(camera):
                # Closed before the new rules exist: with a journal, they must not take these incidents over.
                closed += old.analyzer.close_incidents(now)
                retired = old.analyzer
                old.analyzer = self._new_analyzer(camera, self._context(assignment))
                old.rules_generation = self._detector_swaps
                old.last_detections = None
            elif camera != previous:
                old.analyzer.set_camera(camera)  # source, engine or evidence: the incidents carry on
            if camera.faults != previous.faults or assignment.workshop_id != old.assignment.workshop_id:
                closed += [u.event for u in old.monitor.close(now)]
                old.monitor = CameraFaultMonitor(camera, self._context(assignment))
            if _engine(camera) != _engine(previous) or camera.analysis_fps != previous.analysis_fps:
                # the incidents carry on: the tracks restart under ids never handed out on this camera
                old.tracker.reconfigure(_engine(camera).tracking, fps=camera.analysis_fps)
                old.gate = MotionGate(_engine(camera).motion_gate)
            old.assignment = assignment
        for event in closed:
            self._publish(event)
        if old_reader is not None:
            self._cameras.retire(old_reader)
        if retired is not None:
            for event in retired.finish_clips(now):  # nothing else reaches the retired rules now
                self._publish(event)

    def reset_reference(self, camera_id: str, zone_id: str) -> bool:
        """Forget the learned clear/clean view of a zone (relearned the next time it is seen clear).

        Returns:
            True when a rule of that camera kept a reference for the zone.

        Raises:
            KeyError: The camera is not analysed.
        """
        with self._lock:  # the analysis thread holds it while it runs the rules
            worker = self._workers.get(camera_id)
            if worker is None:
                raise KeyError(camera_id)
            return worker.analyzer.reset_reference(zone_id)

    def swap_detector(self, detector: Detector) -> None:
        """Use ``detector`` from the next batch on (a retrained model); no camera is dropped.

        Each camera's next frame is inferred whatever motion gating says, so no rule
        sees the old model's detections after the swap.
        """
        with self._lock:
            self._pending_detector = detector
            if not _is_alive(self._infer_thread):
                self._apply_pending_detector()

    # ----------------------------------------------------------------- state

    def health(self) -> list[CameraHealth]:
        """Health of every camera, in the order they were added."""
        return self._cameras.health()

    def stats(self) -> RunnerStats:
        """Counters of the analysis loop (frames, compute saved, drops, latency)."""
        # No lock: stats must answer while the rules run; a copy of the table is taken atomically.
        skipped = sum(w.gate.stats.frames_skipped for w in list(self._workers.values()))
        batcher = self._batcher.stats()
        source_drops = sum(h.frames_dropped for h in self._cameras.health())
        latencies = np.asarray(self._latencies, dtype=np.float64)
        p50, p95 = (float(v) for v in np.percentile(latencies, [50, 95])) if len(latencies) else (None, None)
        return RunnerStats(
            frames_analysed=self.frames_analysed,
            frames_inferred=self.frames_inferred,
            frames_skipped_motion=skipped,
            frames_dropped=source_drops + batcher.frames_superseded + batcher.frames_stale,
            inference_s=self._inference_s,
            latency_p50_s=p50,
            latency_p95_s=p95,
            events_published=self.events_published,
            detector_swaps=self._detector_swaps,
            batcher=batcher,
        )

    @property
    def is_finished(self) -> bool:
        """True when every source has ended (only possible with non-looping files); never without cameras.

        A runner with no camera now (a pipeline node before it leases any, or a reload that
        removed them all) keeps running for the cameras added later.
        """
        sources = self._cameras.sources()
        return bool(sources) and all(source.is_finished for source in sources)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the camera readers, the inference thread and the analysis thread."""
        self._stop.clear()
        self._inferred = queue.Queue(maxsize=1)
        self._cameras.start()
        self._infer_thread = threading.Thread(target=self._infer_loop, name="pipeline-infer", daemon=True)
        self._thread = threading.Thread(target=self._analysis_loop, name="pipeline", daemon=True)
        self._infer_thread.start()
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop readers and analysis, closing every open incident and fault (kept open with a journal)."""
        if self.incident_journal is not None:
            self.incident_journal.suspend()  # a restart resumes them: no ended_at goes out
        self._stop.set()
        self._cameras.stop()
        for thread in (self._infer_thread, self._thread):
            if thread is not None:
                thread.join(timeout_s)
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            self._close_worker(worker)
        self._clip_executor.shutdown(wait=True)

    def wait_finished(self, timeout_s: float) -> bool:
        """Block until every source has ended and its last frame was analysed."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # ----------------------------------------------------------------- internals

    def _context(self, assignment: CameraAssignment) -> EventContext:
        return EventContext(
            site_id=self.site_id,
            workshop_id=assignment.workshop_id,
            camera_id=assignment.camera.id,
            model_version=self.detector.version,
            time_zone=self.time_zone,
            language=self.language,
            journal=self.incident_journal,
        )

    def _new_worker(self, assignment: CameraAssignment) -> _CameraWorker:
        camera = assignment.camera
        context = self._context(assignment)
        engine = _engine(camera)
        return _CameraWorker(
            assignment=assignment,
            analyzer=self._new_analyzer(camera, context),
            monitor=CameraFaultMonitor(camera, context),
            tracker=CameraTracker(engine.tracking, fps=camera.analysis_fps, camera_id=camera.id),
            gate=MotionGate(engine.motion_gate),
            rules_generation=self._detector_swaps,
        )

    def _new_analyzer(self, camera: CameraPipelineConfig, context: EventContext) -> CameraAnalyzer:
        return CameraAnalyzer(
            camera,
            context,
            clip_executor=self._clip_executor,
            class_thresholds=self.detector.class_thresholds,
            clip_grace_s=self._clip_grace_s(),
        )

    def _close_worker(self, worker: _CameraWorker) -> None:
        now = self._clock()
        events = worker.analyzer.close(now) + [u.event for u in worker.monitor.close(now)]
        for event in events:
            self._publish(event)

    def _apply_pending_detector(self) -> None:
        """Infer with the pending detector from now on (the rules follow with its first batch)."""
        with self._lock:
            detector, self._pending_detector = self._pending_detector, None
            if detector is None:
                return
            self.detector = detector
            self._detector_swaps += 1
            for worker in self._workers.values():
                worker.last_detections = None
                worker.gate.reset()
                if not (_is_alive(self._infer_thread) and _is_alive(self._thread)):
                    # no batch in flight: the rules follow now
                    self._use_rules_model(worker, detector, self._detector_swaps)
        logger.info("pipeline: detector swapped to %s", detector.version)

    @staticmethod
    def _use_rules_model(worker: _CameraWorker, detector: Detector, generation: int) -> None:
        """Give the camera's rules the version and score thresholds of the model whose detections they get.

        The camera's tracker restarts with the first detections of another model (new track
        ids, never reused): that model may order or name its classes differently, and a track
        born as one class must not continue as another. The rules follow their objects across
        by box overlap, as across a track id switch, so an open incident carries on.
        """
        if worker.tracked_generation not in (None, generation):
            worker.tracker.restart()
        worker.tracked_generation = generation
        if worker.rules_generation != generation:
            worker.rules_generation = generation
            worker.analyzer.set_model_version(detector.version)
            worker.analyzer.set_class_thresholds(detector.class_thresholds)

    def _infer_loop(self) -> None:
        """Take batches, infer them, hand them to the analysis thread; ``None`` to it once the sources end.

        While a batch is on the model, the next one is gathered and started behind it as its
        frames come (a loaded pipeline: the model always has the next batch queued and never
        waits for Python to collect, decode and letterbox); the running batch is collected
        as soon as the model is done with it, with or without a next one (a light load adds
        no latency).
        """
        in_flight: _SubmittedBatch | None = None
        while not self._stop.is_set():
            try:
                batch = self._batcher.next_batch(
                    self._cameras.sources,
                    timeout_s=self._fault_check_interval_s,
                    until=in_flight.is_ready if in_flight is not None else None,
                )
                if not batch and in_flight is None and self.is_finished:
                    # Sources flag "finished" after publishing their last frame: one more sweep.
                    batch = self._batcher.next_batch(self._cameras.sources, timeout_s=0.0)
                    if not batch:
                        break
                submitted = self._submit(batch) if batch else None
                if in_flight is not None:
                    collected = self._collect(in_flight)
                    self._inference_works()
                    self._hand_over(collected)
                in_flight = submitted
            except Exception as exc:  # noqa: BLE001 - logged, counted and raised as a camera fault; the loop goes on
                in_flight = None
                self._inference_failed(exc)
                self._stop.wait(0.5)
        if in_flight is not None and not self._stop.is_set():
            self._hand_over(self._collect(in_flight))
        self._hand_over(None)

    def _inference_failed(self, exc: Exception) -> None:
        """Record a failed inference step: its cameras' frames are not analysed.

        The first failure of a run is logged with its traceback, later ones once a minute
        with their count; ``analysis_failure`` lets each online camera raise a
        ``not_analysed`` fault (a model that loads but cannot run left every camera
        "online" with nothing analysed and two tracebacks a second, for good).
        """
        reason = f"{type(exc).__name__}: {str(exc).strip()}"[:_FAILURE_REASON_CHARS]
        failure = self.analysis_failure
        self.analysis_failure = AnalysisFailure(self._clock() if failure is None else failure.since, reason)
        admitted = self._inference_failure_log.admit()
        if admitted is None:
            return
        if admitted.is_first:
            logger.exception("pipeline: inference step failed; no frame is analysed until it works")
        else:
            logger.error(
                "pipeline: inference still failing (%d more failed step(s) since the last line): %s",
                admitted.held_back,
                reason,
            )

    def _inference_works(self) -> None:
        """After failed inference steps, say once that a batch was inferred again."""
        failure = self.analysis_failure
        if failure is None:
            return
        self.analysis_failure = None
        self._inference_failure_log.forget()
        logger.info("pipeline: inference works again after %.0f s of failures", self._clock() - failure.since)

    def _hand_over(self, inferred: _InferredBatch | None) -> None:
        """Queue a batch for the rules, waiting while the previous one is still queued (unless stopping)."""
        while not self._stop.is_set():
            try:
                self._inferred.put(inferred, timeout=0.25)
                return
            except queue.Full:
                continue

    def _submit(self, batch: list[PendingFrame]) -> _SubmittedBatch:
        """Start the detector on the batch's frames that motion gating lets through."""
        self._apply_pending_detector()
        with self._lock:
            detector, generation = self.detector, self._detector_swaps
            frames = [
                (
                    w,
                    p.frame,
                    w.gate.should_infer(
                        p.frame.image, p.frame.captured_at, is_occupied=is_occupied(w.last_detections)
                    )
                    or w.last_detections is None,
                )
                for p in batch
                if (w := self._workers.get(p.frame.camera_id)) is not None
            ]
        images = [f.image for _, f, inferred in frames if inferred]
        started = time.perf_counter()
        return _SubmittedBatch(
            detector, generation, frames, start_detection(detector, images) if images else None, started
        )

    def _collect(self, submitted: _SubmittedBatch) -> _InferredBatch:
        """Wait for a started batch; frames the model skipped reuse their camera's latest detections."""
        detections = iter(submitted.pending.result() if submitted.pending is not None else [])
        inferred = sum(1 for *_, is_inferred in submitted.frames if is_inferred)
        if inferred:
            self._inference_s += time.perf_counter() - submitted.started
            self.frames_inferred += inferred
        frames: list[tuple[_CameraWorker, Frame, Detections]] = []
        with self._lock:
            # A batch started before a detector swap still reaches the rules, but its detections are
            # not reused: each camera's next frame goes to the new model whatever motion gating says.
            is_current = submitted.detector is self.detector
            for worker, frame, is_inferred in submitted.frames:
                dets = next(detections) if is_inferred else worker.last_detections
                if is_inferred and is_current:
                    worker.last_detections = dets
                if dets is not None:
                    frames.append((worker, frame, dets))
        return _InferredBatch(submitted.detector, submitted.generation, frames)

    def _analysis_loop(self) -> None:
        """Track, apply the rules and publish each inferred batch in order; check idle cameras between them."""
        while not self._stop.is_set():
            try:
                try:
                    inferred = self._inferred.get(timeout=self._fault_check_interval_s)
                except queue.Empty:
                    inferred = _InferredBatch(self.detector, self._detector_swaps, [])
                if inferred is None:
                    break
                with self._lock:
                    for worker, frame, detections in inferred.frames:
                        if self._workers.get(worker.assignment.camera.id) is worker:  # not removed meanwhile
                            self._use_rules_model(worker, inferred.detector, inferred.generation)
                            self._analyse_frame(worker, frame, detections)
                    self._check_idle_cameras()
            except Exception:
                logger.exception("pipeline: analysis step failed; continuing")
                self._stop.wait(0.5)

    def _analyse_frame(self, worker: _CameraWorker, frame: Frame, detections: Detections) -> None:
        camera_id = worker.assignment.camera.id
        events: list[Event] = []
        try:
            tracked = worker.tracker.update(detections, frame.captured_at)
            if self.live_view is not None:
                self.live_view.update(frame, tracked, worker.assignment.camera.zones)
            events += worker.analyzer.process(frame, tracked)
        except Exception:
            logger.exception("%s: analysis failed on frame %d", camera_id, frame.index)
        now = self._clock()
        self.frames_analysed += 1
        self._latencies.append(now - frame.captured_at)
        source = self._cameras.get(camera_id)
        if source is not None:
            events += [
                u.event
                for u in worker.monitor.observe(
                    source.health(), frame, now, analysis_failure=self.analysis_failure
                )
            ]
            worker.faults_checked_at = time.monotonic()
        for event in events:
            self._publish(event)

    def _check_idle_cameras(self) -> None:
        """Fault-check cameras that sent no frame lately; tick live cameras' analyzers, expire down ones'.

        Offline faults thus rise without frames, time-based rules (absence from post)
        keep counting while a motion-gated or slow camera sends nothing, and the
        incidents of a camera that is down end at their last sighting instead of lasting
        through the outage (``CameraAnalyzer.expire``).
        """
        monotonic = time.monotonic()
        now = self._clock()
        clip_grace_s: float | None = (
            None  # measured once, and only when a camera ticks (this runs after every batch)
        )
        for camera_id, worker in self._workers.items():
            source = self._cameras.get(camera_id)
            if source is None:
                continue
            health = source.health()
            events: list[Event] = []
            if worker.faults_checked_at <= monotonic - self._fault_check_interval_s:
                worker.faults_checked_at = monotonic
                events += [
                    u.event
                    for u in worker.monitor.observe(health, None, now, analysis_failure=self.analysis_failure)
                ]
            is_online = health.state == CameraState.ONLINE
            if (is_online or health.state in _DOWN) and worker.ticked_at <= monotonic - _TICK_INTERVAL_S:
                worker.ticked_at = monotonic
                if clip_grace_s is None:
                    clip_grace_s = self._clip_grace_s()
                worker.analyzer.clip_grace_s = clip_grace_s
                try:
                    events += worker.analyzer.tick(now) if is_online else worker.analyzer.expire(now)
                except Exception:
                    logger.exception("%s: analyzer %s failed", camera_id, "tick" if is_online else "expire")
            for event in events:
                self._publish(event)

    def _clip_grace_s(self) -> float:
        """How long after a clip's end a tick waits for its last frames (see ``measured_clip_grace_s``)."""
        return measured_clip_grace_s(self._latencies, self._unmeasured_clip_grace_s)

    def _publish(self, event: Event) -> None:
        state = "ended" if event.ended_at is not None else ("raised" if event.revision == 1 else "updated")
        logger.info(
            "%s: %s %s (revision %d, confidence %.2f)",
            event.camera_id,
            event.behaviour,
            state,
            event.revision,
            event.confidence,
        )
        try:
            self.sink.publish(event)
            self.events_published += 1
        except Exception:
            logger.exception("%s: event sink failed for %s", event.camera_id, event.id)


def measured_clip_grace_s(latencies: Iterable[float], unmeasured_s: float) -> float:
    """How long after a clip's end to wait for frames captured before it: measured, not guessed.

    A frame reaches the rules its latency (queue, batch, model) after its capture; a clip cut
    sooner than the slowest recent latency after its end loses its last frames, one cut much
    later reaches the control room late. So: the slowest recent latency plus a margin, at most
    three times ``unmeasured_s`` (a clock step is no latency), and ``unmeasured_s`` (the
    static bound) until a frame has been measured. Negative latencies (a file decoded faster
    than real time runs ahead of the clock) say nothing and are skipped.

    Example:
        >>> measured_clip_grace_s([0.2, 0.4, 0.3], unmeasured_s=4.0)
        1.4
        >>> measured_clip_grace_s([], unmeasured_s=4.0)
        4.0
    """
    slowest = max((latency for latency in latencies if latency >= 0), default=None)
    if slowest is None:
        return unmeasured_s
    return round(min(slowest + _CLIP_GRACE_MARGIN_S, 3 * unmeasured_s), 3)
