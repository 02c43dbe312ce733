"""The runner: a real file end to end, then the engine (batching, tracking, gating, faults, hot changes)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from anjian.cameras.config import CameraFaultConfig
from anjian.cameras.frame import Frame
from anjian.cameras.health import CameraState
from anjian.datasets.synthetic import write_demo_video
from anjian.models.detections import Detections
from anjian.models.detector import PendingDetections
from anjian.models.onnx_detector import OnnxDetector
from anjian.models.registry import resolve_model_path
from anjian.pipeline.config import BehavioursConfig, CameraPipelineConfig, OpenFlameConfig, ZoneConfig
from anjian.pipeline.engine_config import EngineConfig, MotionGateConfig
from anjian.pipeline.event import Behaviour, Event
from anjian.pipeline.incidents import EventContext
from anjian.pipeline.live import LiveView
from anjian.pipeline.runner import CameraAssignment, PipelineRunner
from anjian.pipeline.sink import ListSink
from tests.factories import make_event
from tests.support.pushed_camera import PushedCamera, pushed_runner
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def fire_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s at 10 fps; a flame burns from 5 s to 7 s."""
    return write_demo_video(
        tmp_path_factory.mktemp("clips") / "fire.mp4", seconds=12, fps=10, size_wh=(480, 270)
    )


def _camera(camera_id: str, url: str) -> CameraPipelineConfig:
    return CameraPipelineConfig(
        id=camera_id,
        url=url,
        analysis_fps=5,
        realtime=True,  # paced like a live camera, so the runner sees every sampled frame
        behaviours=BehavioursConfig(open_flame=OpenFlameConfig(k=3, n=5, clear_after_s=2)),
    )


@pytest.mark.slow
def test_file_with_a_fire_gives_one_incident_opened_and_closed(fire_clip: Path, tmp_path: Path) -> None:
    detector = OnnxDetector(resolve_model_path("builtin:anjian-demo/1"))
    sink = ListSink()
    runner = PipelineRunner(
        "site",
        [
            CameraAssignment("ws", _camera("line", str(fire_clip))),
            CameraAssignment("ws", _camera("missing", str(tmp_path / "absent.mp4"))),
        ],
        detector,
        sink,
    )
    runner.start()
    assert runner.wait_finished(timeout_s=120)
    health = {h.camera_id: h for h in runner.health()}
    runner.stop()

    assert health["line"].frames_delivered >= 55  # 12 s at 5 fps
    assert health["missing"].state == "failed_config"
    assert "no such file" in (health["missing"].last_error or "")
    opened = [e for e in sink.events if e.revision == 1]
    assert len(opened) == 1, [(e.revision, e.started_at, e.ended_at) for e in sink.events]
    event = opened[0]
    assert event.behaviour is Behaviour.OPEN_FLAME
    assert event.snapshot_jpeg is not None and event.snapshot_jpeg[:2] == b"\xff\xd8"
    closed = [e for e in sink.events if e.ended_at is not None]
    # One incident ended (a later revision may only attach its evidence clip to the ended event).
    assert {e.id for e in closed} == {event.id}, [(e.revision, e.ended_at) for e in sink.events]
    assert len({e.ended_at for e in closed}) == 1
    # The flame burns 5..7 s into the clip: the incident spans about 2 s of wall time.
    assert 1.0 <= closed[0].last_seen_at - event.started_at <= 3.0


# --------------------------------------------------------------------------------------------
# The engine around the rules, with scripted cameras, a counting detector and a recording
# analyzer (the rules have their own tests): batching, tracking, motion gating, faults,
# hot changes of cameras and of the detector.


class _CountingDetector:
    """One 'person' box per image; counts the images it saw."""

    def __init__(self, version: str = "fake@1") -> None:
        self.version = version
        self.class_names = {0: "person"}
        self.class_thresholds: dict[str, float] = {}
        self.images = 0

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        self.images += len(images)
        box = np.array([[10, 10, 50, 90]], np.float32)
        return [
            Detections(box, np.array([0.9], np.float32), np.array([0], np.int32), self.class_names)
            for _ in images
        ]


