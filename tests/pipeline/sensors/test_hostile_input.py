"""Sensor input that once stopped a reader or blinded a sensor: each is now refused by name, and the watch goes on.

Real mosquitto and a real pymodbus server where a source is involved; the runner's clock is a stub
where time itself is the input.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt import publish
from pydantic import ValidationError

from anjian.pipeline.event import Behaviour
from anjian.pipeline.incidents import UpdateKind
from anjian.pipeline.sensors.config import (
    ModbusSensorSource,
    MqttBrokerConfig,
    MqttSensorSource,
    SensorSourcesConfig,
    topic_filter_problem,
)
from anjian.pipeline.sensors.mqtt_source import parse_payload
from anjian.pipeline.sensors.reading import MAX_AHEAD_S, Reading, reading_problem
from anjian.pipeline.sensors.runner import SensorAssignment, SensorRunner
from anjian.pipeline.sink import ListSink
from tests.pipeline.sensors.test_rules import make_rules, make_sensor
from tests.pipeline.sensors.test_sources import Readings, fast_modbus_device
from tests.support.sensors import ModbusTestServer, MosquittoBroker, mosquitto_available, words_of
from tests.support.waiting import wait_for

T0 = 1_800_000_000.0
_FAST_RECONNECT = {"initial_delay_s": 0.1, "max_delay_s": 0.5, "probe_interval_s": 0}


def _runner_at_t0() -> SensorRunner:
    """A runner of ``make_sensor``'s sensor, reading no source, whose clock stands at ``T0``."""
    return SensorRunner(
        "plant",
        [SensorAssignment("freezing-1", make_sensor())],
        SensorSourcesConfig(),
        ListSink(),
        clock=lambda: T0,
    )


