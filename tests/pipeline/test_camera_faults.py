"""Camera faults (offline, frozen, black) become camera_fault events and resolve on recovery."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self
from urllib.parse import quote

import av.logging
import numpy as np
import pytest

from anjian.cameras.config import CameraConfig
from anjian.cameras.frame import Frame
from anjian.cameras.health import CameraHealth, CameraState
from anjian.cameras.source import VideoSource
from anjian.pipeline.camera_faults import AnalysisFailure, CameraFaultMonitor, image_stats
from anjian.pipeline.event import Behaviour, Event, RiskLevel
from anjian.pipeline.incidents import EventContext, UpdateKind
from anjian.pipeline.sink import ListSink
from tests.support.clips import make_test_clip
from tests.support.fixtures import RTSP_PASSWORD
from tests.support.rtsp import RtspTestServer
from tests.support.waiting import seconds_until, wait_for

_CONTEXT = EventContext(site_id="site-1", workshop_id="hall-a", camera_id="cam1", model_version="m1")
_FAULTS = {"offline_after_s": 30, "frozen_after_s": 10, "black_after_s": 10, "clear_after_s": 5}


def _monitor(url: str = "rtsp://10.0.0.5/s", **faults: object) -> CameraFaultMonitor:
    camera = CameraConfig.model_validate(
        {"id": "cam1", "name": "Hall A", "url": url, "faults": _FAULTS | faults}
    )
    return CameraFaultMonitor(camera, _CONTEXT)


def _health(state: CameraState, *, down_since: float | None = 0.0, error: str | None = None) -> CameraHealth:
    return CameraHealth(camera_id="cam1", state=state, since=0.0, down_since=down_since, last_error=error)


_ONLINE = _health(CameraState.ONLINE, down_since=None)


def _scene(seed: int, noise_seed: int | None = None) -> np.ndarray:
    """A textured 240x320 BGR image; ``noise_seed`` adds sensor-like noise (std ~2 levels)."""
    image = np.random.default_rng(seed).integers(40, 200, size=(240, 320, 3)).astype(np.int16)
    if noise_seed is not None:
        image += np.random.default_rng(noise_seed).normal(0, 2, size=image.shape).astype(np.int16)
    return image.clip(0, 255).astype(np.uint8)


def _frame(image: np.ndarray, at: float) -> Frame:
    return Frame(camera_id="cam1", image=image, captured_at=at, pts_s=at, index=int(at * 10))


def _updates(monitor: CameraFaultMonitor, steps: Iterator[tuple[float, CameraHealth, Frame | None]]) -> list:
    return [(now, u) for now, health, frame in steps for u in monitor.observe(health, frame, now)]


def test_offline_fault_is_raised_after_the_threshold_and_resolved_after_recovery() -> None:
    monitor = _monitor()
    down = _health(CameraState.OFFLINE, down_since=100.0, error="cannot open rtsp://***:***@h/s: refused")
    steps = [(100.0 + s, down, None) for s in range(45)]
    steps += [(145.0 + s, _ONLINE, None) for s in range(10)]
    updates = _updates(monitor, iter(steps))
    kinds = [(now, u.kind) for now, u in updates]
    assert kinds[0] == (130.0, UpdateKind.OPENED)
    opened, closed = updates[0][1].event, updates[-1][1].event
    assert (opened.behaviour, opened.severity, opened.started_at) == (
        Behaviour.CAMERA_FAULT,
        RiskLevel.ORANGE,
        100.0,
    )
    assert "no video" in opened.message and "refused" in opened.message and "Hall A" in opened.message
    assert kinds[-1] == (149.0, UpdateKind.CLOSED)  # 5 s after the last offline observation at 144
    assert closed.id == opened.id and closed.ended_at == 149.0
    assert all(kind == UpdateKind.UPDATED for _, kind in kinds[1:-1])


@pytest.mark.parametrize(
    "state",
    [CameraState.CONNECTING, CameraState.STALLED, CameraState.FAILED_CONFIG],
    ids=["never-connected", "stalled", "failed-config"],
)
def test_any_state_without_frames_counts_as_offline(state: CameraState) -> None:
    monitor = _monitor(offline_after_s=5)
    updates = _updates(monitor, ((float(s), _health(state), None) for s in range(7)))
    assert [(now, u.kind) for now, u in updates] == [(5.0, UpdateKind.OPENED)]
    assert monitor.is_open("offline")


def test_a_short_outage_raises_nothing() -> None:
    monitor = _monitor(offline_after_s=30)
    steps = [(float(s), _health(CameraState.OFFLINE), None) for s in range(20)]
    steps += [(20.0 + s, _ONLINE, None) for s in range(60)]
    assert _updates(monitor, iter(steps)) == []


def test_stopped_camera_and_disabled_faults_raise_nothing() -> None:
    stopped = _monitor(offline_after_s=1)
    assert _updates(stopped, ((float(s), _health(CameraState.STOPPED), None) for s in range(10))) == []
    disabled = _monitor(offline_after_s=1, enabled=False)
    assert _updates(disabled, ((float(s), _health(CameraState.OFFLINE), None) for s in range(10))) == []


def test_frozen_live_image_is_raised_and_resolved_when_the_picture_moves() -> None:
    monitor = _monitor()
    still = _scene(1)
    steps = [(float(t), _ONLINE, _frame(still, float(t))) for t in range(15)]
    steps += [(15.0 + t, _ONLINE, _frame(_scene(2 + t), 15.0 + t)) for t in range(8)]
    updates = _updates(monitor, iter(steps))
    assert [(now, u.kind) for now, u in updates] == [(10.0, UpdateKind.OPENED), (19.0, UpdateKind.CLOSED)]
    assert "frozen" in updates[0][1].event.message
    assert updates[0][1].event.started_at == 0.0


def test_a_black_picture_before_an_outage_and_after_it_are_timed_apart() -> None:
    """Black for 6 s, offline for an hour, black again: it was reported at once on the first black frame
    back, started an hour before (a plant that is dark at night and drops its camera)."""
    monitor = _monitor(black_after_s=10, offline_after_s=7200)
    black = np.zeros((240, 320, 3), np.uint8)
    steps = [(float(t), _ONLINE, _frame(black, float(t))) for t in range(6)]
    steps += [(6.0 + t, _health(CameraState.OFFLINE, down_since=6.0), None) for t in range(0, 3600, 60)]
    steps += [(3606.0 + t, _ONLINE, _frame(black, 3606.0 + t)) for t in range(12)]
    updates = _updates(monitor, iter(steps))
    assert [(now, u.kind) for now, u in updates] == [(3616.0, UpdateKind.OPENED)]
    assert updates[0][1].event.started_at == 3606.0


def test_live_sensor_noise_on_a_still_scene_is_not_frozen() -> None:
    monitor = _monitor(frozen_after_s=3)
    steps = [(float(t), _ONLINE, _frame(_scene(1, noise_seed=t), float(t))) for t in range(20)]
    assert _updates(monitor, iter(steps)) == []


def test_a_still_file_is_never_reported_frozen(tmp_path: Path) -> None:
    monitor = _monitor(url=str(tmp_path / "replay.mp4"), frozen_after_s=1)
    still = _scene(1)
    assert _updates(monitor, ((float(t), _ONLINE, _frame(still, float(t))) for t in range(10))) == []


@pytest.mark.parametrize(
    ("image", "what"),
    [
        (np.zeros((240, 320, 3), np.uint8), "black"),
        (np.random.default_rng(0).integers(0, 12, (240, 320, 3)).astype(np.uint8), "black"),
        (np.full((240, 320, 3), 150, np.uint8), "uniform"),
    ],
    ids=["black", "dark-covered", "uniform-grey"],
)
def test_black_or_covered_lens_is_one_fault_not_also_frozen(image: np.ndarray, what: str) -> None:
    monitor = _monitor()
    steps = [(float(t), _ONLINE, _frame(image, float(t))) for t in range(30)]
    updates = _updates(monitor, iter(steps))
    assert [(now, u.kind) for now, u in updates] == [(10.0, UpdateKind.OPENED)]
    assert what in updates[0][1].event.message
    assert not monitor.is_open("frozen") and monitor.is_open("black")


def test_close_resolves_every_open_fault() -> None:
    monitor = _monitor(offline_after_s=1, black_after_s=1)
    black = np.zeros((240, 320, 3), np.uint8)
    for t in range(3):
        monitor.observe(_ONLINE, _frame(black, float(t)), float(t))
    for t in range(3, 6):
        monitor.observe(_health(CameraState.OFFLINE, down_since=3.0), None, float(t))
    closed = monitor.close(10.0)
    assert sorted(u.kind for u in closed) == [UpdateKind.CLOSED, UpdateKind.CLOSED]
    assert all(u.event.ended_at == 10.0 for u in closed)


def test_image_stats_work_on_tensor_frames() -> None:
    torch = pytest.importorskip("torch")
    image = _scene(3)
    from_numpy = image_stats(_frame(image, 0.0))
    from_tensor = image_stats(_frame(torch.from_numpy(image), 0.0))
    assert from_tensor.mean == pytest.approx(from_numpy.mean)
    assert from_tensor.grey.shape == from_numpy.grey.shape == (120, 160)


def test_image_stats_are_the_luma_of_a_strided_subsample_in_full_precision() -> None:
    """Grey levels keep their fractions: a quiet live scene's noise of a level or less must not round to "frozen"."""
    image = np.random.default_rng(7).integers(0, 256, (432, 768, 3), dtype=np.uint8)
    small = image[::4, ::4].astype(np.float64)
    expected = 0.114 * small[..., 0] + 0.587 * small[..., 1] + 0.299 * small[..., 2]

    stats = image_stats(_frame(image, 0.0))

    assert stats.grey.shape == (108, 192)
    np.testing.assert_allclose(stats.grey, expected, atol=1e-3)
    assert stats.mean == pytest.approx(expected.mean(), abs=1e-3)
    assert stats.std == pytest.approx(expected.std(), abs=1e-3)