class _HeldDetector(_CountingDetector):
    """Starts batches without waiting; the first batch's start waits for ``second_frame_ready`` and its
    detections for ``release``, so a test can see whether the next batch is started meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self.second_frame_ready = threading.Event()
        self.release = threading.Event()

    def detect_async(self, images: list[np.ndarray]) -> PendingDetections:
        self.started += 1
        if self.started == 1:
            assert self.second_frame_ready.wait(10)
        detections = self.detect(images)

        def finish() -> list[Detections]:
            assert self.release.wait(10)
            return detections

        return PendingDetections(finish)


class _RunningDetector(_CountingDetector):
    """Starts batches without waiting and says when the model is done: ``finish()`` ends every batch started."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self._done = threading.Event()

    def detect_async(self, images: list[np.ndarray]) -> PendingDetections:
        self.started += 1
        detections = self.detect(images)

        def finish() -> list[Detections]:
            assert self._done.wait(10)
            return detections

        return PendingDetections(finish, is_ready=self._done.is_set)

    def finish(self) -> None:
        self._done.set()


class _RecordingAnalyzer:
    """Stands in for ``CameraAnalyzer``: keeps what it was fed; closing yields one ended event."""

    created: ClassVar[list[_RecordingAnalyzer]] = []

    def __init__(
        self,
        camera: CameraPipelineConfig,
        context: EventContext,
        class_thresholds: dict[str, float] | None = None,
        **_: object,
    ) -> None:
        self.camera = camera
        self.context = context
        self.class_thresholds = dict(class_thresholds or {})
        self.fed: list[Detections] = []
        self.ticks = 0
        self.expiries = 0
        _RecordingAnalyzer.created.append(self)

    def process(self, frame: Frame, detections: Detections) -> list[Event]:
        self.fed.append(detections)
        return []

    def tick(self, now: float) -> list[Event]:
        self.ticks += 1
        return []

    def expire(self, now: float) -> list[Event]:
        self.expiries += 1
        return []

    def set_model_version(self, version: str) -> None:
        self.context = replace(self.context, model_version=version)

    def set_class_thresholds(self, thresholds: dict[str, float]) -> None:
        self.class_thresholds = dict(thresholds)

    def set_camera(self, camera: CameraPipelineConfig) -> None:
        self.camera = camera

    def close(self, now: float) -> list[Event]:
        return self.close_incidents(now) + self.finish_clips(now)

    def close_incidents(self, now: float) -> list[Event]:
        return [make_event(camera_id=self.camera.id, ended_at=now, started_at=now - 1, last_seen_at=now)]

    def finish_clips(self, now: float) -> list[Event]:
        return []


@pytest.fixture
def engine(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., tuple[PipelineRunner, dict[str, PushedCamera]]]]:
    """Build a runner over scripted cameras; stops it after the test."""
    monkeypatch.setattr("anjian.pipeline.runner.CameraAnalyzer", _RecordingAnalyzer)
    _RecordingAnalyzer.created = []
    runners: list[PipelineRunner] = []

    def build(
        cameras: list[CameraPipelineConfig], detector: _CountingDetector, sink: ListSink, **options: Any
    ) -> tuple[PipelineRunner, dict[str, PushedCamera]]:
        runner, sources = pushed_runner("site", "ws", cameras, detector, sink, **options)
        runners.append(runner)
        return runner, sources

    yield build
    for runner in runners:
        runner.stop()


def _scripted(camera_id: str, **fields: object) -> CameraPipelineConfig:
    fields.setdefault("url", f"rtsp://cam/{camera_id}")
    return CameraPipelineConfig(id=camera_id, **fields)  # type: ignore[arg-type]


_GREY = np.full((90, 160, 3), 100, np.uint8)


