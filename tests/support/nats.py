"""The tests' NATS servers are the bus benchmark's: a hub and plant leaf nodes on loopback."""

from __future__ import annotations

from anjian.service.benchmarks.nats_servers import NatsServer, NatsTopology, nats_server_available

__all__ = ["NatsServer", "NatsTopology", "nats_server_available"]
