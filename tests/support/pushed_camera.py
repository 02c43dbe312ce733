"""A camera whose frames the test pushes, with the surface of ``anjian.cameras.source.VideoSource``.

The pipeline tests and the service's restart test drive the real runner with it: a frame exists
only when the test pushes one, and a camera never pushed stays down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from anjian.cameras.config import CameraConfig
from anjian.cameras.frame import Frame
from anjian.cameras.health import CameraHealth, CameraState, HealthTracker
from anjian.pipeline.camera_config import CameraPipelineConfig
from anjian.pipeline.runner import CameraAssignment, PipelineRunner
from anjian.pipeline.sink import EventSink

__all__ = ["PushedCamera", "PushedCameras", "pushed_runner"]


class PushedCamera:
    """Holds the latest pushed frame (as ``VideoSource`` holds the latest decoded one) and counts its starts.

    Args:
        config: The camera (its ``id`` names the frames).
        condition: The runner's frame condition, notified at each push.
    """

    keeps_every_frame = False  # like a live camera: a newer push replaces a frame still waiting for its batch

    def __init__(self, config: CameraConfig, condition: threading.Condition) -> None:
        self.config = config
        self._condition = condition
        self._latest: Frame | None = None
        self._index = 0
        self._health = HealthTracker(config.id, time.time())
        self.starts = 0
        self.is_finished = False

    @property
    def camera_id(self) -> str:
        return self.config.id

    def start(self) -> None:
        self.starts += 1

    def stop(self, timeout_s: float = 5.0) -> None:
        self._health.set_state(CameraState.STOPPED, time.time())

    def health(self) -> CameraHealth:
        return self._health.snapshot()

    def push(self, image: np.ndarray) -> None:
        """Deliver ``image`` as the camera's newest frame, now."""
        now = time.time()
        self._health.set_state(CameraState.ONLINE, now)
        with self._condition:
            self._latest = Frame(self.config.id, image, captured_at=now, pts_s=0.0, index=self._index)
            self._index += 1
            self._condition.notify_all()
        self._health.delivered(now)

    def take_latest(self) -> Frame | None:
        with self._condition:
            frame, self._latest = self._latest, None
            return frame


class PushedCameras(dict[str, PushedCamera]):
    """The cameras a runner opened, by id: pass ``open`` as the runner's ``source_factory``."""

    def open(self, config: CameraConfig, condition: threading.Condition) -> PushedCamera:
        """Open (create) the pushed camera of ``config``, as ``VideoSource`` would be opened."""
        self[config.id] = PushedCamera(config, condition)
        return self[config.id]


def pushed_runner(
    site_id: str,
    workshop_id: str,
    cameras: Sequence[CameraPipelineConfig],
    detector: Any,
    sink: EventSink,
    **options: Any,
) -> tuple[PipelineRunner, PushedCameras]:
    """A stopped ``PipelineRunner`` over pushed cameras of one workshop, and those cameras once it opens them.

    Tuned for tests: a batch goes out as soon as a frame is there, and camera faults are
    checked every 50 ms; ``options`` are the runner's other keyword arguments.
    """
    sources = PushedCameras()
    runner = PipelineRunner(
        site_id,
        [CameraAssignment(workshop_id, camera) for camera in cameras],
        detector,
        sink,
        source_factory=sources.open,  # type: ignore[arg-type]
        batch_deadline_s=0.0,
        fault_check_interval_s=0.05,
        **options,
    )
    return runner, sources