def test_stalled_camera_does_not_slow_the_others_and_its_fault_is_published(engine: Any) -> None:
    fast_fault = CameraFaultConfig(offline_after_s=0.3)
    cameras = [_scripted("a"), _scripted("b"), _scripted("stalled", faults=fast_fault)]
    detector, sink = _CountingDetector(), ListSink()
    runner, sources = engine(cameras, detector, sink)
    runner.start()

    for i in range(20):
        for camera_id in ("a", "b"):
            sources[camera_id].push(_GREY)
        assert wait_for(lambda i=i: runner.stats().frames_analysed >= 2 * (i + 1))

    stats = runner.stats()
    assert stats.frames_analysed == 40 and stats.frames_dropped == 0
    assert stats.latency_p95_s is not None and stats.latency_p95_s < 20
    # The stalled camera never sent a frame, yet its offline fault reached the sink.
    assert wait_for(
        lambda: any(e.camera_id == "stalled" and e.behaviour == "camera_fault" for e in sink.events)
    )
    assert not any(e.camera_id in ("a", "b") for e in sink.events)
    # Live cameras' analyzers are ticked (time-based rules), an offline one's never.
    ticks = {a.camera.id: a.ticks for a in _RecordingAnalyzer.created}
    assert ticks["a"] >= 1 and ticks["stalled"] == 0


def test_rules_get_the_site_time_zone_and_the_model_version(engine: Any) -> None:
    engine([_scripted("a")], _CountingDetector(version="m@7"), ListSink(), time_zone="Asia/Shanghai")
    [analyzer] = _RecordingAnalyzer.created
    assert (analyzer.context.time_zone, analyzer.context.model_version) == ("Asia/Shanghai", "m@7")


def test_rules_receive_tracked_detections(engine: Any) -> None:
    runner, sources = engine([_scripted("a")], _CountingDetector(), ListSink())
    runner.start()
    for i in range(5):
        sources["a"].push(_GREY)
        assert wait_for(lambda i=i: runner.stats().frames_analysed >= i + 1)
    [analyzer] = _RecordingAnalyzer.created
    ids = [int(d.tracker_id[0]) for d in analyzer.fed if d.tracker_id is not None]
    assert len(ids) == 5 and ids[0] == -1 and len(set(ids[1:])) == 1 and ids[1] >= 0


def test_a_new_analysis_rate_restarts_the_tracks_without_reusing_an_id_and_keeps_the_rules(
    engine: Any,
) -> None:
    """A new tracker was built for the camera and its ids began at 0 again, while the camera's incidents carried on."""
    runner, sources = engine([_scripted("a")], _CountingDetector(), ListSink())
    runner.start()

    def track_ids(frames: int) -> list[int]:
        [analyzer] = _RecordingAnalyzer.created
        start = len(analyzer.fed)
        for i in range(frames):
            sources["a"].push(_GREY)
            assert wait_for(lambda i=i: len(analyzer.fed) >= start + i + 1)
        return [int(d.tracker_id[0]) for d in analyzer.fed[start:] if d.tracker_id is not None]

    before = track_ids(5)
    runner.update_camera(CameraAssignment("ws", _scripted("a", analysis_fps=4)))
    after = track_ids(5)

    assert len(_RecordingAnalyzer.created) == 1  # the same rules: their incidents carry on
    assert set(after) - {-1}, after  # tracked again
    assert (set(before) - {-1}).isdisjoint(after), (before, after)


def test_the_live_view_gets_every_analysed_frame_and_forgets_a_removed_camera(engine: Any) -> None:
    live = LiveView()
    zone = ZoneConfig(id="z", polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)])
    runner, sources = engine([_scripted("a", zones=[zone])], _CountingDetector(), ListSink(), live_view=live)
    runner.start()
    for i in range(3):
        sources["a"].push(_GREY)
        assert wait_for(lambda i=i: runner.stats().frames_analysed >= i + 1)

    latest = live.frame("a")
    assert latest is not None and latest.seq == 3 and latest.jpeg[:2] == b"\xff\xd8"
    runner.remove_camera("a")
    assert live.frame("a") is None


