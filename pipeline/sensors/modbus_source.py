"""Readings polled from one Modbus TCP device: one connection, every sensor's register(s), in turn.

Each poll reads each sensor's holding or input register(s) (two for 32-bit types),
decodes them (``decode_registers``) and hands ``raw * scale + offset`` on as a
``Reading``. A request the device answers with an exception, or that times out, is
counted as a ``read_error`` (logged once per sensor) and the poll goes on; a lost
connection is reopened after ``anjian.cameras.backoff.Backoff``'s delays.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from collections.abc import Callable, Sequence

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from anjian.cameras.backoff import Backoff
from anjian.pipeline.sensors.config import ModbusDeviceConfig, ModbusSensorSource
from anjian.pipeline.sensors.reading import Reading, ReadingConsumer

__all__ = ["ModbusSource", "decode_registers"]

logger = logging.getLogger(__name__)

_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def decode_registers(registers: Sequence[int], data_type: str, word_order: str = "big") -> float:
    """The raw value of one or two 16-bit registers.

    Args:
        registers: Register values, 0..65535 each (one for 16-bit types, two for 32-bit).
        data_type: ``int16``, ``uint16``, ``int32``, ``uint32`` or ``float32``.
        word_order: ``big``: the first register holds the high word; ``little``: the second.

    Returns:
        The decoded number.

    Raises:
        ValueError: Too few registers, or an unknown type.

    Example:
        >>> decode_registers([0x4148, 0x0000], "float32")
        12.5
    """
    if data_type not in _FORMATS:
        raise ValueError(f"unknown data type {data_type!r}; expected one of {sorted(_FORMATS)}")
    count = register_count(data_type)
    if len(registers) < count:
        raise ValueError(f"{data_type} needs {count} register(s), got {len(registers)}")
    words = list(registers[:count])
    if word_order == "little":
        words.reverse()
    return float(struct.unpack(_FORMATS[data_type], struct.pack(f">{count}H", *words))[0])


def register_count(data_type: str) -> int:
    """Registers a value of ``data_type`` spans: 1 or 2."""
    return 1 if data_type in ("int16", "uint16") else 2


class ModbusSource:
    """Polls one device's registers every ``poll_interval_s`` on a background thread.

    Args:
        device: The device's connection settings.
        sensors: ``(sensor id, its Modbus source)`` of every sensor reading from this device.
        consumer: Takes the readings and counts bad input (the ``SensorRunner``).
        clock: Wall clock, epoch seconds.
        rng: Random source of the backoff's jitter.

    Example:
        >>> source = ModbusSource(device, [("level-1", level_source)], runner)
        >>> source.start(); ...; source.stop()
    """

    def __init__(
        self,
        device: ModbusDeviceConfig,
        sensors: Sequence[tuple[str, ModbusSensorSource]],
        consumer: ReadingConsumer,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.device = device
        self._sensors = list(sensors)
        self._consumer = consumer
        self._clock = clock
        self._backoff = Backoff(device.reconnect, rng or random.Random())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = ModbusTcpClient(device.host, port=device.port, timeout=device.timeout_s, retries=0)
        self.polls = 0
        self._is_up = False

    @property
    def is_connected(self) -> bool:
        """True while the connection to the device is open and its last poll answered."""
        return self._is_up

    def start(self) -> None:
        """Poll on a background thread until ``stop``."""
        if self._thread is not None:
            raise RuntimeError(f"Modbus source {self.device.id} was started before")
        self._thread = threading.Thread(target=self._run, name=f"modbus-{self.device.id}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the thread and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._client.close()  # type: ignore[no-untyped-call]
        self._is_up = False

    def poll_once(self) -> bool:
        """Read every sensor's register(s) once; False when the connection is lost (reconnect).

        The device counts as up only when at least one read answered: a wrong unit id, or a
        gateway whose device is gone, answers every request with an error on a live connection.
        """
        answered = False
        for sensor_id, source in self._sensors:
            try:
                value = self._read(source)
            except (ConnectionException, ConnectionError) as exc:  # a reset or broken pipe too
                self._is_up = False
                logger.warning(
                    "Modbus %s (%s:%d): connection lost: %s",
                    self.device.id,
                    self.device.host,
                    self.device.port,
                    exc,
                )
                return False
            except (ModbusException, ValueError, OSError) as exc:
                self._consumer.bad_input(
                    "read_error", sensor_id, f"device {self.device.id} register {source.address}: {exc}"
                )
                continue
            answered = True
            now = self._clock()
            self._consumer.offer(  # a NaN or infinite value (a transmitter's fault code) is refused there
                Reading(sensor_id, value * source.scale + source.offset, at=now, received_at=now)
            )
        self.polls += 1
        self._is_up = answered
        return True

    def _read(self, source: ModbusSensorSource) -> float:
        count = register_count(source.data_type)
        unit = self.device.unit_id
        if source.register_type == "holding":
            response = self._client.read_holding_registers(source.address, count=count, device_id=unit)
        else:
            response = self._client.read_input_registers(source.address, count=count, device_id=unit)
        if response.isError():
            raise ModbusException(f"the device answered {response}")
        return decode_registers(response.registers, source.data_type, source.word_order)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._client.connected and not self._connect():
                continue
            connected_at = self._clock()
            has_answered = False
            while not self._stop.is_set():
                started = time.monotonic()
                if not self.poll_once():
                    break
                has_answered = has_answered or self._is_up
                self._stop.wait(max(0.0, self.device.poll_interval_s - (time.monotonic() - started)))
            self._client.close()  # type: ignore[no-untyped-call]
            if self._clock() - connected_at >= self.device.reconnect.max_delay_s:
                self._backoff.reset()
            elif not has_answered and not self._stop.is_set():
                # Accepted, then closed before any answer (a device whose connection slots are
                # full does this): wait as after a refused connect, not at the poll rate.
                self._stop.wait(self._backoff.next_delay())

    def _connect(self) -> bool:
        """Open the connection; on failure wait the next backoff delay and return False."""
        self._is_up = False
        try:
            if self._client.connect():  # type: ignore[no-untyped-call]
                return True
            reason = "no answer"
        except (ModbusException, OSError) as exc:
            reason = str(exc)
        delay = self._backoff.next_delay()
        logger.warning(
            "Modbus %s (%s:%d): cannot connect (%s); retry in %.1fs",
            self.device.id,
            self.device.host,
            self.device.port,
            reason,
            delay,
        )
        self._stop.wait(delay)
        return False
