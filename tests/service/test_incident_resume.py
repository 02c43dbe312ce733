"""Stopping the service leaves ongoing incidents open, and a restart over the same SQLite file and data
folder carries on with them: the pipeline, the event writer and the store of ``anjian run``, stopped and
built again, with scripted cameras (one with a fire, one that stays broken) and a scripted detector."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anjian.cameras.config import CameraFaultConfig
from anjian.models.detections import Detections
from anjian.pipeline.config import BehavioursConfig, CameraPipelineConfig, OpenFlameConfig
from anjian.pipeline.event import Behaviour
from anjian.pipeline.incident_journal import IncidentJournal
from anjian.pipeline.runner import PipelineRunner
from anjian.service.evidence import EvidenceStore
from anjian.service.records import StoredEvent
from anjian.service.sink import StoreSink
from anjian.service.store import EventStore
from tests.support.pushed_camera import PushedCameras, pushed_runner
from tests.support.waiting import wait_for

_IMAGE = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)


class FireDetector:
    """Sees a fire in every frame while ``is_burning``."""

    def __init__(self) -> None:
        self.version = "fire@1"
        self.class_names = {0: "fire"}
        self.class_thresholds: dict[str, float] = {}
        self.is_burning = True

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        box = np.array([[40, 20, 80, 70]], np.float32) if self.is_burning else np.zeros((0, 4), np.float32)
        n = len(box)
        return [
            Detections(box, np.full(n, 0.9, np.float32), np.zeros(n, np.int32), self.class_names)
            for _ in images
        ]


CAMERAS = [
    CameraPipelineConfig(
        id="line",
        url="rtsp://10.0.0.5/line",
        analysis_fps=20,
        faults=CameraFaultConfig(enabled=False),
        behaviours=BehavioursConfig(
            open_flame=OpenFlameConfig(
                k=2, n=3, is_temporal_check=False, clear_after_s=1.0, update_interval_s=0.2
            )
        ),
    ),
    CameraPipelineConfig(
        id="broken", url="rtsp://10.0.0.6/dead", faults=CameraFaultConfig(offline_after_s=0.2)
    ),
]


@dataclass
class Service:
    """The parts of ``anjian run`` that hold incidents, over one data folder."""

    store: EventStore
    sink: StoreSink
    runner: PipelineRunner
    cameras: PushedCameras

    @classmethod
    def start(cls, data: Path, detector: FireDetector) -> Service:
        store = EventStore(f"sqlite:///{data / 'anjian.db'}")
        sink = StoreSink(store, EvidenceStore(data, is_fsync=False))
        runner, cameras = pushed_runner(
            "site-1",
            "polishing-1",
            CAMERAS,
            detector,
            sink,
            incident_journal=IncidentJournal(data / "open_incidents.json"),
        )
        runner.start()
        return cls(store, sink, runner, cameras)

    def stop(self) -> None:
        self.runner.stop()
        self.sink.stop()
        self.store.close()

    def events(self) -> dict[Behaviour, list[StoredEvent]]:
        self.sink.flush(10)
        found: dict[Behaviour, list[StoredEvent]] = {}
        for event in self.store.list_events().items:
            found.setdefault(event.behaviour, []).append(event)
        return found

    def burn_until(self, predicate: Callable[[], bool]) -> bool:
        """Push frames of the line camera until ``predicate()`` holds."""

        def step() -> bool:
            self.cameras["line"].push(_IMAGE)
            return predicate()

        return wait_for(step, timeout_s=30, poll_s=0.05)


def test_a_restart_carries_on_with_the_fire_and_the_broken_camera_instead_of_ending_them(
    tmp_path: Path,
) -> None:
    detector = FireDetector()
    first = Service.start(tmp_path, detector)
    try:
        assert first.burn_until(
            lambda: {Behaviour.OPEN_FLAME, Behaviour.CAMERA_FAULT} <= set(first.events())
        ), "the fire and the broken camera were raised"
    finally:
        first.stop()  # the service stops while the fire burns and the camera is still down

    reopened = EventStore(f"sqlite:///{tmp_path / 'anjian.db'}")
    try:
        before = {e.behaviour: e for e in reopened.list_events().items}
    finally:
        reopened.close()
    assert set(before) == {Behaviour.OPEN_FLAME, Behaviour.CAMERA_FAULT}
    assert all(e.ended_at is None for e in before.values()), "stopping ended an ongoing incident"

    second = Service.start(tmp_path, detector)
    try:
        fire, fault = before[Behaviour.OPEN_FLAME], before[Behaviour.CAMERA_FAULT]
        assert second.burn_until(
            lambda: (
                {(e.id, e.revision > fire.revision) for e in second.events()[Behaviour.OPEN_FLAME]}
                == {(fire.id, True)}
                and {(e.id, e.revision > fault.revision) for e in second.events()[Behaviour.CAMERA_FAULT]}
                == {(fault.id, True)}
            )
        ), "the same two incidents went on: no new event, none ended"

        detector.is_burning = False  # the fire is out: its incident ends, the camera fault goes on
        assert second.burn_until(lambda: second.events()[Behaviour.OPEN_FLAME][0].ended_at is not None)
        events = second.events()
        assert [e.id for e in events[Behaviour.OPEN_FLAME]] == [fire.id]
        assert [(e.id, e.ended_at) for e in events[Behaviour.CAMERA_FAULT]] == [(fault.id, None)]
    finally:
        second.stop()
