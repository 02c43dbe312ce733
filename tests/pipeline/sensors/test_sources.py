"""Sensor sources against a real Mosquitto broker and a real pymodbus server: readings, bad input, reconnects."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from paho.mqtt import publish
from pydantic import ValidationError

from anjian.pipeline.sensors.config import MqttBrokerConfig, SensorSourcesConfig
from anjian.pipeline.sensors.health import SensorState
from anjian.pipeline.sensors.modbus_source import decode_registers
from anjian.pipeline.sensors.mqtt_source import parse_payload
from anjian.pipeline.sensors.reading import Reading
from anjian.pipeline.sensors.runner import SensorAssignment, SensorRunner
from anjian.pipeline.sink import ListSink
from tests.pipeline.sensors.test_rules import make_sensor
from tests.support.sensors import ModbusTestServer, MosquittoBroker, mosquitto_available
from tests.support.waiting import wait_for

needs_mosquitto = pytest.mark.skipif(not mosquitto_available(), reason="Debian's mosquitto is not installed")
_FAST_RECONNECT = {"initial_delay_s": 0.1, "max_delay_s": 0.5, "probe_interval_s": 0}


def fast_modbus_device(port: int) -> dict[str, Any]:
    """A device ``plc`` on loopback polled every 0.1 s, reconnecting within half a second."""
    return {
        "id": "plc",
        "host": "127.0.0.1",
        "port": port,
        "poll_interval_s": 0.1,
        "reconnect": _FAST_RECONNECT,
    }


class Readings:
    """A ReadingSink that keeps what the runner stored."""

    def __init__(self) -> None:
        self.items: list[Reading] = []
        self._lock = threading.Lock()

    def add(self, readings: list[Reading]) -> None:
        with self._lock:
            self.items += readings

    def values(self, sensor_id: str) -> list[float]:
        with self._lock:
            return [r.value for r in self.items if r.sensor_id == sensor_id]


@pytest.mark.parametrize(
    ("payload", "path", "value"),
    [
        (b"12.5", None, 12.5),
        (b' {"data": {"nh3": 31}} ', "data.nh3", 31.0),
        (b'{"values": [1, "2.5"]}', "values.1", 2.5),
    ],
    ids=["plain", "json", "json-list-string"],
)
def test_payloads_give_their_number(payload: bytes, path: str | None, value: float) -> None:
    assert parse_payload(payload, path) == value


@pytest.mark.parametrize(
    ("payload", "path", "message"),
    [
        (b"abc", None, "expected a number, got 'abc'"),
        (b"nan", None, "expected a finite number"),
        (b'{"data": true}', "data", "expected a number, got bool"),
        (b'{"data": {}}', "data.nh3", "payload has no 'data.nh3'"),
        (b"{oops", "data", "payload is not JSON"),
        (b"\xff\xfe", None, "payload is not UTF-8"),
    ],
    ids=["text", "nan", "bool", "missing", "broken-json", "binary"],
)
def test_bad_payloads_say_what_is_wrong(payload: bytes, path: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_payload(payload, path)


@pytest.mark.parametrize(
    ("words", "data_type", "order", "value"),
    [
        ([0xFFFF], "int16", "big", -1.0),
        ([0xFFFF], "uint16", "big", 65535.0),
        ([0x0001, 0x0000], "uint32", "big", 65536.0),
        ([0x0000, 0x0001], "uint32", "little", 65536.0),
        ([0x4148, 0x0000], "float32", "big", 12.5),
    ],
    ids=["int16", "uint16", "uint32", "uint32-little", "float32"],
)
def test_registers_decode_by_type_and_word_order(
    words: list[int], data_type: str, order: str, value: float
) -> None:
    assert decode_registers(words, data_type, order) == value


def test_an_mqtt_url_that_is_not_one_is_refused_with_its_password_masked() -> None:
    with pytest.raises(ValidationError, match=r"expected mqtt://") as error:
        MqttBrokerConfig.model_validate({"id": "b", "url": "http://user:hunter22@host"})
    message = error.value.errors()[0]["msg"]  # what the site config's loader prints (never the input)
    assert "http://***:***@host" in message and "hunter22" not in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "mqtt://broker:188300",
            "broker:188300: the port is out of range",
        ),  # was read as port 18830 and a path "0"
        ("mqtt://plant broker", "plant broker: the host holds a space"),
        ("mqtt://[fd00::5", "lacks its closing ]"),
    ],
)
def test_an_mqtt_url_a_client_would_misread_is_refused_by_name(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        MqttBrokerConfig.model_validate({"id": "b", "url": url})


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    if not mosquitto_available():
        pytest.skip("Debian's mosquitto is not installed")
    with MosquittoBroker(user="gateway", password="s3cret-pw") as running:
        yield running


def _runner(
    sensors: list[dict[str, Any]], sources: dict[str, Any], sink: ListSink, readings: Readings
) -> SensorRunner:
    assignments = [SensorAssignment("freezing-1", make_sensor(**sensor)) for sensor in sensors]
    return SensorRunner(
        "plant", assignments, SensorSourcesConfig.model_validate(sources), sink, readings=readings, tick_s=0.2
    )


@needs_mosquitto
def test_mqtt_readings_arrive_bad_input_is_counted_and_the_client_reconnects_after_a_broker_restart(
    broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    sources = {
        "mqtt": [{"id": "plant", "url": broker.url, "subscribe": ["plant/#"], "reconnect": _FAST_RECONNECT}]
    }
    sensors = [
        {"id": "nh3-1", "source": {"kind": "mqtt", "broker": "plant", "topic": "plant/nh3/1"}},
        {
            "id": "dust-1",
            "source": {"kind": "mqtt", "broker": "plant", "topic": "plant/dust/1", "json_path": "v"},
        },
    ]
    sink, readings = ListSink(), Readings()
    runner = _runner(sensors, sources, sink, readings)
    auth = {"username": "gateway", "password": "s3cret-pw"}

    def send(topic: str, payload: str) -> None:
        publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=broker.port, auth=auth)

    caplog.set_level(logging.WARNING)
    runner.start()
    try:
        source = runner.sources[0]
        assert wait_for(lambda: source.is_connected, 20)  # type: ignore[union-attr]
        send("plant/nh3/1", "12.5")
        send("plant/dust/1", '{"v": 3.25}')
        for _ in range(3):
            send("plant/nh3/1", "not a number")
            send("plant/unknown/7", "1")
        assert wait_for(
            lambda: readings.values("nh3-1") == [12.5] and readings.values("dust-1") == [3.25], 20
        )
        assert wait_for(lambda: runner.stats().bad_input == {"not_numeric": 3, "unknown_topic": 3}, 20)
        assert (
            sum("not_numeric" in r.getMessage() for r in caplog.records) == 1
        )  # logged once, counted thrice

        assert [(h.source, h.state, h.last_value) for h in runner.health()] == [
            ("mqtt:plant", SensorState.OK, 12.5),
            ("mqtt:plant", SensorState.OK, 3.25),
        ]
        broker.stop()
        assert wait_for(lambda: not source.is_connected, 20)  # type: ignore[union-attr]
        assert {h.state for h in runner.health()} == {SensorState.OFFLINE}
        broker.start()
        assert wait_for(lambda: source.is_connected, 30)  # type: ignore[union-attr]
        send("plant/nh3/1", "13")
        assert wait_for(lambda: 13.0 in readings.values("nh3-1"), 20)
    finally:
        runner.stop()
    assert "s3cret-pw" not in caplog.text


def test_modbus_registers_are_read_scaled_a_failing_register_is_counted_and_the_client_reconnects() -> None:
    with ModbusTestServer() as plc:
        device = fast_modbus_device(plc.port)
        sensors = [
            {
                "id": "level-1",
                "source": {"kind": "modbus", "device": "plc", "address": 10, "scale": 0.1, "offset": -5},
            },
            {
                "id": "temp-1",
                "source": {
                    "kind": "modbus",
                    "device": "plc",
                    "address": 20,
                    "register_type": "input",
                    "data_type": "float32",
                },
            },
            {"id": "p-1", "source": {"kind": "modbus", "device": "plc", "address": 30}},
        ]
        plc.set_value("holding", 10, 655)
        plc.set_value("input", 20, -18.5, "float32")
        plc.fail("holding", 30)
        sink, readings = ListSink(), Readings()
        runner = _runner(sensors, {"modbus": [device]}, sink, readings)
        runner.start()
        try:
            assert wait_for(
                lambda: 60.5 in readings.values("level-1") and -18.5 in readings.values("temp-1"), 20
            )
            assert wait_for(lambda: runner.stats().bad_input.get("read_error", 0) >= 3, 20)
            assert readings.values("p-1") == []
            plc.stop()
            plc.set_value("holding", 10, 700)
            plc.start()
            assert wait_for(lambda: 65.0 in readings.values("level-1"), 30)
        finally:
            runner.stop()
