"""A sensor's health as the runner reports it: waiting, ok, a fault, its source offline, an alarm beside it."""

from __future__ import annotations

import pytest

from anjian.pipeline.sensors.config import SensorSourcesConfig
from anjian.pipeline.sensors.health import SensorState, sensor_state
from anjian.pipeline.sensors.reading import Reading
from anjian.pipeline.sensors.runner import SensorAssignment, SensorRunner
from anjian.pipeline.sink import ListSink
from tests.pipeline.sensors.test_rules import make_sensor
from tests.support.waiting import wait_for

T0 = 1_800_000_000.0


@pytest.mark.parametrize(
    ("connected", "kinds", "last_at", "state"),
    [
        (False, ["threshold"], T0, SensorState.OFFLINE),
        (True, ["threshold", "stale"], T0, SensorState.FAULT),
        (None, ["flatline"], T0, SensorState.FAULT),
        (True, [], None, SensorState.WAITING),
        (True, ["threshold", "rate"], T0, SensorState.OK),
        (None, [], T0, SensorState.OK),
    ],
    ids=["source-down", "stale", "flatline-pushed", "no-reading-yet", "alarm-is-not-a-fault", "ok"],
)
def test_the_state_is_the_worst_of_source_faults_and_readings(
    connected: bool | None, kinds: list[str], last_at: float | None, state: SensorState
) -> None:
    assert sensor_state(is_source_connected=connected, open_kinds=kinds, last_reading_at=last_at) is state


def test_the_runner_reports_each_sensors_last_reading_its_alarms_and_a_stale_one() -> None:
    now = [T0]
    assignments = [
        SensorAssignment("freezing-1", make_sensor(id="nh3-1", faults={"stale_after_s": 30})),
        SensorAssignment("freezing-1", make_sensor(id="nh3-2", quantity="ammonia")),
    ]
    runner = SensorRunner(
        "plant", assignments, SensorSourcesConfig(), ListSink(), clock=lambda: now[0], tick_s=0.05
    )
    runner.start()
    try:
        before = {h.sensor_id: h for h in runner.health()}
        assert before["nh3-1"].state is SensorState.WAITING and before["nh3-1"].last_value is None
        for second in range(6):  # 60 ppm held for 5 s: above orange
            runner.offer(Reading("nh3-1", 60.0, at=T0 + second, received_at=T0 + second))
        assert wait_for(lambda: runner.health()[0].is_alarm, 10)
        first, second = runner.health()
        assert (first.state, first.last_value, first.last_reading_at) == (SensorState.OK, 60.0, T0 + 5)
        assert (first.source, first.is_source_connected, first.workshop_id) == ("http", None, "freezing-1")
        assert first.open_kinds == ("threshold",)
        assert second.state is SensorState.WAITING

        now[0] = T0 + 100  # no reading for 95 s: stale
        assert wait_for(lambda: runner.health()[0].state is SensorState.FAULT, 10)
        assert "stale" in runner.health()[0].open_kinds
    finally:
        runner.stop()