class _FaultLoop:
    """What the runner does per camera: take the newest frame, feed the monitor, publish updates."""

    def __init__(self, source: VideoSource, monitor: CameraFaultMonitor) -> None:
        self.source, self.monitor, self.sink = source, monitor, ListSink()
        self.health_seen: list[CameraHealth] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self.source.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.source.stop()

    def events(self, kind: str | None = None) -> list[Event]:
        return [e for e in list(self.sink.events) if kind is None or kind in e.message]

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            health = self.source.health()
            self.health_seen.append(health)
            for update in self.monitor.observe(health, self.source.take_latest(), time.time()):
                self.sink.publish(update.event)


def _live_camera(camera_id: str, url: str, **faults: object) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": camera_id,
            "url": url,
            "analysis_fps": 5,
            "open_timeout_s": 3,
            "stall_timeout_s": 1.5,
            "reconnect": {"initial_delay_s": 0.2, "max_delay_s": 1.0},
            "faults": {"offline_after_s": 1.0, "clear_after_s": 1.0} | faults,
        }
    )


def _all_ended(events: list[Event]) -> bool:
    """Whether every fault published so far has its end published too (the last revision is the newest)."""
    newest = {event.id: event for event in events}
    return all(event.ended_at is not None for event in newest.values())


def _watch(camera: CameraConfig) -> _FaultLoop:
    context = EventContext(site_id="site-1", workshop_id="hall-a", camera_id=camera.id, model_version="m1")
    return _FaultLoop(VideoSource(camera), CameraFaultMonitor(camera, context))