@pytest.mark.parametrize(
    ("skip_occupied", "skipped"),
    [(True, 9), (False, 0)],
    ids=["skip-occupied: only its first frame inferred", "default: the person in view keeps it inferred"],
)
def test_motion_gating_skips_inference_on_still_frames_but_feeds_the_rules(
    engine: Any, skip_occupied: bool, skipped: int
) -> None:
    gate = MotionGateConfig(enabled=True, max_skip_s=600, skip_occupied=skip_occupied)
    gated = _scripted("a", engine=EngineConfig(motion_gate=gate))
    detector = _CountingDetector()  # a person in every frame
    runner, sources = engine([gated, _scripted("b")], detector, ListSink())
    runner.start()
    for i in range(10):
        sources["a"].push(_GREY)
        sources["b"].push(_GREY)
        assert wait_for(lambda i=i: runner.stats().frames_analysed >= 2 * (i + 1))

    stats = runner.stats()
    assert stats.frames_skipped_motion == skipped  # camera a's still frames
    assert stats.frames_inferred == detector.images == 20 - skipped
    assert [len(a.fed) for a in _RecordingAnalyzer.created] == [10, 10]


def test_cameras_are_added_updated_and_removed_while_running(engine: Any) -> None:
    detector, sink = _CountingDetector(), ListSink()
    runner, sources = engine([_scripted("a")], detector, sink)
    runner.start()
    sources["a"].push(_GREY)
    assert wait_for(lambda: runner.stats().frames_analysed >= 1)

    runner.add_camera(CameraAssignment("ws", _scripted("b")))
    sources["b"].push(_GREY)
    assert wait_for(lambda: len(_RecordingAnalyzer.created[1].fed) == 1)
    with pytest.raises(ValueError, match="already analysed"):
        runner.add_camera(CameraAssignment("ws", _scripted("b")))

    # A new zone rebuilds a's rules (its incidents closed) but keeps its reader.
    first_reader, rules_before = sources["a"], _RecordingAnalyzer.created[0]
    zone = ZoneConfig(id="z", polygon=[(0, 0), (1, 0), (1, 1)])
    runner.update_camera(CameraAssignment("ws", _scripted("a", zones=[zone])))
    assert sources["a"] is first_reader and first_reader.starts == 1
    assert _RecordingAnalyzer.created[-1] is not rules_before
    assert [e.camera_id for e in sink.events if e.ended_at is not None] == ["a"]
    # A new URL restarts a's reader, and only a's; its rules stay.
    rules_count = len(_RecordingAnalyzer.created)
    runner.update_camera(CameraAssignment("ws", _scripted("a", zones=[zone], url="rtsp://cam/other")))
    assert sources["a"] is not first_reader and first_reader.health().state == CameraState.STOPPED
    assert sources["a"].config.url.get_secret_value() == "rtsp://cam/other"
    assert sources["b"].starts == 1 and len(_RecordingAnalyzer.created) == rules_count
    sources["a"].push(_GREY)
    sources["b"].push(_GREY)
    assert wait_for(lambda: runner.stats().frames_analysed >= 4)

    assert runner.remove_camera("b") is True
    assert runner.remove_camera("b") is False
    assert runner.camera_ids() == ["a"]
    assert [e.camera_id for e in sink.events if e.ended_at is not None] == ["a", "b"]


def test_a_runner_started_without_cameras_analyses_those_added_later(engine: Any) -> None:
    detector, sink = _CountingDetector(), ListSink()
    runner, sources = engine([], detector, sink)
    runner.start()
    assert not runner.wait_finished(0.3), "the analysis thread must wait for cameras, not end"

    runner.add_camera(CameraAssignment("ws", _scripted("a")))
    sources["a"].push(_GREY)

    assert wait_for(lambda: runner.stats().frames_analysed >= 1)


def test_the_next_batch_is_started_while_the_model_works_on_the_last(engine: Any) -> None:
    detector = _HeldDetector()
    runner, sources = engine([_scripted("a")], detector, ListSink())
    runner.start()
    sources["a"].push(_GREY)
    assert wait_for(lambda: detector.started == 1)
    sources["a"].push(_GREY)  # there when the first batch is on its way: taken at once
    detector.second_frame_ready.set()

    assert wait_for(lambda: detector.started == 2)  # started before the first batch's detections came back
    assert runner.stats().frames_analysed == 0
    detector.release.set()
    assert wait_for(lambda: runner.stats().frames_analysed == 2)
    [analyzer] = _RecordingAnalyzer.created
    assert len(analyzer.fed) == 2 and runner.stats().frames_inferred == 2


