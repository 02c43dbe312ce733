"""A server the benchmarks and tests run beside themselves (a broker, a PLC, an RTSP server), usable in ``with``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["BackgroundServer"]


class BackgroundServer(ABC):
    """``start()`` / ``stop()``, and ``with Server() as server:`` that starts it and closes it on the way out.

    A subclass writes ``start`` (returning once it serves) and ``stop`` (clients see the
    connection drop; it may be started again), and overrides ``close`` when it holds
    more than a running server (a folder, a capture file) to release at the end.

    Example:
        >>> with MosquittoBroker() as broker:
        ...     client.connect("127.0.0.1", broker.port)
    """

    @abstractmethod
    def start(self) -> object:
        """Start serving; return once it answers."""

    @abstractmethod
    def stop(self) -> None:
        """Stop serving (it may be started again); no-op when not running."""

    def close(self) -> None:
        """Stop for good and release what the server holds; by default only ``stop``."""
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
