"""Sensors in the site YAML: per workshop, their connections at the top, every reference checked at load."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from anjian.pipeline.sensors.config import ModbusSensorSource, MqttSensorSource
from anjian.service.config import load_config
from anjian.service.errors import ConfigError

SITE: dict[str, Any] = {
    "site": {
        "id": "plant-1",
        "workshops": [
            {
                "id": "freezing-1",
                "cameras": [{"id": "cam-1", "url": "rtsp://10.0.0.5/stream1"}],
                "sensors": [
                    {
                        "id": "nh3-1",
                        "quantity": "ammonia",
                        "unit": "ppm",
                        "source": {
                            "kind": "mqtt",
                            "broker": "plant",
                            "topic": "plant/nh3/1",
                            "json_path": "v",
                        },
                        "thresholds": {"yellow": 25, "orange": 50, "red": 150, "hysteresis": 2},
                        "camera_ids": ["cam-1"],
                    },
                    {
                        "id": "level-1",
                        "quantity": "level",
                        "unit": "%",
                        "source": {"kind": "modbus", "device": "plc-1", "address": 100, "scale": 0.1},
                        "thresholds": {"direction": "low", "yellow": 30, "red": 10},
                    },
                    {"id": "p-1", "quantity": "pressure", "unit": "MPa", "source": {"kind": "http"}},
                ],
            }
        ],
    },
    "sensor_sources": {
        "mqtt": [{"id": "plant", "url": "mqtt://anjian:brokerpass@10.0.0.2:1883"}],
        "modbus": [{"id": "plc-1", "host": "10.0.0.3"}],
    },
}


def _load(tmp_path: Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def test_sensors_load_per_workshop_with_their_sources(tmp_path: Path) -> None:
    config = _load(tmp_path, SITE)
    sensors = {sensor.id: (workshop.id, sensor) for workshop, sensor in config.sensors()}
    assert sorted(sensors) == ["level-1", "nh3-1", "p-1"]
    assert isinstance(sensors["nh3-1"][1].source, MqttSensorSource)
    assert isinstance(sensors["level-1"][1].source, ModbusSensorSource)
    assert sensors["level-1"][1].source.register_type == "holding"
    assert config.sensor_sources.mqtt[0].display_url == "mqtt://***:***@10.0.0.2:1883"
    assert "brokerpass" not in repr(config.sensor_sources)


def _with(change: str) -> dict[str, Any]:
    data = copy.deepcopy(SITE)
    sensors = data["site"]["workshops"][0]["sensors"]
    if change == "broker":
        sensors[0]["source"]["broker"] = "nowhere"
    elif change == "device":
        sensors[1]["source"]["device"] = "plc-9"
    elif change == "camera":
        sensors[0]["camera_ids"] = ["cam-404"]
    elif change == "id-of-camera":
        sensors[2]["id"] = "cam-1"
    elif change == "wildcard":
        sensors[0]["source"]["topic"] = "plant/+/1"
    elif change == "typo":
        sensors[0]["treshold"] = {}
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("broker", "sensor 'nh3-1': MQTT broker 'nowhere' is not in sensor_sources.mqtt"),
        ("device", "sensor 'level-1': Modbus device 'plc-9' is not in sensor_sources.modbus"),
        ("camera", r"sensor 'nh3-1': camera\(s\) \['cam-404'\] are not cameras of the site"),
        ("id-of-camera", "sensor 'cam-1': the id is taken by another sensor or a camera"),
        ("wildcard", "a sensor reads one exact topic"),
        ("typo", r"sensors\.0\.treshold: Extra inputs are not permitted"),
    ],
    ids=["broker", "device", "camera", "id-of-camera", "wildcard", "typo"],
)
def test_a_sensor_that_names_what_the_site_lacks_is_refused_with_why(
    tmp_path: Path, change: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        _load(tmp_path, _with(change))
    assert "brokerpass" not in str(error.value)
