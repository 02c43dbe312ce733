"""Exceptions of the bus.

Hierarchy::

    ServiceError
    └── BusError               something on the bus failed
        └── BusUnavailableError  the NATS server cannot be reached now (retry later)
"""

from __future__ import annotations

from anjian.service.errors import ServiceError

__all__ = ["BusError", "BusUnavailableError"]


class BusError(ServiceError):
    """Something on the bus failed; the message says what."""


class BusUnavailableError(BusError):
    """The NATS server cannot be reached now; what was asked can be tried again later."""