@pytest.mark.slow
def test_killed_camera_raises_a_fault_and_recovers_it_without_manual_action(
    rtsp_server: RtspTestServer,
) -> None:
    with _watch(_live_camera("cam1", rtsp_server.url("/cam1"))) as loop:
        assert seconds_until(lambda: loop.source.health().state == CameraState.ONLINE, 60) is not None
        # Connecting may itself outlast the 1 s threshold: let that fault resolve first, and its end be
        # published (the monitor closes it a moment before the loop hands the update to the sink).
        assert (
            seconds_until(lambda: not loop.monitor.is_open("offline") and _all_ended(loop.events()), 60)
            is not None
        )
        known = len(loop.events())
        rtsp_server.kill()
        assert seconds_until(lambda: len(loop.events()) > known, 60) is not None, loop.source.health()
        opened = loop.events()[known]
        assert opened.behaviour == Behaviour.CAMERA_FAULT and opened.ended_at is None
        assert "no video" in opened.message
        assert loop.source.health().state in (CameraState.OFFLINE, CameraState.STALLED)
        rtsp_server.restart()
        back_s = seconds_until(lambda: loop.source.health().state == CameraState.ONLINE, 60)
        assert back_s is not None, f"not back online: {loop.source.health()}"  # how soon: bench reconnect
        assert seconds_until(lambda: loop.events()[-1].ended_at is not None, 60) is not None
        closed = loop.events()[-1]
    assert closed.id == opened.id and closed.ended_at >= opened.started_at


