"""The bus's messages: every time in them is bounded, and each side reads a newer other side's message leaving out
what it lacks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from anjian.cameras.health import CameraState
from anjian.pipeline.sensors.health import SensorState
from anjian.service.bus.messages import (
    CameraReport,
    EventChange,
    HealthReport,
    RemarkReceipt,
    SensorReport,
    SupervisorRemark,
    parse_hub_remark,
    parse_plant_message,
)
from tests.factories import make_event
from tests.service.conftest import FakeClock
from tests.service.hub.conftest import PlantRecorder

_NOW = 1_800_000_000.0


def _camera(at: float) -> BaseModel:
    return CameraReport(camera_id="cam-1", state=CameraState.ONLINE, since=at)


def _camera_frame(at: float) -> BaseModel:
    return CameraReport(camera_id="cam-1", state=CameraState.ONLINE, since=_NOW, last_frame_at=at)


def _sensor(at: float) -> BaseModel:
    return SensorReport(
        sensor_id="nh3-1",
        workshop_id="w",
        quantity="ammonia",
        source="http",
        state=SensorState.OK,
        last_reading_at=at,
    )


def _health(at: float) -> BaseModel:
    return HealthReport(plant_id="lab-3", sent_at=at)


def _remark(at: float) -> BaseModel:
    return SupervisorRemark(id="0" * 32, plant_id="lab-3", event_id="e-1", actor="bureau", note="n", at=at)


def _receipt(at: float) -> BaseModel:
    return RemarkReceipt(plant_id="lab-3", event_id="e-1", remark_id="0" * 32, outcome="recorded", sent_at=at)


_TIMED: list[Callable[[float], BaseModel]] = [_camera, _camera_frame, _sensor, _health, _remark, _receipt]
_IDS = [
    "camera-since",
    "camera-last-frame",
    "sensor-last-reading",
    "health-sent",
    "remark-at",
    "receipt-sent",
]


@pytest.mark.parametrize("make", _TIMED, ids=_IDS)
@pytest.mark.parametrize("at", [1e15, -1.0], ids=["year-31-million", "before-1970"])
def test_a_time_no_clock_can_show_is_refused(make: Callable[[float], BaseModel], at: float) -> None:
    with pytest.raises(
        ValidationError, match="greater than or equal to 0|less than or equal to 100000000000"
    ):
        make(at)


@pytest.mark.parametrize("make", _TIMED, ids=_IDS)
def test_a_time_of_now_is_taken(make: Callable[[float], BaseModel]) -> None:
    make(_NOW)


@pytest.fixture
def raised(tmp_path: Path) -> dict[str, Any]:
    """A plant's announcement of a raised incident, as parsed JSON."""
    recorder = PlantRecorder("lab-3", tmp_path / "plant.db", FakeClock())
    try:
        data: dict[str, Any] = json.loads(recorder.raise_event(make_event()).model_dump_json())
    finally:
        recorder.store.close()
    return data


def test_an_event_change_sent_past_any_clock_is_refused(raised: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="sent_at"):
        parse_plant_message(json.dumps({**raised, "sent_at": 1e15}).encode())


def test_a_time_in_the_plants_record_past_what_a_date_holds_is_refused_not_raised_as_an_overflow(
    raised: dict[str, Any],
) -> None:
    event = {**raised["payload"]["event"], "started_at": 1e20}
    payload = {**raised["payload"], "event": event}
    with pytest.raises(ValueError, match="out of range"):
        parse_plant_message(json.dumps({**raised, "payload": payload}).encode())


def test_fields_a_newer_plant_adds_are_left_out_and_named(raised: dict[str, Any]) -> None:
    event = {**raised["payload"]["event"], "shift": "night"}
    event["boxes"] = [{**box, "mask": []} for box in event["boxes"]]
    payload = {**raised["payload"], "event": event, "origin": "line-a"}

    message, unknown = parse_plant_message(json.dumps({**raised, "payload": payload, "hop": 1}).encode())

    assert isinstance(message, EventChange)
    assert sorted(unknown) == sorted(
        ["payload.event.shift", "payload.origin", "hop"]
        + [f"payload.event.boxes.{i}.mask" for i in range(len(event["boxes"]))]
    )


def test_an_unknown_field_does_not_excuse_a_wrong_one(raised: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="key"):
        parse_plant_message(json.dumps({**raised, "shift": "night", "key": ""}).encode())


def test_the_plants_side_still_refuses_a_field_the_model_lacks() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        HealthReport(plant_id="lab-3", sent_at=_NOW, shift="night")  # type: ignore[call-arg]


def test_fields_a_newer_hub_adds_to_a_remark_are_left_out_and_named() -> None:
    # A hub upgraded before its plants adds a field: the plant refused ("Extra inputs") and lost the remark.
    remark = json.loads(_remark(_NOW).model_dump_json())

    parsed, unknown = parse_hub_remark(json.dumps({**remark, "urgency": "high"}).encode())

    assert parsed == _remark(_NOW)
    assert unknown == ("urgency",)


def test_a_remark_with_an_unknown_field_and_a_wrong_one_is_refused() -> None:
    remark = json.loads(_remark(_NOW).model_dump_json())
    with pytest.raises(ValidationError, match="note"):
        parse_hub_remark(json.dumps({**remark, "urgency": "high", "note": ""}).encode())


def test_a_plants_receipt_of_a_remark_is_a_plant_message() -> None:
    receipt = _receipt(_NOW)

    assert parse_plant_message(receipt.model_dump_json().encode()) == (receipt, ())