@pytest.mark.parametrize(
    ("payload", "path", "message"),
    [
        (b'{"v": ' + b"9" * 400 + b"}", "v", "expected a number"),  # OverflowError in float()
        (b"[" * 100_000 + b"]" * 100_000, "0", "nests too deep"),  # RecursionError in json.loads
        (b'{"v": ' + b"1" * 5000 + b"}", "v", "number too long to read"),  # int digit cap in json.loads
        (b"[1]", "0\u00b2", "has no"),  # a superscript two is a digit to isdigit(), not to int()
    ],
    ids=["400-digit-int", "deep-nesting", "5000-digit-int", "superscript-index"],
)
def test_payloads_that_raised_past_the_reader_are_refused_as_bad_input(
    payload: bytes, path: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_payload(payload, path)


def test_a_refused_payload_is_quoted_short_in_its_message() -> None:
    with pytest.raises(ValueError, match="expected a finite number") as refused:
        parse_payload(b"1" * 5000, None)  # a float of 5000 digits is inf
    assert len(str(refused.value)) < 120


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
_PAYLOADS = st.one_of(
    st.binary(max_size=120),
    st.text(max_size=40).map(str.encode),
    _JSON_VALUES.map(lambda value: json.dumps(value).encode()),
)
_PATHS = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.lists(st.sampled_from(["v", "0", "1", "data", "-1", "", "\u00b2"]), min_size=1, max_size=3).map(
        ".".join
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=_PAYLOADS, path=_PATHS)
def test_any_payload_gives_a_finite_number_or_a_short_named_refusal(payload: bytes, path: str | None) -> None:
    try:
        value = parse_payload(payload, path)
    except ValueError as refused:  # quotes at most 60 characters of the payload (10 each when escaped)
        assert 0 < len(str(refused)) < 1000
    else:
        assert isinstance(value, float)
        assert math.isfinite(value)


@pytest.mark.parametrize(
    ("value", "at", "reason"),
    [
        (float("nan"), T0, "not_numeric"),
        (float("inf"), T0, "not_numeric"),
        (-1.7e308, T0, "not_numeric"),
        (1.0, T0 + 86_400, "future"),
        (1.0, 946_684_800.0, "past"),
    ],
    ids=["nan", "inf", "huge", "a-day-ahead", "a-gateway-clock-reset-to-2000"],
)
def test_a_reading_that_would_blind_its_sensor_is_refused_by_name(
    value: float, at: float, reason: str
) -> None:
    problem = reading_problem(Reading("nh3-1", value, at=at, received_at=T0))
    assert problem is not None and problem[0] == reason
    assert (
        reading_problem(Reading("nh3-1", 1.0, at=T0 + MAX_AHEAD_S, received_at=T0)) is None
    )  # clocks a little apart

    runner = _runner_at_t0()
    assert not runner.offer(Reading("nh3-1", value, at=at, received_at=T0))
    assert runner.stats().bad_input == {reason: 1}


def test_a_clock_that_goes_back_restarts_the_sensors_watch_instead_of_blinding_it() -> None:
    """An hour's step back: readings go on being taken, the open alarm ends at the last reading, a new one opens."""
    now = [T0]
    sink = ListSink()
    runner = SensorRunner(
        "plant",
        [SensorAssignment("freezing-1", make_sensor(faults={"stale_after_s": 30}))],
        SensorSourcesConfig(),
        sink,
        clock=lambda: now[0],
        tick_s=0.05,
    )

    def reading(value: float) -> Reading:  # stamped by this machine's clock, as MQTT and Modbus readings are
        return Reading("nh3-1", value, at=now[0], received_at=now[0])

    runner.start()
    try:
        for _ in range(7):  # 200 ppm held 6 s: red
            runner.offer(reading(200.0))
            now[0] += 1
        assert wait_for(lambda: runner.open_kinds("nh3-1") == ["threshold"], 10)
        last = now[0] - 1
        now[0] -= 3600  # NTP steps the clock back an hour
        for _ in range(7):
            runner.offer(reading(200.0))
            now[0] += 1
        assert wait_for(lambda: runner.stats().readings == 14, 10)  # none dropped as out of order
        assert "out_of_order" not in runner.stats().bad_input
        assert wait_for(lambda: runner.open_kinds("nh3-1") == ["threshold"], 10)
        thresholds = [e for e in sink.events if e.behaviour is Behaviour.SENSOR_THRESHOLD]
        assert len({e.id for e in thresholds}) == 2  # the first ended, a second opened on the new timeline
        first = [e for e in thresholds if e.id == thresholds[0].id]
        assert first[-1].ended_at == last

        now[0] += 60  # silence on the new timeline: stale again, as it should be
        assert wait_for(lambda: "stale" in runner.open_kinds("nh3-1"), 10)
    finally:
        runner.stop()


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    if not mosquitto_available():
        pytest.skip("Debian's mosquitto is not installed")
    with MosquittoBroker() as running:
        yield running


def test_the_mqtt_reader_survives_hostile_payloads_and_ignores_retained_values(
    broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A retained value of unknown age is not a reading; payloads that once killed the reader thread are counted."""
    sources = {"mqtt": [{"id": "plant", "url": broker.url, "reconnect": _FAST_RECONNECT}]}
    sensor = {
        "id": "dust-1",
        "source": {"kind": "mqtt", "broker": "plant", "topic": "plant/dust/1", "json_path": "v"},
    }

    def send(payload: bytes, *, retain: bool = False) -> None:
        publish.single("plant/dust/1", payload, qos=1, retain=retain, hostname="127.0.0.1", port=broker.port)

    send(b'{"v": 200}', retain=True)  # left by a sensor that has since died
    readings = Readings()
    runner = SensorRunner(
        "plant",
        [SensorAssignment("freezing-1", make_sensor(**sensor))],
        SensorSourcesConfig.model_validate(sources),
        ListSink(),
        readings=readings,
        tick_s=0.2,
    )
    caplog.set_level(logging.WARNING)
    runner.start()
    try:
        source = runner.sources[0]
        assert wait_for(lambda: source.is_connected, 20)
        assert wait_for(lambda: runner.stats().bad_input.get("retained") == 1, 20)
        send(b'{"v": ' + b"9" * 400 + b"}")
        send(b"[" * 100_000 + b"]" * 100_000)
        send(b'{"v": 3.5}')
        assert wait_for(lambda: readings.values("dust-1") == [3.5], 20)  # the reader lived through both
        assert runner.stats().bad_input == {"retained": 1, "not_numeric": 2}
        assert source.is_connected
    finally:
        runner.stop()


def test_modbus_nan_is_refused_and_a_device_that_answers_nothing_is_not_up() -> None:
    """A transmitter's NaN fault code is no reading; a live connection whose every read fails is not 'connected'."""
    with ModbusTestServer() as plc:
        device = fast_modbus_device(plc.port)
        sensors = [
            {
                "id": "temp-1",
                "source": {"kind": "modbus", "device": "plc", "address": 20, "data_type": "float32"},
            },
            {"id": "p-1", "source": {"kind": "modbus", "device": "plc", "address": 30}},
        ]
        plc.set_words("holding", 20, [0x7FC0, 0x0000])  # float32 NaN
        plc.set_value("holding", 30, 7)
        readings = Readings()
        runner = SensorRunner(
            "plant",
            [SensorAssignment("freezing-1", make_sensor(**s)) for s in sensors],
            SensorSourcesConfig.model_validate({"modbus": [device]}),
            ListSink(),
            readings=readings,
            tick_s=0.2,
        )
        runner.start()
        try:
            source = runner.sources[0]
            assert wait_for(lambda: 7.0 in readings.values("p-1"), 20)
            assert wait_for(lambda: runner.stats().bad_input.get("not_numeric", 0) >= 2, 20)
            assert readings.values("temp-1") == [] and source.is_connected
            plc.set_words("holding", 20, words_of(-18.5, "float32"))
            assert wait_for(lambda: -18.5 in readings.values("temp-1"), 20)

            plc.fail("holding", 20)
            plc.fail("holding", 30)
            assert wait_for(lambda: not source.is_connected, 20)  # the connection is open; nothing answers
        finally:
            runner.stop()


@pytest.mark.parametrize(
    ("thresholds", "faults", "message"),
    [
        (
            {"red": 150},
            {"max": 100},
            r"thresholds.red \(150\) is above faults.max \(100\): it could never be reached",
        ),
        (
            {"yellow": 25, "red": 150, "hysteresis": 30},
            {"min": 0},
            r"thresholds.yellow \(25\) minus thresholds.hysteresis \(30\) is not above faults.min \(0\)",
        ),
        ({"direction": "low", "red": 5}, {"min": 10}, r"thresholds.red \(5\) is below faults.min \(10\)"),
        (
            {"direction": "low", "red": 18, "hysteresis": 3},
            {"max": 20},
            r"thresholds.red \(18\) plus thresholds.hysteresis \(3\) is not below faults.max \(20\)",
        ),
    ],
    ids=["unreachable-high", "never-lets-go-high", "unreachable-low", "never-lets-go-low"],
)
def test_limits_the_fault_range_makes_useless_are_refused_by_name(
    thresholds: dict[str, object], faults: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        make_sensor(thresholds=thresholds, faults=faults)
    make_sensor(
        thresholds={"yellow": 25, "red": 100, "hysteresis": 3}, faults={"min": 0, "max": 100}
    )  # at the edge: fine


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            {"address": 65535, "data_type": "float32"},
            "a float32 reads two registers, and address 65535 is the last",
        ),
        ({"address": 10, "scale": 0}, "scale 0 makes every reading the offset"),
    ],
    ids=["past-the-last-register", "zero-scale"],
)
def test_a_modbus_source_that_could_never_read_the_device_is_refused(
    source: dict[str, object], problem: str
) -> None:
    """Both passed the config check; the first failed every poll, the second read a constant for good."""
    with pytest.raises(ValidationError, match=problem):
        ModbusSensorSource.model_validate({"device": "plc", **source})
    ModbusSensorSource.model_validate(
        {"device": "plc", "address": 65535, "data_type": "uint16", "scale": -0.1}
    )


