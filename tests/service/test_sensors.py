"""Sensors in the one alert stream, end to end: a real Mosquitto broker and a real pymodbus server feed the
service; incidents in every colour and the sensor faults are raised, updated and ended, stored with the
linked camera's snapshot, announced by webhook, and the trend API shows the readings."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from paho.mqtt import publish

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.live import LiveView
from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from anjian.service.config import AnjianConfig
from anjian.service.tokens import Role
from tests.service.conftest import bearer, make_config
from tests.support.receiver import Receiver
from tests.support.sensors import ModbusTestServer, MosquittoBroker, mosquitto_available
from tests.support.threads import in_background
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not mosquitto_available(), reason="Debian's mosquitto is not installed"),
]

_FAST = {"initial_delay_s": 0.1, "max_delay_s": 0.5, "probe_interval_s": 0}
_WAIT_S = 30.0


def _site(tmp_path: Path, broker: MosquittoBroker, plc: ModbusTestServer, hook_url: str) -> AnjianConfig:
    sensors: list[dict[str, Any]] = [
        {
            "id": "nh3-1",
            "name": "Ammonia, engine room",
            "quantity": "ammonia",
            "unit": "ppm",
            "source": {"kind": "mqtt", "broker": "plant", "topic": "plant/nh3/1", "json_path": "data.nh3"},
            "thresholds": {
                "blue": 10,
                "yellow": 25,
                "orange": 50,
                "red": 150,
                "hysteresis": 2,
                "min_duration_s": 0,
                "clear_after_s": 0.5,
            },
            "faults": {"stale_after_s": 600},
            "camera_ids": ["cam-1"],
            "update_interval_s": 1,
        },
        {
            "id": "level-1",
            "quantity": "liquid level",
            "unit": "%",
            "source": {"kind": "modbus", "device": "plc", "address": 10, "scale": 0.1},
            "faults": {
                "stale_after_s": 1.5,
                "flatline_after_s": 2,
                "min": 0,
                "max": 100,
                "clear_after_s": 0.3,
            },
        },
        {
            "id": "p-1",
            "quantity": "pressure",
            "unit": "MPa",
            "source": {"kind": "http"},
            "thresholds": {"red": 1.6, "min_duration_s": 0, "clear_after_s": 0},
        },
    ]
    config = make_config(tmp_path / "data", camera_ids=("cam-1",))
    data = config.model_dump(mode="python")
    data["site"]["workshops"][0]["sensors"] = sensors
    data["sensor_sources"] = {
        "mqtt": [{"id": "plant", "url": broker.url, "reconnect": _FAST}],
        "modbus": [
            {"id": "plc", "host": "127.0.0.1", "port": plc.port, "poll_interval_s": 0.1, "reconnect": _FAST}
        ],
    }
    data["webhooks"] = [{"url": hook_url, "behaviours": ["sensor_threshold", "sensor_fault"]}]
    return AnjianConfig.model_validate(data)


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(user="gateway", password="gw-secret-1") as running:
        yield running


@pytest.fixture
def plc() -> Iterator[ModbusTestServer]:
    with ModbusTestServer() as server:
        server.set_value("holding", 10, 500)  # 50.0 %
        yield server


@pytest.fixture
def live() -> Iterator[LiveView]:
    """The live view of cam-1, fed 5 frames a second as the camera pipeline feeds it."""
    view = LiveView()
    stop = threading.Event()

    def feed() -> None:
        index = 0
        while True:
            image = np.zeros((240, 320, 3), np.uint8)
            image[60:180, 80:240] = (0, 128, (index * 7) % 255)
            view.update(
                Frame("cam-1", image, captured_at=time.time(), pts_s=index / 5, index=index),
                Detections.empty(),
            )
            index += 1
            if stop.wait(0.2):
                return

    with in_background(feed, stop=stop.set):
        yield view


class Site:
    """The running service, with helpers to read its events."""

    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def events(self, behaviour: str) -> list[dict[str, Any]]:
        response = self.client.get("/events", params={"behaviour": behaviour}, headers=self.headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def kinds(self, behaviour: str) -> dict[str, dict[str, Any]]:
        return {e["sensor"]["kind"]: e for e in self.events(behaviour) if e["sensor"] is not None}


def test_sensor_incidents_in_every_colour_and_faults_are_raised_updated_and_ended_in_the_alert_stream(
    tmp_path: Path, broker: MosquittoBroker, plc: ModbusTestServer, receiver: Receiver, live: LiveView
) -> None:
    config = _site(tmp_path, broker, plc, receiver.url)
    parts = build_service_parts(config, live_view=live)
    auth = {"username": "gateway", "password": "gw-secret-1"}

    def nh3(value: float) -> None:
        payload = json.dumps({"data": {"nh3": value}})
        publish.single("plant/nh3/1", payload, qos=1, hostname="127.0.0.1", port=broker.port, auth=auth)

    parts.start()  # who builds the parts starts them (create_app starts only the parts it builds)
    try:
        _exercise(config, parts, live, broker, plc, receiver, nh3)
    finally:
        parts.close()


def _exercise(config, parts, live, broker, plc, receiver, nh3) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(config, parts)) as client:
        site = Site(client, bearer(parts.store, Role.VIEWER))
        sensors = parts.sensors
        assert sensors is not None
        assert wait_for(lambda: all(getattr(s, "is_connected", True) for s in sensors.sources), _WAIT_S)

        # MQTT: blue, then yellow, orange, red: one incident whose colour rises; then recovery ends it.
        seen: list[str] = []
        for value, colour in ((12.0, "blue"), (30.0, "yellow"), (60.0, "orange"), (200.0, "red")):
            nh3(value)
            assert wait_for(
                lambda c=colour: [e["severity"] for e in site.events("sensor_threshold")] == [c], _WAIT_S
            ), site.events("sensor_threshold")
            seen.append(colour)
        nh3(3.0)
        assert wait_for(lambda: site.events("sensor_threshold")[0]["ended_at"] is not None, _WAIT_S)
        (alarm,) = site.events("sensor_threshold")
        assert (alarm["camera_id"], alarm["workshop_id"], alarm["detected_severity"]) == (
            "nh3-1",
            "polishing-1",
            "red",
        )
        assert alarm["sensor"] == {
            "sensor_id": "nh3-1",
            "quantity": "ammonia",
            "unit": "ppm",
            "kind": "high",
            "value": 3.0,
            "peak": 200.0,
            "threshold": 150.0,
            "camera_ids": ["cam-1"],
        }
        snapshot = client.get(alarm["snapshot_url"], headers=site.headers)
        assert snapshot.status_code == 200 and snapshot.content[:2] == b"\xff\xd8"
        picture = cv2.imdecode(np.frombuffer(snapshot.content, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape[:2] == (240, 320), "the linked camera's live frame"
        assert wait_for(lambda: site.events("sensor_threshold")[0]["clip_url"] is not None, _WAIT_S)
        clip = client.get(site.events("sensor_threshold")[0]["clip_url"], headers=site.headers)
        assert clip.status_code == 200 and clip.content[4:8] == b"ftyp", (
            "the camera's clip around the crossing"
        )

        # Modbus: a constant level is a flatline; moving it ends the fault; 65535 (out of range) is a fault.
        assert wait_for(lambda: "flatline" in site.kinds("sensor_fault"), _WAIT_S)
        for step in range(1, 40):
            plc.set_value("holding", 10, 500 + step * 5)
            time.sleep(0.05)
        assert wait_for(lambda: site.kinds("sensor_fault")["flatline"]["ended_at"] is not None, _WAIT_S)
        plc.set_value("holding", 10, 65535)
        assert wait_for(lambda: "out_of_range" in site.kinds("sensor_fault"), _WAIT_S)
        out = site.kinds("sensor_fault")["out_of_range"]
        assert out["sensor"]["value"] == pytest.approx(6553.5) and out["sensor"]["threshold"] == 100
        plc.set_value("holding", 10, 400)
        assert wait_for(lambda: site.kinds("sensor_fault")["out_of_range"]["ended_at"] is not None, _WAIT_S)

        # Modbus: the device goes away: stale; it comes back: the stale fault ends.
        plc.stop()
        assert wait_for(lambda: "stale" in site.kinds("sensor_fault"), _WAIT_S)
        plc.start()
        assert wait_for(lambda: site.kinds("sensor_fault")["stale"]["ended_at"] is not None, _WAIT_S)

        # HTTP push: a gateway's readings raise and end an incident; an unknown sensor is refused by index.
        pipeline = bearer(parts.store, Role.PIPELINE)
        now = time.time()
        pushed = client.post(
            "/ingest/readings",
            json={
                "readings": [
                    {"sensor_id": "p-1", "value": 1.8, "at": now},
                    {"sensor_id": "nope", "value": 1.0},
                ]
            },
            headers=pipeline,
        )
        assert pushed.status_code == 200, pushed.text
        assert pushed.json() == {
            "accepted": 1,
            "refused": [{"index": 1, "sensor_id": "nope", "reason": "the site has no such sensor"}],
        }
        assert wait_for(
            lambda: (
                [e["severity"] for e in site.events("sensor_threshold") if e["camera_id"] == "p-1"] == ["red"]
            ),
            _WAIT_S,
        )
        client.post(
            "/ingest/readings",
            json={"readings": [{"sensor_id": "p-1", "value": 1.0, "at": now + 1}]},
            headers=pipeline,
        )
        assert wait_for(
            lambda: all(
                e["ended_at"] is not None for e in site.events("sensor_threshold") if e["camera_id"] == "p-1"
            ),
            _WAIT_S,
        )
        bad = client.post(
            "/ingest/readings", json={"readings": [{"sensor_id": "p-1", "value": "high"}]}, headers=pipeline
        )
        assert bad.status_code == 422

        # The trend API has the readings behind the alarm.
        trend = client.get("/sensors/nh3-1/readings", headers=site.headers)
        assert trend.status_code == 200, trend.text
        assert [p["value"] for p in trend.json()["points"]] == [12.0, 30.0, 60.0, 200.0, 3.0]
        assert trend.json()["sensor"]["limits"] == {
            "blue": 10.0,
            "yellow": 25.0,
            "orange": 50.0,
            "red": 150.0,
        }
        assert client.get("/sensors/nh3-9/readings", headers=site.headers).status_code == 404

        # Webhooks carried the sensor's alarm, its reading included.
        assert wait_for(
            lambda: any(json.loads(r.body)["event"]["sensor"] for r in receiver.requests if r.body), _WAIT_S
        )
        announced = [json.loads(r.body) for r in receiver.requests]
        created = [
            a for a in announced if a["kind"] == "event.created" and a["event"]["camera_id"] == "nh3-1"
        ]
        assert created and created[0]["event"]["sensor"]["kind"] == "high"
        assert sensors.stats().bad_input.get("unknown_sensor") == 1
        metrics = client.get("/metrics", headers=site.headers).text
        assert 'anjian_sensor_bad_input_total{reason="unknown_sensor"} 1.0' in metrics
        assert 'anjian_sensor_source_up{source="mqtt:plant"} 1.0' in metrics
        assert 'anjian_sensor_source_up{source="modbus:plc"} 1.0' in metrics
        assert seen == ["blue", "yellow", "orange", "red"]
