"""Run the whole pipeline: camera sources → batched detection → rules → events to a sink."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cameras.frame import Frame
from cameras.health import CameraHealth
from cameras.source import VideoSource
from models.detector import Detector
from pipeline.analyzer import CameraAnalyzer
from pipeline.config import CameraPipelineConfig
from pipeline.event import Event
from pipeline.incidents import EventContext
from pipeline.sink import EventSink

__all__ = ["CameraAssignment", "PipelineRunner"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraAssignment:
    """A camera to analyse and the workshop it belongs to."""

    workshop_id: str
    camera: CameraPipelineConfig


@dataclass(slots=True)
class _CameraWorker:
    assignment: CameraAssignment
    source: VideoSource
    analyzer: CameraAnalyzer


class PipelineRunner:
    """Reads every camera, detects in batches across cameras, applies rules, publishes events.

    Each camera has its own reader thread keeping only its newest frame; the runner
    thread takes whatever is new from every camera, runs one detector batch, and
    feeds each camera's rules. A dead or slow camera never holds the others back.

    Example:
        >>> runner = PipelineRunner("site-1", assignments, detector, sink)
        >>> runner.start(); ...; runner.stop()
    """

    def __init__(
        self,
        site_id: str,
        assignments: list[CameraAssignment],
        detector: Detector,
        sink: EventSink,
        *,
        clock: Callable[[], float] = time.time,
        max_batch: int = 16,
        source_factory: Callable[[CameraPipelineConfig, threading.Condition], VideoSource] | None = None,
    ) -> None:
        self.site_id = site_id
        self.detector = detector
        self.sink = sink
        self._clock = clock
        self._max_batch = max_batch
        self._new_frame = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_analysed = 0
        self.events_published = 0
        factory = source_factory or (lambda cfg, cond: VideoSource(cfg, clock=clock, new_frame=cond))
        self._workers: list[_CameraWorker] = []
        for assignment in assignments:
            camera = assignment.camera
            if not camera.enabled:
                continue
            context = EventContext(
                site_id=site_id,
                workshop_id=assignment.workshop_id,
                camera_id=camera.id,
                model_version=detector.version,
            )
            self._workers.append(
                _CameraWorker(assignment, factory(camera, self._new_frame), CameraAnalyzer(camera, context))
            )

    def health(self) -> list[CameraHealth]:
        """Health of every camera, in configuration order."""
        return [w.source.health() for w in self._workers]

    @property
    def is_finished(self) -> bool:
        """True when every source has ended (only possible with non-looping files)."""
        return all(w.source.is_finished for w in self._workers)

    def start(self) -> None:
        """Start the camera readers and the analysis thread."""
        for worker in self._workers:
            worker.source.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop readers and analysis, closing any open incidents."""
        self._stop.set()
        for worker in self._workers:
            worker.source.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
        now = self._clock()
        for worker in self._workers:
            for event in worker.analyzer.close(now):
                self._publish(event)

    def wait_finished(self, timeout_s: float) -> bool:
        """Block until every source has ended and its last frame was analysed."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _collect(self) -> list[tuple[_CameraWorker, Frame]]:
        with self._new_frame:
            batch = [(w, f) for w in self._workers if (f := w.source.take_latest()) is not None]
            if not batch and not self._stop.is_set():
                self._new_frame.wait(0.2)
                batch = [(w, f) for w in self._workers if (f := w.source.take_latest()) is not None]
        return batch[: self._max_batch]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._collect()
                if not batch:
                    if self.is_finished:
                        # Sources flag "finished" after publishing their last frame: one more sweep.
                        batch = self._collect()
                        if not batch:
                            break
                    else:
                        continue
                self._analyse(batch)
            except Exception:
                logger.exception("pipeline: analysis step failed; continuing")
                self._stop.wait(0.5)

    def _analyse(self, batch: list[tuple[_CameraWorker, Frame]]) -> None:
        detections = self.detector.detect([frame.image for _, frame in batch])
        self.frames_analysed += len(batch)
        for (worker, frame), dets in zip(batch, detections, strict=True):
            try:
                events = worker.analyzer.process(frame, dets)
            except Exception:
                logger.exception("%s: analysis failed on frame %d", worker.assignment.camera.id, frame.index)
                continue
            for event in events:
                self._publish(event)

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
