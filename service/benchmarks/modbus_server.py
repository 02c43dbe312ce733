"""A real pymodbus TCP server on a free loopback port, serving registers the caller sets: the stand-in PLC.

The server runs pymodbus's own ``ModbusTcpServer`` on an asyncio loop in a thread.
Its holding and input registers (addresses 0..``size``-1) answer with the words last
given to ``set_words`` (or ``set_value`` with a data type); ``fail`` makes reads of
an address answer with a Modbus exception (a device fault), so the sources are
tested against the real protocol, framing and error responses.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from concurrent.futures import Future
from typing import Literal

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from anjian.service.benchmarks.background_server import BackgroundServer
from anjian.service.benchmarks.ports import free_port

__all__ = ["ModbusTestServer", "words_of"]

RegisterType = Literal["holding", "input"]
_FUNCTION_CODES: dict[int, RegisterType] = {3: "holding", 4: "input"}
_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def words_of(value: float, data_type: str) -> list[int]:
    """The big-endian 16-bit words encoding ``value`` as ``data_type`` (``uint16`` ... ``float32``)."""
    fmt = _FORMATS[data_type]
    number: float | int = value if data_type == "float32" else round(value)
    packed = struct.pack(fmt, number)
    return list(struct.unpack(f">{len(packed) // 2}H", packed))


class ModbusTestServer(BackgroundServer):
    """``with ModbusTestServer() as plc: plc.set_value("input", 100, 12.5, "float32")``.

    Args:
        size: Registers of each kind (addresses ``0..size-1``).
        port: Port to listen on; default a free one.
        unit_id: The device id it answers as.
    """

    def __init__(self, *, size: int = 1000, port: int | None = None, unit_id: int = 1) -> None:
        self.port = port or free_port()
        self.unit_id = unit_id
        self._size = size
        self._lock = threading.Lock()
        self._words: dict[tuple[RegisterType, int], int] = {}
        self._failing: set[tuple[RegisterType, int]] = set()
        self.reads = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._thread: threading.Thread | None = None

    def set_words(self, kind: RegisterType, address: int, words: list[int]) -> None:
        """Make the registers from ``address`` on answer ``words`` (and read normally again)."""
        with self._lock:
            for offset, word in enumerate(words):
                self._words[(kind, address + offset)] = word & 0xFFFF
                self._failing.discard((kind, address + offset))

    def set_value(self, kind: RegisterType, address: int, value: float, data_type: str = "uint16") -> None:
        """Encode ``value`` as ``data_type`` at ``address`` (big-endian words)."""
        self.set_words(kind, address, words_of(value, data_type))

    def fail(self, kind: RegisterType, address: int) -> None:
        """Answer reads that touch ``address`` with a Modbus exception (device failure)."""
        with self._lock:
            self._failing.add((kind, address))

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        kind = _FUNCTION_CODES.get(function_code)
        if kind is None:
            return None
        with self._lock:
            self.reads += 1
            if any((kind, a) in self._failing for a in range(address, address + count)):
                return ExcCodes.DEVICE_FAILURE
            for index in range(len(current_registers)):
                current_registers[index] = self._words.get((kind, start_address + index), 0)
        return None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving on a background thread; returns once it listens."""
        ready: Future[None] = Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            blank = [SimData(0, count=self._size, values=0, datatype=DataType.REGISTERS)]
            bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
            device = SimDevice(self.unit_id, simdata=(bits, bits, blank, list(blank)), action=self._action)

            async def serve() -> None:
                server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
                self._server = server
                await server.serve_forever(background=True)
                ready.set_result(None)
                await server.serving

            try:
                loop.run_until_complete(serve())
            except Exception as exc:  # noqa: BLE001 - handed to start()
                if not ready.done():
                    ready.set_exception(exc)
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"modbus-server-{self.port}", daemon=True)
        self._thread.start()
        ready.result(timeout_s)

    def stop(self) -> None:
        """Stop serving (clients see the connection drop)."""
        if self._loop is not None and self._server is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)  # type: ignore[no-untyped-call]
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None
