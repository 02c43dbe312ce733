"""The bus between plants and the supervising hub: NATS JetStream over leaf nodes, one domain per plant."""

from anjian.service.bus.address import BUS_ADDRESS, is_bus_address
from anjian.service.bus.config import BusConfig
from anjian.service.bus.errors import BusError, BusUnavailableError

__all__ = ["BUS_ADDRESS", "BusConfig", "BusError", "BusUnavailableError", "is_bus_address"]
