"""Hot add, remove and update of cameras, each without touching the others."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from anjian.cameras.camera_set import CameraSet, source_settings_differ
from anjian.cameras.config import CameraConfig
from anjian.cameras.health import CameraState
from anjian.cameras.source import VideoSource
from tests.support.waiting import wait_for


def _camera(camera_id: str, url: str | Path, **overrides: object) -> CameraConfig:
    settings = {"id": camera_id, "url": str(url), "loop": True, "analysis_fps": 10}
    return CameraConfig.model_validate(settings | overrides)


def _delivers(cameras: CameraSet, at_least: dict[str, int]) -> bool:
    """True once each camera in ``at_least`` has delivered that many more frames (counts, not a time window)."""
    before = {h.camera_id: h.frames_delivered for h in cameras.health()}

    def enough() -> bool:
        now = {h.camera_id: h.frames_delivered for h in cameras.health()}
        return all(now.get(c, 0) - before.get(c, 0) >= n for c, n in at_least.items())

    return wait_for(enough, 60)


def test_add_remove_and_restart_leave_the_other_cameras_running(test_clip: Path) -> None:
    cameras = CameraSet()
    cameras.apply([_camera("a", test_clip), _camera("b", test_clip)])
    cameras.start()
    try:
        a = cameras.get("a")
        assert a is not None and a.wait_frame(timeout_s=30) is not None
        cameras.add(_camera("c", test_clip))
        cameras.remove("b")
        restarted = cameras.update(_camera("c", test_clip, analysis_fps=5))
        assert restarted
        assert cameras.ids() == ["a", "c"]
        assert _delivers(cameras, {"a": 5, "c": 2}), cameras.health()
        assert cameras.get("a") is a and a.health().reconnects == 0 and a.health().state == CameraState.ONLINE
    finally:
        cameras.stop()
    assert all(h.state == CameraState.STOPPED for h in cameras.health())


def test_removed_camera_stops_publishing(test_clip: Path) -> None:
    cameras = CameraSet()
    cameras.start()
    source = cameras.add(_camera("a", test_clip))
    assert source.wait_frame(timeout_s=30) is not None
    assert cameras.remove("a") and not cameras.remove("a")
    delivered = source.health().frames_delivered
    time.sleep(0.3)
    assert source.health().frames_delivered == delivered
    assert source.health().state == CameraState.STOPPED and "a" not in cameras


class _FakeSource(VideoSource):
    """A source that never reads anything: apply() logic only."""

    def start(self) -> None:
        self.started = True

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopped = True


def _fake_set() -> CameraSet:
    return CameraSet(source_factory=lambda cfg, cond: _FakeSource(cfg, new_frame=cond))


def test_apply_touches_only_what_changed() -> None:
    cameras = _fake_set()
    cameras.start()
    first = cameras.apply(
        [_camera("a", "rtsp://h/a"), _camera("b", "rtsp://h/b"), _camera("c", "rtsp://h/c", enabled=False)]
    )
    assert (first.added, first.removed, first.restarted) == (("a", "b"), (), ())
    a, b = cameras.get("a"), cameras.get("b")
    change = cameras.apply(
        [
            _camera("a", "rtsp://h/a", name="Hall A", faults={"offline_after_s": 5}),  # keeps its reader
            _camera("c", "rtsp://h/c"),  # enabled now
            _camera("d", "rtsp://h/d"),
        ]
    )
    assert change.added == ("c", "d") and change.removed == ("b",)
    assert change.reconfigured == ("a",) and change.restarted == ()
    assert cameras.get("a") is a and a is not None and a.config.name == "Hall A"
    assert getattr(b, "stopped", False)
    url_change = cameras.apply(
        [_camera("a", "rtsp://h/a2"), _camera("c", "rtsp://h/c"), _camera("d", "rtsp://h/d")]
    )
    assert url_change.restarted == ("a",)
    assert getattr(a, "stopped", False) and cameras.get("a") is not a
    assert cameras.ids() == ["a", "c", "d"]  # a restarted camera keeps its place


def test_add_refuses_duplicates_and_disabled_cameras() -> None:
    cameras = _fake_set()
    cameras.add(_camera("a", "rtsp://h/a"))
    with pytest.raises(ValueError, match="already running"):
        cameras.add(_camera("a", "rtsp://h/other"))
    with pytest.raises(ValueError, match="disabled"):
        cameras.add(_camera("b", "rtsp://h/b", enabled=False))
    with pytest.raises(ValueError, match="unique"):
        cameras.apply([_camera("x", "rtsp://h/x"), _camera("x", "rtsp://h/y")])


def test_update_with_disabled_config_removes_the_camera() -> None:
    cameras = _fake_set()
    cameras.add(_camera("a", "rtsp://h/a"))
    assert cameras.update(_camera("a", "rtsp://h/a", enabled=False))
    assert "a" not in cameras


def test_replace_swaps_the_reader_at_once_and_hands_back_the_old_one_to_stop_later() -> None:
    """update() joined the old reader inside the caller's lock (the runner's): up to a second per camera."""
    cameras = _fake_set()
    cameras.start()
    old = cameras.add(_camera("a", "rtsp://h/a"))
    cameras.add(_camera("b", "rtsp://h/b"))

    assert cameras.replace(_camera("a", "rtsp://h/a", name="Hall A")) == (False, None)  # keeps its reader
    is_restarted, taken_out = cameras.replace(_camera("a", "rtsp://h/a2"))

    assert is_restarted and taken_out is old and not getattr(old, "stopped", False)  # not stopped yet
    new = cameras.get("a")
    assert new is not old and new is not None and getattr(new, "started", False)
    assert cameras.ids() == ["a", "b"]
    cameras.retire(old)
    assert getattr(old, "stopped", False)
    is_removed, disabled = cameras.replace(_camera("b", "rtsp://h/b", enabled=False))
    assert (
        is_removed and disabled is not None and "b" not in cameras and not getattr(disabled, "stopped", False)
    )


@pytest.mark.parametrize(
    ("change", "differs"),
    [
        ({"name": "New name"}, False),
        ({"faults": {"frozen_after_s": 5}}, False),
        # passwords are remembered process-wide and masked in every message: not a common word
        ({"url": "rtsp://admin:n3w-Pass@h/a"}, True),
        ({"analysis_fps": 1}, True),
        ({"keyframes_only": True}, True),
    ],
    ids=["name", "fault-thresholds", "password", "analysis-fps", "keyframes-only"],
)
def test_source_settings_differ(change: dict[str, object], differs: bool) -> None:
    old = _camera("a", "rtsp://admin:pw@h/a")
    new = _camera("a", **({"url": "rtsp://admin:pw@h/a"} | change))  # type: ignore[arg-type]
    assert source_settings_differ(old, new) is differs


def test_shared_condition_wakes_a_consumer_waiting_on_any_camera(test_clip: Path) -> None:
    cameras = CameraSet()
    source = cameras.add(_camera("a", test_clip))
    cameras.start()
    try:
        with cameras.new_frame:
            woke = cameras.new_frame.wait_for(lambda: source.health().frames_delivered > 0, timeout=30)
        assert woke
        assert [f.camera_id for f in cameras.take_latest()] == ["a"]
    finally:
        cameras.stop()