@pytest.mark.parametrize("path", ["data..nh3", "", "data.nh3."])
def test_a_json_path_with_an_empty_part_is_refused(path: str) -> None:
    """It matched no payload: every reading of the sensor was refused as bad input."""
    with pytest.raises(ValidationError, match="has an empty part"):
        MqttSensorSource.model_validate({"broker": "b", "topic": "plant/nh3", "json_path": path})
    MqttSensorSource.model_validate({"broker": "b", "topic": "plant/nh3", "json_path": "data.values.0"})


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("plant/a#", "'#' only as the whole last level"),
        ("plant/#/x", "'#' only as the whole last level"),
        ("a/+b", "'+' only as a whole level"),
        ("plant/\x00", "no NUL character"),
        ("", "1 to 512 bytes"),
    ],
)
def test_a_topic_filter_the_broker_would_refuse_is_refused_in_the_config(topic: str, problem: str) -> None:
    """A broker refuses the whole SUBSCRIBE: one bad filter would leave every sensor on it reading nothing."""
    assert topic_filter_problem(topic) == problem
    with pytest.raises(ValidationError, match=re.escape(problem)):
        MqttBrokerConfig.model_validate({"id": "b", "url": "mqtt://127.0.0.1", "subscribe": [topic]})
    for good in ("plant/#", "#", "+/nh3/+", "plant/nh3/1"):
        assert topic_filter_problem(good) is None


def test_a_flood_of_readings_keeps_the_rate_window_bounded_and_the_rate_right() -> None:
    """1,000 readings a second for two minutes: the window keeps about a thousand points, and a steady rise still raises."""
    rules = make_rules(make_sensor(thresholds=None, rate_of_rise={"per_minute": 10, "window_s": 60}))
    opened = []
    for step in range(120_000):
        at = T0 + step / 1000
        opened += [
            u for u in rules.observe(20.0 + (at - T0) * 0.5, at) if u.kind is UpdateKind.OPENED
        ]  # 30 per minute
    assert len(rules._window) <= 1001  # the bound is the point
    assert len(opened) == 1 and opened[0].event.behaviour is Behaviour.SENSOR_RATE_OF_RISE


def test_a_sender_retrying_its_last_reading_is_counted_once() -> None:
    """A gateway retrying a POST stored its last reading twice (history) and fed the rules twice."""
    runner = _runner_at_t0()
    runner.start()
    try:
        for _ in range(2):
            assert runner.offer(Reading("nh3-1", 12.5, at=T0 - 1, received_at=T0))
        assert wait_for(lambda: runner.stats().bad_input == {"repeated": 1}, 10)
        assert runner.stats().readings == 1
    finally:
        runner.stop()
