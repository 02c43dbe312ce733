"""The tests' MQTT broker and Modbus device are the sensor benchmark's: real Mosquitto, real pymodbus."""

from __future__ import annotations

from anjian.service.benchmarks.modbus_server import ModbusTestServer, words_of
from anjian.service.benchmarks.mosquitto import MosquittoBroker, MosquittoError, mosquitto_available

__all__ = ["ModbusTestServer", "MosquittoBroker", "MosquittoError", "mosquitto_available", "words_of"]
