"""A gas alarm that goes on through a restart of the service stays one alert; one of a removed sensor ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from anjian.pipeline.sensors.reading import Reading
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import AnjianConfig
from anjian.service.records import StoredEvent
from tests.service.conftest import make_config
from tests.support.waiting import wait_for


def _site(data_dir: Path, sensor_id: str = "nh3-1") -> AnjianConfig:
    data: dict[str, Any] = make_config(data_dir).model_dump(mode="python")
    data["site"]["workshops"][0]["sensors"] = [
        {
            "id": sensor_id,
            "quantity": "ammonia",
            "unit": "ppm",
            "source": {"kind": "http"},
            "thresholds": {"orange": 50, "red": 150, "min_duration_s": 0, "clear_after_s": 0.5},
        }
    ]
    return AnjianConfig.model_validate(data)


def _push(parts: ServiceParts, sensor_id: str, value: float) -> None:
    assert parts.sensors is not None
    now = time.time()
    assert parts.sensors.offer(Reading(sensor_id, value, now, now))


def _alarms(parts: ServiceParts) -> list[StoredEvent]:
    return parts.store.list_events().items


def test_an_alarm_that_goes_on_through_a_restart_stays_one_alert_and_ends_once_the_reading_is_normal(
    tmp_path: Path,
) -> None:
    config = _site(tmp_path / "data")
    first = build_service_parts(config)
    first.start()
    try:
        _push(first, "nh3-1", 200.0)
        assert wait_for(lambda: [a.severity for a in _alarms(first)] == ["red"], 20)
    finally:
        first.close()
    (before,) = _alarms_after_close(config)
    assert before.ended_at is None, "stopping the service does not end the alarm"

    second = build_service_parts(config)
    second.start()
    try:
        _push(second, "nh3-1", 180.0)
        assert wait_for(lambda: _alarms(second)[0].revision > before.revision, 20)
        (going_on,) = _alarms(second)
        assert going_on.id == before.id and going_on.ended_at is None
        assert going_on.sensor is not None and going_on.sensor.peak == 200.0, "the peak survives the restart"
        _push(second, "nh3-1", 10.0)
        assert wait_for(lambda: _alarms(second)[0].ended_at is not None, 20)
        assert len(_alarms(second)) == 1
    finally:
        second.close()


def test_the_alarm_of_a_sensor_removed_while_the_service_was_down_is_ended_at_the_next_start(
    tmp_path: Path,
) -> None:
    first = build_service_parts(_site(tmp_path / "data"))
    first.start()
    try:
        _push(first, "nh3-1", 200.0)
        assert wait_for(lambda: len(_alarms(first)) == 1, 20)
    finally:
        first.close()

    renamed = build_service_parts(_site(tmp_path / "data", sensor_id="nh3-2"))
    renamed.start()
    try:
        assert wait_for(lambda: _alarms(renamed)[0].ended_at is not None, 20)
    finally:
        renamed.close()


def _alarms_after_close(config: AnjianConfig) -> list[StoredEvent]:
    from anjian.service.store import EventStore

    store = EventStore.from_config(config.storage)
    try:
        return store.list_events().items
    finally:
        store.close()