def test_frames_that_come_while_the_model_works_are_started_behind_it_not_after_it(engine: Any) -> None:
    """The loop collected a running batch as soon as no next frame was there: a frame that came a moment
    later waited for the whole batch, and the model idled while Python collected and prepared."""
    detector = _RunningDetector()
    runner, sources = engine([_scripted("a")], detector, ListSink())
    runner.start()
    sources["a"].push(_GREY)
    assert wait_for(lambda: detector.started == 1)
    sources["a"].push(_GREY)  # comes after the first batch was started, while the model works on it

    assert wait_for(lambda: detector.started == 2)  # started before the first batch was done
    assert runner.stats().frames_analysed == 0
    detector.finish()
    assert wait_for(lambda: runner.stats().frames_analysed == 2)


def test_detector_swap_takes_effect_between_batches(engine: Any) -> None:
    old, new = _CountingDetector("old@1"), _CountingDetector("new@2")
    old.class_thresholds, new.class_thresholds = {"person": 0.3}, {"person": 0.6}
    gated = _scripted("a", engine=EngineConfig(motion_gate=MotionGateConfig(enabled=True, max_skip_s=600)))
    runner, sources = engine([gated], old, ListSink())
    runner.start()
    sources["a"].push(_GREY)
    assert wait_for(lambda: runner.stats().frames_analysed >= 1)
    assert [a.class_thresholds for a in _RecordingAnalyzer.created] == [{"person": 0.3}]

    runner.swap_detector(new)  # type: ignore[arg-type]
    sources["a"].push(_GREY)  # a still frame, but after a swap it is inferred anyway
    assert wait_for(lambda: runner.stats().frames_analysed >= 2)

    assert (old.images, new.images) == (1, 1)
    assert runner.stats().detector_swaps == 1 and runner.detector is new
    assert [a.context.model_version for a in _RecordingAnalyzer.created] == ["new@2"]
    assert [a.class_thresholds for a in _RecordingAnalyzer.created] == [
        {"person": 0.6}
    ]  # the rules' defaults


class _FailingDetector(_CountingDetector):
    """Raises on every batch (a model that loads but cannot run) until ``works`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.works = threading.Event()
        self.failures = 0

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        if not self.works.is_set():
            self.failures += 1
            raise RuntimeError("Got: 640 Expected: 320")
        return super().detect(images)


def test_a_detector_that_fails_every_batch_raises_a_not_analysed_fault_logs_once_and_recovers(
    engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The cameras stayed online with nothing analysed, and two tracebacks a second went to the log, for good."""
    faults = CameraFaultConfig(offline_after_s=0.3, clear_after_s=0.3)
    detector, sink = _FailingDetector(), ListSink()
    runner, sources = engine([_scripted("a", faults=faults)], detector, sink)
    runner.start()

    def fault_events() -> list[Event]:
        return [e for e in sink.events if e.camera_id == "a" and e.behaviour == "camera_fault"]

    def pushed_until(condition: Callable[[], bool]) -> bool:
        def push_and_check() -> bool:
            sources["a"].push(_GREY)
            return condition()

        return wait_for(push_and_check, 60)

    with caplog.at_level("INFO", logger="anjian.pipeline.runner"):
        assert pushed_until(lambda: bool(fault_events()) and detector.failures >= 5), detector.failures
        raised = fault_events()[0]
        assert "not analysed" in raised.message and "Got: 640 Expected: 320" in raised.message, raised.message
        assert runner.analysis_failure is not None and runner.stats().frames_analysed == 0

        detector.works.set()
        assert pushed_until(lambda: any(e.ended_at is not None for e in fault_events())), fault_events()

    assert runner.analysis_failure is None
    failure_lines = [r for r in caplog.records if "inference" in r.getMessage() and r.levelname == "ERROR"]
    assert len(failure_lines) == 1 and failure_lines[0].exc_info is not None, [
        r.getMessage() for r in failure_lines
    ]
    assert any("inference works again" in r.getMessage() for r in caplog.records)
