"""EventWire: the one wire model of an event revision, written by the pipeline and read by the service."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pydantic import ValidationError

from anjian.pipeline.event import Behaviour, Event, EventBox, RiskLevel, SensorFacts
from anjian.pipeline.event_json import event_from_json, event_to_json
from anjian.pipeline.event_wire import EVENT_WIRE_VERSION, EventBoxWire, EventWire
from tests.factories import make_event

# The keys of wire version 1, in the order pipelines have always written them.
WIRE_V1_KEYS = [
    "schema_version",
    "id",
    "revision",
    "site_id",
    "workshop_id",
    "camera_id",
    "behaviour",
    "severity",
    "started_at",
    "last_seen_at",
    "ended_at",
    "confidence",
    "boxes",
    "zone_id",
    "model_version",
    "message",
    "snapshot_jpeg_b64",
    "clip_mp4_b64",
    "track_id",
]


def test_the_wire_form_is_version_1_with_its_keys_in_order_and_evidence_in_base64() -> None:
    event = make_event(snapshot_jpeg=b"\xff\xd8jpeg", clip_mp4=b"mp4", track_id=12)

    data = EventWire.from_event(event).model_dump(mode="json")

    assert list(data) == WIRE_V1_KEYS
    assert data["schema_version"] == EVENT_WIRE_VERSION == 1
    assert (data["behaviour"], data["severity"]) == ("open_flame", "red")
    assert (data["snapshot_jpeg_b64"], data["clip_mp4_b64"]) == ("/9hqcGVn", "bXA0")
    assert data["boxes"] == [{"class_name": "fire", "confidence": 0.87, "xyxy_norm": [0.1, 0.2, 0.3, 0.4]}]
    assert data["track_id"] == 12
    assert event_to_json(event) == data


def test_a_sensor_event_carries_its_reading_last_and_a_camera_event_has_no_sensor_key() -> None:
    facts = SensorFacts("nh3-1", "ammonia", "ppm", "high", 62.0, 80.5, 50.0, ("cam-1",))
    event = make_event(behaviour=Behaviour.SENSOR_THRESHOLD, camera_id="nh3-1", sensor=facts)

    data = event_to_json(event)

    assert list(data) == [*WIRE_V1_KEYS, "sensor"]
    assert data["sensor"] == {
        "sensor_id": "nh3-1",
        "quantity": "ammonia",
        "unit": "ppm",
        "kind": "high",
        "value": 62.0,
        "peak": 80.5,
        "threshold": 50.0,
        "camera_ids": ["cam-1"],
    }
    assert event_from_json(json.loads(json.dumps(data))) == event
    assert "sensor" not in event_to_json(make_event())
    with pytest.raises(ValueError, match=r"sensor.kind: Input should be"):
        event_from_json({**data, "sensor": {**data["sensor"], "kind": "smell"}})


def test_a_spooled_record_of_an_older_pipeline_still_reads() -> None:
    record = (
        '{"schema_version":1,"id":"abc123","revision":2,"site_id":"site-1","workshop_id":"polishing-1",'
        '"camera_id":"cam-1","behaviour":"smoking","severity":"orange","started_at":1700000000,'
        '"last_seen_at":1700000004.5,"ended_at":null,"confidence":0.75,"boxes":[],"zone_id":null,'
        '"model_version":"","message":"","snapshot_jpeg_b64":null,"clip_mp4_b64":null,"track_id":null}'
    )

    event = EventWire.model_validate_json(record).to_event()

    assert (event.id, event.revision, event.behaviour, event.severity) == (
        "abc123",
        2,
        Behaviour.SMOKING,
        RiskLevel.ORANGE,
    )
    assert event.started_at == 1_700_000_000.0 and event.track_id is None


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"ended_at": 1_700_000_009.25, "zone_id": None},
        {"snapshot_jpeg": None, "clip_mp4": b"\x00\x00\x00\x18ftypisom-clip", "track_id": 7},
    ],
    ids=["ongoing", "ended-no-zone", "clip-and-track"],
)
def test_every_field_round_trips_through_json_text(overrides: dict[str, Any]) -> None:
    event = make_event(**overrides)

    text = json.dumps(EventWire.from_event(event).model_dump(mode="json"))

    assert EventWire.model_validate_json(text).to_event() == event
    assert EventWire.model_validate(json.loads(text)).to_event() == event


@pytest.mark.parametrize(
    ("change", "loc", "error_type"),
    [
        ({"revision": "1"}, ("revision",), "int_type"),
        ({"revision": True}, ("revision",), "int_type"),
        ({"confidence": float("nan")}, ("confidence",), "finite_number"),
        ({"started_at": float("inf")}, ("started_at",), "finite_number"),
        ({"last_seen_at": 1.0}, ("last_seen_at",), "time_order"),
        ({"track_id": 2**63}, ("track_id",), "less_than_equal"),
        ({"snapshot_jpeg_b64": 5}, ("snapshot_jpeg_b64",), "string_type"),
        ({"clip_mp4_b64": "not base64!"}, ("clip_mp4_b64",), "base64"),
        (
            {"boxes": [{"class_name": "fire", "confidence": 0.5, "xyxy_norm": [0, 0, 1, 1.5]}]},
            ("boxes", 0, "xyxy_norm", 3),
            "less_than_equal",
        ),
        ({"camera_id": "../cam"}, ("camera_id",), "string_pattern_mismatch"),
        ({"snapshot_jpeg": "AAAA"}, ("snapshot_jpeg",), "extra_forbidden"),
    ],
    ids=[
        "revision-string",
        "revision-bool",
        "nan",
        "infinity",
        "time-order",
        "track-int64",
        "evidence-type",
        "evidence-base64",
        "box-outside-frame",
        "id-pattern",
        "python-name-is-not-a-wire-key",
    ],
)
def test_the_model_refuses_what_the_wire_may_not_carry(
    change: dict[str, object], loc: tuple[object, ...], error_type: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        EventWire.model_validate({**event_to_json(make_event()), **change})

    (error,) = caught.value.errors()
    assert (error["loc"], error["type"]) == (loc, error_type)


def test_event_from_json_names_each_wrong_field_with_its_path() -> None:
    data = {
        **event_to_json(make_event()),
        "surprise": 1,
        "boxes": [{"class_name": "x", "confidence": 2, "xyxy_norm": [0, 0, 1, 1]}],
    }

    with pytest.raises(ValueError, match=r"boxes\[0\]\.confidence: .*; surprise: unknown field"):
        event_from_json(data)


def test_serialising_never_validates_so_the_sink_cannot_fail_on_an_odd_event() -> None:
    odd = make_event(
        camera_id="cam 1", message="x" * 5000, started_at=float("nan"), last_seen_at=float("nan")
    )

    data = EventWire.from_event(odd).model_dump(mode="json")

    assert data["camera_id"] == "cam 1" and len(data["message"]) == 5000
    with pytest.raises(ValidationError):  # the service refuses it (422), the sink sets it aside
        EventWire.model_validate(data)


def test_the_wire_model_has_a_field_for_each_field_of_the_event_and_nothing_else() -> None:
    event_fields = {field.name for field in dataclasses.fields(Event)}
    box_fields = {field.name for field in dataclasses.fields(EventBox)}

    assert set(EventWire.model_fields) - {"schema_version"} == event_fields
    assert set(EventBoxWire.model_fields) == box_fields
