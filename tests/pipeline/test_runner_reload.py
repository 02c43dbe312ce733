"""Hot changes of a running pipeline (a camera reload, a detector swap) with real analyzers.

- A reload swaps a camera's reader and rules under the runner's lock, which every camera's
  analysis needs: stopping the old reader (up to a second for one stuck connecting) and
  encoding the old rules' last clips must happen after it is let go, or every camera stalls.
- Only a change of zones, anchors, schedules, behaviours or workshop rebuilds the rules: turning
  on motion gating or changing the clip length must not end an ongoing alert and raise it again.
- After a detector swap no camera keeps the old model alive, not even one that sends nothing.
- A detector swap restarts each camera's tracks with the new model's first detections (its classes
  may be ordered differently): no track crosses the swap, and an open incident carries on.

The stuck parts block on events the test releases, so nothing here is timed by the wall clock.
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any, ClassVar

import numpy as np
import pytest

from anjian.cameras.config import CameraConfig
from anjian.models.detections import Detections
from anjian.pipeline import evidence
from anjian.pipeline.analyzer import CameraAnalyzer
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.runner import CameraAssignment, PipelineRunner, measured_clip_grace_s
from anjian.pipeline.sink import ListSink
from tests.support.pushed_camera import PushedCamera, PushedCameras, pushed_runner
from tests.support.waiting import wait_for

_GREY = np.full((96, 160, 3), 100, np.uint8)
_SMOKER_ONLY = {"smoking": {"k": 1, "n": 1, "clear_after_s": 600, "update_interval_s": 600}}


class _SmokerDetector:
    """A person with a cigarette at the mouth in every image."""

    class_names: ClassVar[dict[int, str]] = {0: "person", 1: "cigarette"}

    def __init__(self, version: str = "fake@1") -> None:
        self.version = version
        self.class_thresholds: dict[str, float] = {}

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        boxes = np.array([[40, 10, 120, 90], [70, 20, 80, 28]], np.float32)
        names = {name: class_id for class_id, name in self.class_names.items()}
        classes = np.array([names["person"], names["cigarette"]], np.int32)
        return [
            Detections(boxes, np.array([0.9, 0.9], np.float32), classes, self.class_names) for _ in images
        ]


class _ReorderedSmokerDetector(_SmokerDetector):
    """The same scene from a retrained model that numbers its classes the other way round."""

    class_names: ClassVar[dict[int, str]] = {0: "cigarette", 1: "person"}


class _TrackRecorder:
    """A live view that keeps each analysed frame's (class name, track id) pairs."""

    def __init__(self) -> None:
        self.frames: list[list[tuple[str, int]]] = []

    def update(self, frame: Any, tracked: Detections, zones: Any) -> None:
        assert tracked.tracker_id is not None
        self.frames.append(
            [(tracked.class_names[int(c)], int(t)) for c, t in zip(tracked.class_id, tracked.tracker_id)]
        )

    def forget(self, camera_id: str) -> None:
        pass


def _camera(camera_id: str, **fields: Any) -> CameraPipelineConfig:
    settings: dict[str, Any] = {"id": camera_id, "url": f"rtsp://cam/{camera_id}", "behaviours": _SMOKER_ONLY}
    return CameraPipelineConfig.model_validate(settings | fields)


class _StuckOnStop(PushedCamera):
    """A reader stuck inside FFmpeg (connecting to a host that never answers): ``stop`` waits for ``release``."""

    def __init__(self, config: CameraConfig, condition: threading.Condition) -> None:
        super().__init__(config, condition)
        self.stopping = threading.Event()
        self.release = threading.Event()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        assert self.release.wait(30), "the test never released the stuck reader"
        super().stop(timeout_s)


class _FirstReaderStuck(PushedCameras):
    """Opens camera ``stuck_id``'s first reader as one stuck on stop; every other reader is a plain pushed one."""

    def __init__(self, stuck_id: str) -> None:
        super().__init__()
        self.stuck_id = stuck_id
        self.stuck: _StuckOnStop | None = None

    def open(self, config: CameraConfig, condition: threading.Condition) -> PushedCamera:
        if config.id == self.stuck_id and self.stuck is None:
            self.stuck = self[config.id] = _StuckOnStop(config, condition)
            return self.stuck
        return super().open(config, condition)


def _analysed_while(
    runner: PipelineRunner, sources: PushedCameras, camera_id: str, reload: threading.Thread
) -> bool:
    """Push a frame to ``camera_id`` and say whether it was analysed while ``reload`` is still running."""
    before = runner.stats().frames_analysed
    sources[camera_id].push(_GREY)
    return wait_for(lambda: runner.stats().frames_analysed > before, timeout_s=10) and reload.is_alive()


