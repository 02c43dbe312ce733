"""The names on the bus, in one place: streams, subjects, consumers, domains and message ids.

Topology (one hub, many plants)::

    plant nats-server (leaf node, JetStream domain plant-<id>)          hub nats-server (domain hub)
      stream PLANT_<id>_EVENTS  <- anjian.plant.<id>.event / .health     stream HUB_EVENTS
           (on the plant's disk while the link is down)  ───sourced───▶    (sources every plant's stream)
      stream PLANT_<id>_COMMANDS ◀───sourced (filter anjian.hub.command.<id>)── stream HUB_COMMANDS

The plant confirms each remark it received (``anjian.plant.<id>.receipt``, in its events stream).
The hub sets aside a plant's message its key did not sign in ``HUB_UNSIGNED``
(``anjian.hub.unsigned.<id>``, on the hub's server only).

Clips travel on demand, outside JetStream: the hub sends a core NATS request on
``anjian.clip.<id>`` (not under any stream's subjects) and the plant answers it.

Both directions of events and remarks are stream sourcing across JetStream domains (``$JS.<domain>.API``), the
pattern NATS documents for leaf nodes that must work disconnected: each side writes only to
its own server's JetStream, and the server moves the messages over the leaf connection when it is up,
resuming where it stopped.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "BUS_ID_PATTERN",
    "HUB_COMMANDS_STREAM",
    "HUB_CONSUMER",
    "HUB_EVENTS_STREAM",
    "HUB_UNSIGNED_STREAM",
    "PLANT_COMMANDS_CONSUMER",
    "api_prefix",
    "check_bus_id",
    "clip_subject",
    "command_subject",
    "event_subject",
    "health_subject",
    "plant_commands_stream",
    "plant_domain",
    "plant_events_stream",
    "plant_subjects",
    "receipt_subject",
    "unsigned_subject",
]

BUS_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
"""A plant id or domain on the bus: one subject token and part of a stream name (no dots)."""

HUB_EVENTS_STREAM: Final = "HUB_EVENTS"
HUB_COMMANDS_STREAM: Final = "HUB_COMMANDS"
HUB_UNSIGNED_STREAM: Final = "HUB_UNSIGNED"
"""The hub's stream of plant messages set aside because their plant's key did not sign them."""
HUB_CONSUMER: Final = "anjian-hub"
PLANT_COMMANDS_CONSUMER: Final = "anjian-plant"
_COMMAND_PREFIX: Final = "anjian.hub.command"
_UNSIGNED_PREFIX: Final = "anjian.hub.unsigned"


def check_bus_id(kind: str, value: str) -> str:
    """``value`` when it can be a plant id or domain on the bus.

    Raises:
        ValueError: It holds a dot, a space or a wildcard (it would split or widen a subject).
    """
    if not re.fullmatch(BUS_ID_PATTERN, value) or len(value) > 64:
        raise ValueError(f"{kind} {value!r} cannot be used on the bus: expected letters, digits, '_' or '-'")
    return value


def plant_domain(plant_id: str) -> str:
    """The default JetStream domain of a plant's nats-server."""
    return f"plant-{plant_id}"


def api_prefix(domain: str) -> str:
    """The JetStream API prefix of a domain, reachable across leaf connections."""
    return f"$JS.{domain}.API"


def plant_events_stream(plant_id: str) -> str:
    """The stream on the plant's server holding what the plant tells the hub."""
    return f"PLANT_{plant_id}_EVENTS"


def plant_commands_stream(plant_id: str) -> str:
    """The stream on the plant's server holding what the hub sends the plant."""
    return f"PLANT_{plant_id}_COMMANDS"


def plant_subjects(plant_id: str) -> str:
    """Every subject the plant publishes on (its events stream's subjects)."""
    return f"anjian.plant.{plant_id}.>"


def event_subject(plant_id: str) -> str:
    """Event revisions and lifecycle changes of a plant."""
    return f"anjian.plant.{plant_id}.event"


def health_subject(plant_id: str) -> str:
    """Camera health reports of a plant."""
    return f"anjian.plant.{plant_id}.health"


def receipt_subject(plant_id: str) -> str:
    """A plant's word that it received a supervisor's remark."""
    return f"anjian.plant.{plant_id}.receipt"


def unsigned_subject(plant_id: str | None = None) -> str:
    """Where the hub sets aside a plant's unsigned messages (``None``: every plant's, the stream's subject)."""
    return f"{_UNSIGNED_PREFIX}.{'*' if plant_id is None else plant_id}"


def command_subject(plant_id: str | None = None) -> str:
    """Supervisors' remarks to one plant (``None``: the wildcard of every plant, the hub stream's subject)."""
    return f"{_COMMAND_PREFIX}.{'*' if plant_id is None else plant_id}"


def clip_subject(plant_id: str) -> str:
    """The hub's requests for a plant's clips (core NATS request/reply, no stream)."""
    return f"anjian.clip.{plant_id}"
