"""Any bytes a plant or the hub puts on the bus are read or refused with a ``ValueError``, never another exception.

A consumer that met anything else would stop on one bad message (the hub's for every plant).
Hypothesis mutates real messages of every kind (values replaced by any JSON, fields dropped,
fields added, the text cut short) and tries plain random bytes; the parsers must give a message or
a ``ValueError`` (pydantic's ``ValidationError`` is one) naming what is wrong.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anjian.cameras.health import CameraState
from anjian.pipeline.sensors.health import SensorState
from anjian.pipeline.sensors.mqtt_source import parse_payload
from anjian.service.bus.messages import (
    CameraReport,
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


def _event_change() -> dict[str, Any]:
    """A real plant's message announcing a raised incident, with its snapshot, as JSON."""
    with tempfile.TemporaryDirectory(prefix="anjian-msg-fuzz-") as folder:
        recorder = PlantRecorder("lab-3", Path(folder) / "plant.db", FakeClock())
        try:
            change = recorder.raise_event(make_event(id="evt-1", snapshot_jpeg=b"\xff\xd8jpeg"))
        finally:
            recorder.store.close()
    return dict(json.loads(change.model_dump_json()))


_HEALTH = HealthReport(
    plant_id="lab-3",
    sent_at=_NOW,
    cameras=[CameraReport(camera_id="cam-1", state=CameraState.ONLINE, since=_NOW, last_frame_at=_NOW)],
    sensors=[
        SensorReport(
            sensor_id="nh3-1", workshop_id="w", quantity="ammonia", source="http", state=SensorState.OK
        )
    ],
)
_RECEIPT = RemarkReceipt(
    plant_id="lab-3", event_id="e-1", remark_id="0" * 32, outcome="recorded", sent_at=_NOW
)
_REMARK = SupervisorRemark(id="0" * 32, plant_id="lab-3", event_id="e-1", actor="bureau", note="n", at=_NOW)

_EDGES = st.sampled_from([1e15, -1e15, 1e308, -62_135_596_801.0, 2**64, -1, 0, "", "x" * 300, "9" * 400])
"""Values at the edges of what a field holds: times no date can show, ints past 64 bits, long text."""
_ANY_JSON = st.recursive(
    _EDGES | st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _places(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every ``(container, key)`` of a parsed JSON document, the containers themselves included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _places(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _places(value)


@st.composite
def _mutated(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    """``document`` with one to three values replaced, fields dropped or added, as bytes, maybe cut short."""
    mutated = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        places = list(_places(mutated))
        container, key = draw(st.sampled_from(places)) if places else (mutated, "type")
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            container[key] = draw(_ANY_JSON)
        elif action == "drop":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.text(min_size=1, max_size=8))] = draw(_ANY_JSON)
        else:
            container.append(draw(_ANY_JSON))
    data = json.dumps(mutated).encode()
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


_PLANT_MESSAGES = [
    _event_change(),
    json.loads(_HEALTH.model_dump_json()),
    json.loads(_RECEIPT.model_dump_json()),
]
_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _read_or_refused(parse: Callable[[bytes], object], data: bytes) -> None:
    try:
        parse(data)
    except ValueError as error:
        assert str(error)  # says what is wrong


@pytest.mark.parametrize("document", _PLANT_MESSAGES, ids=["event-change", "health", "receipt"])
def test_a_mutated_plant_message_is_read_or_refused_by_name(document: dict[str, Any]) -> None:
    @_SETTINGS
    @given(data=_mutated(document))
    def check(data: bytes) -> None:
        _read_or_refused(parse_plant_message, data)

    check()


@_SETTINGS
@given(data=_mutated(json.loads(_REMARK.model_dump_json())))
def test_a_mutated_supervisor_remark_is_read_or_refused_by_name(data: bytes) -> None:
    _read_or_refused(parse_hub_remark, data)


@_SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_are_refused_by_name_on_both_sides(data: bytes) -> None:
    _read_or_refused(parse_plant_message, data)
    _read_or_refused(parse_hub_remark, data)


@_SETTINGS
@given(value=_ANY_JSON, path=st.sampled_from([None, "data.nh3", "values.0", "a"]), raw=st.binary(max_size=40))
def test_any_sensor_payload_is_a_finite_number_or_refused_by_name(
    value: Any, path: str | None, raw: bytes
) -> None:
    for payload in (json.dumps(value).encode(), raw):
        try:
            number = parse_payload(payload, path)
        except ValueError as error:
            assert str(error)
        else:
            assert math.isfinite(number)
