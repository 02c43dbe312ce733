"""Exceptions of the bus.

Hierarchy::

    ServiceError
    └── BusError               something on the bus failed
        ├── BusUnavailableError  the NATS server cannot be reached now (retry later)
        │   └── PlantUnreachableError  a plant did not answer a request (offline, or its link is down)
        └── ClipError          a clip could not be fetched from its plant (the message says why)
            ├── ClipNotFoundError  the plant has no clip of that incident
            └── ClipTooBigError    the clip is larger than the hub takes
"""

from __future__ import annotations

from anjian.service.errors import ServiceError

__all__ = [
    "BusError",
    "BusUnavailableError",
    "ClipError",
    "ClipNotFoundError",
    "ClipTooBigError",
    "PlantBusyError",
    "PlantUnreachableError",
]


class BusError(ServiceError):
    """Something on the bus failed; the message says what."""


class BusUnavailableError(BusError):
    """The NATS server cannot be reached now; what was asked can be tried again later."""


class PlantUnreachableError(BusUnavailableError):
    """A plant did not answer a request in time: it is offline, or its link to the hub is down."""


class PlantBusyError(BusUnavailableError):
    """A plant is sending as many clips as the hub asks of it at once (its uplink also carries its alerts)."""


class ClipError(BusError):
    """A clip could not be fetched from its plant; the message says why."""


class ClipNotFoundError(ClipError):
    """The plant has no clip of that incident (none was recorded, or it was deleted)."""


class ClipTooBigError(ClipError):
    """The clip is larger than the hub takes (``hub.max_clip_bytes``)."""
