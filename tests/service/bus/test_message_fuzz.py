"""Any bytes a plant or the hub puts on the bus are read or refused with a ``ValueError``, never another exception.

A consumer that met anything else would stop on one bad message (the hub's for every plant).
Hypothesis mangles real messages of every kind (values replaced by any JSON, edge values among
them, fields dropped, fields added, the text cut short) and tries plain random bytes; the parsers
must give a message or a ``ValueError`` (pydantic's ``ValidationError`` is one) naming what is wrong.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anjian.cameras.health import CameraState
from anjian.pipeline.sensors.health import SensorState
from anjian.pipeline.sensors.mqtt_source import parse_payload
from anjian.service.bus import messages
from tests.factories import make_event
from tests.service.conftest import FakeClock
from tests.service.hub.conftest import PlantRecorder
from tests.support.mutation import any_value, mangled

_NOW = 1_800_000_000.0
_EDGES = st.sampled_from([1e15, -1e15, 1e308, -62_135_596_801.0, 2**64, -1, 0, "", "x" * 300, "9" * 400])
"""Values at the edges of what a field holds: times no date can show, ints past 64 bits, long text."""
_ANY_JSON = any_value(_EDGES)


def _event_change() -> dict[str, Any]:
    """A real plant's message announcing a raised incident, with its snapshot, as JSON."""
    with tempfile.TemporaryDirectory(prefix="anjian-msg-fuzz-") as folder:
        recorder = PlantRecorder("lab-3", Path(folder) / "plant.db", FakeClock())
        try:
            change = recorder.raise_event(make_event(id="evt-1", snapshot_jpeg=b"\xff\xd8jpeg"))
        finally:
            recorder.store.close()
    return dict(json.loads(change.model_dump_json()))


def _health() -> dict[str, Any]:
    camera = messages.CameraReport(
        camera_id="cam-1", state=CameraState.ONLINE, since=_NOW, last_frame_at=_NOW
    )
    sensor = messages.SensorReport(
        sensor_id="nh3-1", workshop_id="w", quantity="ammonia", source="http", state=SensorState.OK
    )
    report = messages.HealthReport(plant_id="lab-3", sent_at=_NOW, cameras=[camera], sensors=[sensor])
    return dict(json.loads(report.model_dump_json()))


_RECEIPT = messages.RemarkReceipt(
    plant_id="lab-3", event_id="e-1", remark_id="0" * 32, outcome="recorded", sent_at=_NOW
)
_REMARK = messages.SupervisorRemark(
    id="0" * 32, plant_id="lab-3", event_id="e-1", actor="bureau", note="n", at=_NOW
)
_PLANT_MESSAGES = [_event_change(), _health(), json.loads(_RECEIPT.model_dump_json())]
_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def _mangled_bytes(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    """``document`` mangled, as JSON bytes, maybe cut short."""
    data = json.dumps(draw(mangled(document, _ANY_JSON))).encode()
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


def _read_or_refused(parse: Callable[[bytes], object], data: bytes) -> None:
    try:
        parse(data)
    except ValueError as error:
        assert str(error)  # says what is wrong


@pytest.mark.parametrize("document", _PLANT_MESSAGES, ids=["event-change", "health", "receipt"])
def test_a_mangled_plant_message_is_read_or_refused_by_name(document: dict[str, Any]) -> None:
    @_SETTINGS
    @given(data=_mangled_bytes(document))
    def check(data: bytes) -> None:
        _read_or_refused(messages.parse_plant_message, data)

    check()


@_SETTINGS
@given(data=_mangled_bytes(json.loads(_REMARK.model_dump_json())))
def test_a_mangled_supervisor_remark_is_read_or_refused_by_name(data: bytes) -> None:
    _read_or_refused(messages.parse_hub_remark, data)


@_SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_are_refused_by_name_on_both_sides(data: bytes) -> None:
    _read_or_refused(messages.parse_plant_message, data)
    _read_or_refused(messages.parse_hub_remark, data)


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