def test_a_reader_slow_to_stop_does_not_hold_back_the_other_cameras() -> None:
    """update_camera stopped the old reader under the runner's lock: a second per fixed URL with no analysis at all."""
    sources = _FirstReaderStuck("a")
    runner = PipelineRunner(
        "site",
        [CameraAssignment("ws", _camera("a")), CameraAssignment("ws", _camera("live"))],
        _SmokerDetector(),  # type: ignore[arg-type]
        ListSink(),
        source_factory=sources.open,  # type: ignore[arg-type]
        batch_deadline_s=0.0,
        fault_check_interval_s=0.05,
    )
    runner.start()
    stuck = sources.stuck
    assert stuck is not None
    fixed = CameraAssignment("ws", _camera("a", url="rtsp://cam/a-fixed"))
    reload = threading.Thread(target=runner.update_camera, args=(fixed,), daemon=True)
    try:
        reload.start()
        assert stuck.stopping.wait(20)

        assert _analysed_while(runner, sources, "live", reload)
        assert sources["a"] is not stuck and sources["a"].starts == 1  # the new reader already runs
    finally:
        stuck.release.set()
        reload.join(30)
        runner.stop()
    assert not reload.is_alive()


def test_the_old_rules_last_clip_is_encoded_without_holding_back_the_other_cameras(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A zone edit closed the old rules and encoded their pending clips inline, under the runner's lock."""
    encode, encoding, release = evidence.encode_clip, threading.Event(), threading.Event()

    def held_encode(frames: Any) -> bytes:
        encoding.set()
        assert release.wait(30), "the test never released the encoder"
        return encode(frames)

    monkeypatch.setattr(evidence, "encode_clip", held_encode)
    long_clip = {"clip_pre_s": 1, "clip_post_s": 120}
    sink = ListSink()
    runner, sources = pushed_runner(
        "site", "ws", [_camera("a", evidence=long_clip), _camera("live")], _SmokerDetector(), sink
    )
    runner.start()
    zone = {"id": "z", "polygon": [(0, 0), (1, 0), (1, 1)]}
    edited = CameraAssignment("ws", _camera("a", evidence=long_clip, zones=[zone]))
    reload = threading.Thread(target=runner.update_camera, args=(edited,), daemon=True)
    try:
        sources["a"].push(_GREY)
        assert wait_for(lambda: any(e.camera_id == "a" and e.revision == 1 for e in sink.events))
        reload.start()
        assert encoding.wait(20)

        assert _analysed_while(runner, sources, "live", reload)
    finally:
        release.set()
        reload.join(30)
        runner.stop()
    assert not reload.is_alive()
    [clip] = [e for e in sink.events if e.camera_id == "a" and e.clip_mp4 is not None]
    ended = [e for e in sink.events if e.id == clip.id and e.ended_at is not None]
    assert ended and ended[0].revision < clip.revision  # the end went out first, the clip after it


@pytest.mark.parametrize(
    "change",
    [
        {"engine": {"motion_gate": {"enabled": True}}},
        {"evidence": {"clip_pre_s": 1, "clip_post_s": 4}},
        {"evidence": {"is_clip": False}},
        {"url": "rtsp://cam/a-moved", "name": "Line 2 east"},
    ],
    ids=["motion-gating-on", "clip-length", "clips-off", "source"],
)
def test_a_reload_that_leaves_the_rules_alone_keeps_the_open_incident(change: dict[str, Any]) -> None:
    """An engine or evidence change closed the camera's incidents and raised them again: a second alert."""
    sink = ListSink()
    runner, sources = pushed_runner("site", "ws", [_camera("a")], _SmokerDetector(), sink)
    runner.start()
    try:
        sources["a"].push(_GREY)
        assert wait_for(lambda: any(e.revision == 1 for e in sink.events))
        runner.update_camera(CameraAssignment("ws", _camera("a", **change)))
        analysed = runner.stats().frames_analysed
        for i in range(3):
            sources["a"].push(_GREY)
            assert wait_for(lambda i=i: runner.stats().frames_analysed > analysed + i)

        assert not any(e.ended_at is not None for e in sink.events)
    finally:
        runner.stop()
    assert len({e.id for e in sink.events if e.behaviour == "smoking"}) == 1


def test_a_camera_that_sends_nothing_does_not_keep_the_old_detector_alive() -> None:
    """Each camera kept the Detector its rules last saw: an offline one held a swapped-out model for weeks."""
    old = _SmokerDetector("old@1")
    freed = weakref.ref(old)
    runner, sources = pushed_runner("site", "ws", [_camera("live"), _camera("offline")], old, ListSink())
    del old
    runner.start()
    try:
        sources["live"].push(_GREY)
        assert wait_for(lambda: runner.stats().frames_analysed >= 1)
        runner.swap_detector(_SmokerDetector("new@2"))  # type: ignore[arg-type]

        def old_is_freed() -> bool:
            sources["live"].push(_GREY)  # the batches in flight move on to the new detector
            gc.collect()
            return freed() is None

        assert wait_for(old_is_freed, timeout_s=10)
        assert runner.detector.version == "new@2" and runner.stats().detector_swaps == 1
    finally:
        runner.stop()


def test_the_runner_gives_clips_a_grace_beyond_the_longest_a_frame_can_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runner's tick cut clips by the wall clock alone: frames captured before a clip's end but still
    batched or on the model reached the ring after the cut (the analyzer's own tests show the cut itself)."""
    graces: list[float] = []

    class _Spy(CameraAnalyzer):
        def __init__(self, *args: Any, clip_grace_s: float = 0.0, **options: Any) -> None:
            graces.append(clip_grace_s)
            super().__init__(*args, clip_grace_s=clip_grace_s, **options)

    monkeypatch.setattr("anjian.pipeline.runner.CameraAnalyzer", _Spy)
    pushed_runner("site", "ws", [_camera("a")], _SmokerDetector(), ListSink(), max_frame_age_s=1.5)
    assert len(graces) == 1 and graces[0] > 1.5


def test_the_clip_grace_is_the_slowest_measured_latency_plus_a_margin() -> None:
    """The grace was a guess (max_frame_age_s + 2 s): every clip waited 4 s past its end, and a slower
    model than the guess lost the clip's last frames."""
    assert measured_clip_grace_s([], unmeasured_s=4.0) == 4.0  # nothing measured yet: the static bound
    assert measured_clip_grace_s([0.2, 0.6, 0.3], unmeasured_s=4.0) == 1.6
    assert measured_clip_grace_s([6.5], unmeasured_s=4.0) == 7.5  # a model slower than the guess
    assert measured_clip_grace_s([3600.0], unmeasured_s=4.0) == 12.0  # a clock step is no latency
    assert measured_clip_grace_s([-30.0, 0.4], unmeasured_s=4.0) == 1.4  # a file ahead of the clock


def test_the_runner_ticks_clips_with_the_grace_its_frames_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    analyzers: list[CameraAnalyzer] = []

    class _Spy(CameraAnalyzer):
        def __init__(self, *args: Any, **options: Any) -> None:
            super().__init__(*args, **options)
            analyzers.append(self)

    monkeypatch.setattr("anjian.pipeline.runner.CameraAnalyzer", _Spy)
    runner, sources = pushed_runner(
        "site", "ws", [_camera("a")], _SmokerDetector(), ListSink(), max_frame_age_s=30
    )
    assert [analyzer.clip_grace_s for analyzer in analyzers] == [32.0]  # before any frame: the static bound
    runner.start()
    try:

        def measured() -> bool:
            sources["a"].push(_GREY)
            return analyzers[0].clip_grace_s < 32.0

        assert wait_for(measured, timeout_s=20)
        assert analyzers[0].clip_grace_s >= 1.0  # the margin over a latency >= 0
    finally:
        runner.stop()


def test_a_detector_swap_restarts_the_tracks_and_the_open_incident_carries_on() -> None:
    """The trackers outlived a swap: a track born as a person went on as the new model's class 0, a cigarette."""
    sink, recorder = ListSink(), _TrackRecorder()
    runner, sources = pushed_runner(
        "site", "ws", [_camera("a")], _SmokerDetector("old@1"), sink, live_view=recorder
    )
    runner.start()
    try:

        def analysed(count: int) -> None:
            for _ in range(count):
                before = runner.stats().frames_analysed
                sources["a"].push(_GREY)
                assert wait_for(lambda before=before: runner.stats().frames_analysed > before)

        analysed(4)
        assert wait_for(lambda: any(e.revision == 1 for e in sink.events))
        swapped_at = len(recorder.frames)
        runner.swap_detector(_ReorderedSmokerDetector("new@2"))  # type: ignore[arg-type]
        analysed(4)
        assert not any(e.ended_at is not None for e in sink.events)
    finally:
        runner.stop()
    before = {(name, track) for frame in recorder.frames[:swapped_at] for name, track in frame if track >= 0}
    after = {(name, track) for frame in recorder.frames[swapped_at:] for name, track in frame if track >= 0}
    assert {name for name, _ in after} == {"person", "cigarette"}  # the new model's tracks got ids
    assert {track for _, track in before}.isdisjoint(track for _, track in after)  # none crossed, none reused
    assert len({e.id for e in sink.events if e.behaviour == "smoking"}) == 1
