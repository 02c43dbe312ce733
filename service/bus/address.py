"""The outbox address of the hub: how the bus appears in the webhook subscriptions table."""

from __future__ import annotations

from typing import Final

__all__ = ["BUS_ADDRESS", "is_bus_address"]

BUS_ADDRESS: Final = "bus:hub"
"""The subscription address of the hub, through the plant's NATS leaf node."""


def is_bus_address(url: str) -> bool:
    """Whether a subscription's target is the hub through the bus (not an http(s) webhook or a channel)."""
    return url == BUS_ADDRESS
