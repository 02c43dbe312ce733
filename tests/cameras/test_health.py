"""Camera health: states keep their since-time across retries, down_since spans the outage."""

from __future__ import annotations

from anjian.cameras.health import CameraState, HealthTracker


def test_health_starts_connecting_and_down_since_start() -> None:
    health = HealthTracker("cam1", now=100.0).snapshot()
    assert (health.state, health.since, health.down_since) == (CameraState.CONNECTING, 100.0, 100.0)


def test_retries_in_the_same_state_keep_since_and_record_the_latest_error() -> None:
    tracker = HealthTracker("cam1", now=0.0)
    tracker.set_state(CameraState.OFFLINE, 5.0, "refused")
    tracker.set_state(CameraState.OFFLINE, 9.0, "timed out")
    health = tracker.snapshot()
    assert (health.state, health.since, health.last_error) == (CameraState.OFFLINE, 5.0, "timed out")


def test_down_since_spans_changing_failure_states_and_clears_online() -> None:
    tracker = HealthTracker("cam1", now=0.0)
    tracker.set_state(CameraState.ONLINE, 1.0)
    assert tracker.snapshot().down_since is None
    tracker.set_state(CameraState.STALLED, 10.0, "no data")
    tracker.set_state(CameraState.OFFLINE, 12.0, "refused")
    tracker.set_state(CameraState.FAILED_CONFIG, 20.0, "401")
    health = tracker.snapshot()
    assert (health.state, health.since, health.down_since) == (CameraState.FAILED_CONFIG, 20.0, 10.0)
    tracker.set_state(CameraState.ONLINE, 30.0)
    assert tracker.snapshot().down_since is None


def test_fps_follows_delivered_frames_and_drops_to_zero_when_down() -> None:
    tracker = HealthTracker("cam1", now=0.0)
    tracker.set_state(CameraState.ONLINE, 0.0)
    for i in range(20):
        tracker.delivered(now=i * 0.2)
    assert tracker.snapshot().fps == 5.0
    assert tracker.snapshot().frames_delivered == 20
    tracker.set_state(CameraState.OFFLINE, 10.0, "gone")
    assert tracker.snapshot().fps == 0.0
    tracker.set_state(CameraState.ONLINE, 60.0)
    tracker.delivered(now=60.0)
    tracker.delivered(now=60.5)
    assert tracker.snapshot().fps == 2.0  # the outage gap does not count as a slow frame
