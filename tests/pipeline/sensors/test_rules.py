"""Sensor rules: four-colour limits with hysteresis and minimum duration, rate of rise, sensor faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from anjian.pipeline.event import Behaviour, Event, RiskLevel
from anjian.pipeline.incident_journal import IncidentJournal
from anjian.pipeline.incidents import EventContext, IncidentUpdate, UpdateKind
from anjian.pipeline.sensors.config import SensorConfig, ThresholdsConfig
from anjian.pipeline.sensors.rules import SensorRules

T0 = 1_700_000_000.0


def make_sensor(**overrides: Any) -> SensorConfig:
    data: dict[str, Any] = {
        "id": "nh3-1",
        "quantity": "ammonia",
        "unit": "ppm",
        "source": {"kind": "http"},
        "thresholds": {"yellow": 25, "orange": 50, "red": 150, "hysteresis": 3, "min_duration_s": 5},
        "faults": {"stale_after_s": 60},
        "camera_ids": ["cam-1"],
        "update_interval_s": 30,
    }
    data.update(overrides)
    return SensorConfig.model_validate(data)


def make_rules(config: SensorConfig, language: str = "en") -> SensorRules:
    context = EventContext("plant", "freezing-1", config.id, "", language=language)
    return SensorRules(config, context, started_at=T0)


def feed(
    rules: SensorRules, values: list[float], *, start: float = T0, step_s: float = 1.0
) -> list[IncidentUpdate]:
    updates: list[IncidentUpdate] = []
    for index, value in enumerate(values):
        updates += rules.observe(value, start + index * step_s)
    return updates


def of(updates: list[IncidentUpdate], behaviour: Behaviour) -> list[IncidentUpdate]:
    return [u for u in updates if u.event.behaviour is behaviour]


def test_a_reading_wavering_at_the_limit_raises_one_incident_not_fifty() -> None:
    rules = make_rules(make_sensor())
    wavering = [24.0, 26.0, 23.5, 25.5, 24.0, 26.5] * 10  # around the yellow limit 25, inside the 3 ppm band
    updates = of(feed(rules, wavering), Behaviour.SENSOR_THRESHOLD)
    opened = [u for u in updates if u.kind is UpdateKind.OPENED]
    assert len(opened) == 1
    assert opened[0].event.severity is RiskLevel.YELLOW
    assert opened[0].event.started_at == T0 + 1  # the first reading at the limit
    assert not [u for u in updates if u.kind is UpdateKind.CLOSED]


def test_a_short_spike_under_the_minimum_duration_raises_nothing() -> None:
    rules = make_rules(make_sensor())
    assert feed(rules, [10, 200, 200, 200, 10, 10]) == []


def test_one_incident_rises_through_the_colours_and_ends_on_recovery_with_its_peak() -> None:
    rules = make_rules(make_sensor())
    readings = [30.0] * 6 + [60.0] * 6 + [180.0] * 6 + [20.0] * 12
    updates = of(feed(rules, readings), Behaviour.SENSOR_THRESHOLD)
    assert [(u.kind, u.event.severity) for u in updates] == [
        (UpdateKind.OPENED, RiskLevel.YELLOW),
        (UpdateKind.UPDATED, RiskLevel.ORANGE),
        (UpdateKind.UPDATED, RiskLevel.RED),
        (UpdateKind.CLOSED, RiskLevel.RED),
    ]
    assert len({u.event.id for u in updates}) == 1
    red, closed = updates[2].event, updates[3].event
    assert red.sensor is not None and red.sensor.threshold == 150 and red.sensor.value == 180
    assert red.sensor.kind == "high" and red.sensor.unit == "ppm" and red.sensor.camera_ids == ("cam-1",)
    assert closed.ended_at is not None and closed.sensor is not None
    assert closed.sensor.peak == 180 and closed.sensor.value == 20  # the reading it recovered at
    assert "red limit 150 ppm" in red.message


def test_an_ongoing_incident_is_republished_with_its_latest_reading_every_update_interval() -> None:
    rules = make_rules(make_sensor(update_interval_s=10))
    updates = of(feed(rules, [30.0] * 6 + [31.0, 32.0, 33.0, 34.0] * 5), Behaviour.SENSOR_THRESHOLD)
    kinds = [u.kind for u in updates]
    assert kinds[0] is UpdateKind.OPENED and kinds.count(UpdateKind.UPDATED) == 2
    last = updates[-1].event
    assert last.revision == 3 and last.sensor is not None and last.sensor.peak == 34


def test_a_low_limit_raises_when_the_level_falls() -> None:
    thresholds = {"direction": "low", "yellow": 30, "red": 10, "hysteresis": 2, "min_duration_s": 0}
    rules = make_rules(make_sensor(id="level-1", quantity="level", unit="%", thresholds=thresholds))
    updates = of(feed(rules, [50, 29, 9, 8, 35, 35] + [40.0] * 12), Behaviour.SENSOR_THRESHOLD)
    assert [(u.kind, u.event.severity) for u in updates] == [
        (UpdateKind.OPENED, RiskLevel.YELLOW),
        (UpdateKind.UPDATED, RiskLevel.RED),
        (UpdateKind.CLOSED, RiskLevel.RED),
    ]
    assert updates[-1].event.sensor is not None and updates[-1].event.sensor.peak == 8


def test_a_fast_rise_raises_a_rate_of_rise_alert_before_any_limit() -> None:
    config = make_sensor(rate_of_rise={"per_minute": 10, "window_s": 20, "severity": "orange"})
    rules = make_rules(config)
    rising = [5.0 + 0.5 * i for i in range(30)]  # 30 ppm/min, staying under the yellow 25
    updates = feed(rules, rising + [20.0] * 60)
    assert not of(updates, Behaviour.SENSOR_THRESHOLD)
    rate = of(updates, Behaviour.SENSOR_RATE_OF_RISE)
    assert rate[0].kind is UpdateKind.OPENED and rate[0].event.severity is RiskLevel.ORANGE
    assert rate[0].event.sensor is not None and rate[0].event.sensor.kind == "rate"
    assert rate[0].event.sensor.value == pytest.approx(30.0)
    assert rate[-1].kind is UpdateKind.CLOSED


def test_a_silent_sensor_goes_stale_and_recovers_when_readings_come_back() -> None:
    rules = make_rules(make_sensor())
    assert rules.tick(T0 + 59) == []
    stale = rules.tick(T0 + 61)
    assert [(u.kind, u.event.behaviour, u.event.sensor.kind if u.event.sensor else None) for u in stale] == [
        (UpdateKind.OPENED, Behaviour.SENSOR_FAULT, "stale")
    ]
    assert "sends no data" in stale[0].event.message
    updates = feed(rules, [10.0] * 15, start=T0 + 62)
    assert [u.kind for u in of(updates, Behaviour.SENSOR_FAULT)] == [UpdateKind.CLOSED]


def test_a_stuck_reading_is_a_flatline_fault() -> None:
    rules = make_rules(make_sensor(faults={"flatline_after_s": 30, "flatline_tolerance": 0.01}))
    updates = feed(rules, [12.0, 12.005] * 20 + [13.0, 14.0] * 8)
    faults = of(updates, Behaviour.SENSOR_FAULT)
    assert [(u.kind, u.event.sensor.kind if u.event.sensor else None) for u in faults] == [
        (UpdateKind.OPENED, "flatline"),
        (UpdateKind.CLOSED, "flatline"),
    ]


def test_a_reading_outside_the_physical_range_is_a_fault_and_not_a_red_alarm() -> None:
    rules = make_rules(make_sensor(faults={"min": 0, "max": 1000}))
    updates = feed(rules, [65535.0] * 10 + [5.0] * 15)
    assert not of(updates, Behaviour.SENSOR_THRESHOLD)
    faults = of(updates, Behaviour.SENSOR_FAULT)
    assert [u.kind for u in faults] == [UpdateKind.OPENED, UpdateKind.CLOSED]
    opened: Event = faults[0].event
    assert (
        opened.sensor is not None and opened.sensor.kind == "out_of_range" and opened.sensor.threshold == 1000
    )
    assert "outside its physical range 0.0 to 1000.0" in opened.message


def test_messages_follow_the_site_language() -> None:
    rules = make_rules(make_sensor(), language="zh-CN")
    opened = feed(rules, [200.0] * 6)[0].event
    assert "达到红色阈值" in opened.message


def test_closing_the_rules_ends_every_open_incident() -> None:
    rules = make_rules(make_sensor(faults={"min": 0, "max": 400}))
    feed(rules, [60.0] * 6 + [500.0])
    assert sorted(rules.open_kinds()) == ["out_of_range", "threshold"]
    closed = rules.close(T0 + 100)
    assert len(closed) == 2 and all(u.kind is UpdateKind.CLOSED for u in closed)
    assert rules.open_kinds() == []


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({}, "give at least one of blue, yellow, orange, red"),
        ({"yellow": 50, "red": 25}, "limits must strictly rise from blue to red"),
        ({"direction": "low", "yellow": 10, "red": 30}, "limits must strictly fall from blue to red"),
        ({"yellow": 10, "colour": 5}, "Extra inputs are not permitted"),
    ],
    ids=["none", "high-unordered", "low-unordered", "typo"],
)
def test_bad_thresholds_are_refused_with_what_is_wrong(thresholds: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ThresholdsConfig.model_validate(thresholds)


def test_an_incident_ends_after_a_normal_reading_without_waiting_for_the_next_one_but_silence_is_no_recovery() -> (
    None
):
    rules = make_rules(make_sensor(thresholds={"red": 150, "min_duration_s": 0, "clear_after_s": 5}))
    assert [u.kind for u in rules.observe(200.0, T0)] == [UpdateKind.OPENED]
    assert rules.tick(T0 + 30) == []  # silent while red: still open (stale comes later)
    assert [u.kind for u in rules.observe(200.0, T0 + 31)] == [UpdateKind.UPDATED]  # the update interval
    assert rules.observe(20.0, T0 + 32) == []  # back to normal: ends clear_after_s after the last red reading
    assert rules.tick(T0 + 35) == []
    assert [(u.kind, u.event.behaviour) for u in rules.tick(T0 + 36.5)] == [
        (UpdateKind.CLOSED, Behaviour.SENSOR_THRESHOLD)
    ]


def test_a_sender_reporting_on_change_raises_min_duration_after_the_crossing_not_at_its_next_message() -> (
    None
):
    """The hold completed only when a next reading came: a red ammonia jump from an on-change gateway was
    raised at its heartbeat, minutes late."""
    rules = make_rules(make_sensor(faults={"stale_after_s": 600}))
    assert of(rules.observe(200.0, T0), Behaviour.SENSOR_THRESHOLD) == []  # red, timing 5 s
    assert rules.tick(T0 + 4) == []
    [opened] = of(rules.tick(T0 + 5), Behaviour.SENSOR_THRESHOLD)
    assert opened.kind is UpdateKind.OPENED and opened.event.severity is RiskLevel.RED
    assert opened.event.started_at == T0
    assert rules.tick(T0 + 100) == []  # held and silent: nothing new to say until a reading


def test_a_lone_spike_then_readings_inside_the_band_raise_nothing() -> None:
    """One reading at the limit and then readings in the hysteresis band raised yellow once min_duration_s
    had passed: the minimum duration counted a single spike."""
    rules = make_rules(make_sensor())
    updates = feed(rules, [20.0, 25.0] + [23.0] * 20)  # yellow 25, hysteresis 3: 23 is in the band
    updates += rules.tick(T0 + 30)
    assert of(updates, Behaviour.SENSOR_THRESHOLD) == []


def test_a_sender_whose_clock_runs_behind_is_not_stale() -> None:
    """Staleness took the sender's time against this machine's: a gateway 5 minutes behind opened a stale
    fault at every tick and closed it at every reading, 120 alerts in 20 minutes."""
    rules = make_rules(make_sensor(faults={"stale_after_s": 60}))
    behind_s = 300.0
    updates: list[IncidentUpdate] = []
    for second in range(1200):
        now = T0 + second
        if second % 10 == 0:
            updates += rules.observe(10.0, now - behind_s, received_at=now)
        updates += rules.tick(now)
    assert of(updates, Behaviour.SENSOR_FAULT) == []
    assert rules.open_kinds() == []


def test_a_fast_rise_after_sparse_readings_is_measured_from_the_value_held_before_it() -> None:
    """Every point older than the window was dropped, the last value before the rise too: 0 to 120 ppm in
    20 s after two-minute heartbeats left too little history and raised nothing."""
    rules = make_rules(make_sensor(thresholds=None, rate_of_rise={"per_minute": 20, "window_s": 60}))
    updates = feed(rules, [0.0, 0.0, 0.0, 0.0], step_s=120)  # heartbeats every two minutes
    rise_at = T0 + 3 * 120
    for second, value in ((10, 40.0), (20, 120.0)):
        updates += rules.observe(value, rise_at + second)
    rate = of(updates, Behaviour.SENSOR_RATE_OF_RISE)
    assert [u.kind for u in rate] == [UpdateKind.OPENED]
    assert rate[0].event.sensor is not None and rate[0].event.sensor.value == pytest.approx(
        40.0
    )  # 40 ppm a minute


@pytest.mark.parametrize(
    ("min_duration_s", "period_s"),
    [(5, 30), (30, 1)],
    ids=["reports-less-often-than-clear-after", "min-duration-past-clear-after"],
)
def test_an_alarm_open_at_a_restart_stays_one_alert_while_the_gas_stays_high(
    tmp_path: Path, min_duration_s: float, period_s: int
) -> None:
    """The first tick after a restart counted the resumed alarm absent (no reading yet, or a hold still
    re-forming), so it ended 10 s in and a second alarm was raised for the same gas."""
    config = make_sensor(
        thresholds={"red": 150, "min_duration_s": min_duration_s, "clear_after_s": 10},
        faults={"stale_after_s": 120},
    )

    def run(start: float) -> list[IncidentUpdate]:
        journal = IncidentJournal(tmp_path / "journal.json")
        context = EventContext("plant", "freezing-1", config.id, "", journal=journal)
        rules = SensorRules(config, context, started_at=start)
        updates: list[IncidentUpdate] = []
        for second in range(1, 121):
            if second % period_s == 0:
                updates += rules.observe(200.0, start + second)
            updates += rules.tick(start + second)
        journal.suspend()  # the service stops: the journal keeps what is open
        return updates

    before = of(run(T0), Behaviour.SENSOR_THRESHOLD)
    after = of(run(T0 + 125), Behaviour.SENSOR_THRESHOLD)  # restarted 5 s later; the gas still at 200 ppm

    assert len({u.event.id for u in before + after}) == 1
    assert not [u for u in after if u.kind is UpdateKind.CLOSED]


def test_a_stale_fault_open_at_a_restart_lasts_until_a_reading_comes(tmp_path: Path) -> None:
    config = make_sensor(faults={"stale_after_s": 30})

    def rules_with(journal: IncidentJournal, start: float) -> SensorRules:
        return SensorRules(
            config, EventContext("plant", "freezing-1", config.id, "", journal=journal), started_at=start
        )

    first_journal = IncidentJournal(tmp_path / "journal.json")
    first = rules_with(first_journal, T0)
    assert [u.kind for u in of(first.tick(T0 + 30), Behaviour.SENSOR_FAULT)] == [UpdateKind.OPENED]
    first_journal.suspend()

    second = rules_with(IncidentJournal(tmp_path / "journal.json"), T0 + 40)
    quiet = [u for second_ in range(41, 100) for u in second.tick(T0 + second_)]
    assert not [u for u in of(quiet, Behaviour.SENSOR_FAULT) if u.kind is UpdateKind.CLOSED]
    assert second.open_kinds() == ["stale"]
    second.observe(10.0, T0 + 100)
    closed = [u for s in range(101, 200) for u in second.tick(T0 + s) if u.kind is UpdateKind.CLOSED]
    assert [u.event.behaviour for u in closed] == [Behaviour.SENSOR_FAULT]