@pytest.mark.slow
def test_frozen_and_black_live_streams_raise_faults_and_a_moving_one_does_not(
    rtsp_server_factory: Callable[..., RtspTestServer], tmp_path: Path, test_clip: Path
) -> None:
    clips = {
        name: make_test_clip(tmp_path / f"{name}.mp4", seconds=2, fps=10, pattern=name)  # type: ignore[arg-type]
        for name in ("static", "black")
    }
    server = rtsp_server_factory({"/static": clips["static"], "/black": clips["black"], "/moving": test_clip})
    thresholds = {"frozen_after_s": 1.5, "black_after_s": 1.5, "offline_after_s": 60}
    loops = {name: _watch(_live_camera(name, server.url(f"/{name}"), **thresholds)) for name in clips}
    loops["moving"] = _watch(_live_camera("moving", server.url("/moving"), **thresholds))
    for loop in loops.values():
        loop.__enter__()
    try:
        raised = seconds_until(lambda: bool(loops["static"].events() and loops["black"].events()), 60)
        moving = loops["moving"].source
        assert wait_for(lambda: moving.health().frames_delivered >= 10, 60), (
            moving.health()
        )  # seen long enough
    finally:
        for loop in loops.values():
            loop.__exit__()
    assert raised is not None, {name: loop.source.health() for name, loop in loops.items()}
    assert [e.message.split(" image is ")[1].split(" ")[0] for e in loops["static"].events()][:1] == [
        "frozen"
    ]
    assert not loops["static"].events("black")
    assert "black" in loops["black"].events()[0].message
    assert not loops["black"].events("frozen")
    assert loops["moving"].events() == []
    assert loops["moving"].source.health().frames_delivered >= 10


@pytest.mark.slow
@pytest.mark.parametrize(
    "wrong_password", ["wr0ng-s3cret", "wr0ng/s3@cret:x"], ids=["plain", "slash-at-colon"]
)
def test_credentials_never_leak_into_logs_errors_health_events_or_api(
    rtsp_server: RtspTestServer, caplog: pytest.LogCaptureFixture, wrong_password: str
) -> None:
    from anjian.service.schemas import CameraHealthOut

    right = _live_camera("right", rtsp_server.url("/cam1"))
    wrong = _live_camera("wrong", rtsp_server.url("/cam1").replace(RTSP_PASSWORD, wrong_password))
    caplog.set_level(logging.DEBUG)
    av.logging.set_level(av.logging.DEBUG)  # FFmpeg's own messages go through Python logging too
    try:
        with _watch(right) as good, _watch(wrong) as bad:
            assert seconds_until(lambda: good.source.health().state == CameraState.ONLINE, 60) is not None
            assert seconds_until(lambda: bad.events(), 60) is not None
            rtsp_server.kill()
            assert seconds_until(lambda: good.events(), 60) is not None
            assert seconds_until(lambda: good.source.health().reconnects >= 2, 60) is not None
    finally:
        av.logging.set_level(None)
    assert bad.source.health().state == CameraState.STOPPED
    assert any(h.state == CameraState.FAILED_CONFIG for h in bad.health_seen)
    texts = [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    for loop in (good, bad):
        texts += [repr(h) for h in loop.health_seen]
        texts += [CameraHealthOut.model_validate(h).model_dump_json() for h in loop.health_seen]
        texts += [repr(e) + e.message for e in loop.events()]
        texts += [repr(loop.source.config), loop.source.config.model_dump_json()]
    assert any("401" in text for text in texts) and any("***:***@" in text for text in texts)
    for secret in (RTSP_PASSWORD, wrong_password, quote(wrong_password, safe="")):
        leaks = [text for text in texts if secret in text]
        assert not leaks, leaks[:3]


def test_a_failing_detector_raises_not_analysed_on_an_online_camera_only() -> None:
    """An offline camera has its offline fault; one that delivers video but is not analysed needs its own."""
    failure = AnalysisFailure(since=100.0, reason="RuntimeError: Got: 640 Expected: 320")
    online, offline = _monitor(offline_after_s=5), _monitor(offline_after_s=5)
    down = _health(CameraState.OFFLINE, down_since=100.0)
    online_updates = [
        u for s in range(10) for u in online.observe(_ONLINE, None, 100.0 + s, analysis_failure=failure)
    ]
    offline_updates = [
        u for s in range(10) for u in offline.observe(down, None, 100.0 + s, analysis_failure=failure)
    ]

    assert [u.kind for u in online_updates][:1] == [UpdateKind.OPENED] and online.is_open("not_analysed")
    assert "not analysed" in online_updates[0].event.message and "640" in online_updates[0].event.message
    assert offline.is_open("offline") and not offline.is_open("not_analysed")
    assert offline_updates and all("no video" in u.event.message for u in offline_updates)
    assert online.observe(_ONLINE, None, 200.0) and not online.is_open(
        "not_analysed"
    )  # works again: resolved
