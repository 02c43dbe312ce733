"""nats-server configuration files for a hub and for a plant's leaf node (what `anjian hub nats-config` writes).

A hub::

    listen: 0.0.0.0:4222
    jetstream { store_dir: "/var/lib/anjian-nats", domain: hub }
    leafnodes { listen: 0.0.0.0:7422, advertise: "hub.example:7422" }

A plant (its leaf node connects out to the hub, so a plant needs no inbound port)::

    listen: 127.0.0.1:4222
    jetstream { store_dir: "/var/lib/anjian-nats", domain: plant-<id> }
    leafnodes { remotes = [ { url: "nats-leaf://hub.example:7422" } ] }

With ``leaf_users`` the hub accepts a plant's leaf node only with that plant's password (its
user is the plant id); the plant's config puts them into its remote URL.

Each server keeps its JetStream on its own disk, in its own domain: a plant's events wait
there while the link is down, and the hub's stream sources them when it returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from anjian.service.bus.subjects import check_bus_id, plant_domain

__all__ = ["hub_server_config", "plant_server_config"]

_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024  # a snapshot (up to bus.max_snapshot_bytes) travels inside its event
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.:\[\]-]+:\d{1,5}$")


def _check_listen(kind: str, value: str) -> str:
    if not _HOST_PORT.fullmatch(value):
        raise ValueError(f"{kind} must be host:port, got {value!r}")
    return value


def _check_password(password: str) -> str:
    """A leaf password: 16 to 200 printable characters."""
    if not 16 <= len(password) <= 200 or not password.isprintable():
        raise ValueError(f"a leaf password must be 16-200 printable characters, got {len(password)}")
    return password


def _common(name: str, listen: str, store_dir: Path, domain: str, monitor: str | None) -> list[str]:
    lines = [
        f"server_name: {json.dumps(name)}",
        f"listen: {json.dumps(_check_listen('listen', listen))}",
        f"max_payload: {_MAX_PAYLOAD_BYTES}",
        f"jetstream {{ store_dir: {json.dumps(str(store_dir))}, domain: {json.dumps(domain)} }}",
    ]
    if monitor is not None:
        lines.append(f"http: {json.dumps(_check_listen('monitor', monitor))}")
    return lines


def hub_server_config(
    *,
    listen: str,
    leaf_listen: str,
    store_dir: Path,
    domain: str = "hub",
    name: str = "anjian-hub",
    monitor: str | None = None,
    leaf_advertise: str | None = None,
    leaf_users: Mapping[str, str] | None = None,
) -> str:
    """The hub's nats-server config: JetStream in ``domain``, accepting the plants' leaf connections.

    Args:
        listen: ``host:port`` for clients (the hub service).
        leaf_listen: ``host:port`` the plants' leaf nodes connect to.
        store_dir: Where JetStream keeps its streams.
        domain: The hub's JetStream domain (the plants' ``bus.hub_domain``).
        name: The server's name.
        monitor: ``host:port`` of the HTTP monitoring endpoint, or ``None``.
        leaf_advertise: ``host:port`` the plants reach the leaf port at, when it is not
            ``leaf_listen`` (NAT, VPN, a proxy); the plants reconnect to what the hub advertises.
        leaf_users: Plant id to the password its leaf node must present; ``None`` or empty:
            any leaf node may connect (a closed network only).

    Raises:
        ValueError: An address is not ``host:port`` or the domain cannot be used on the bus.
    """
    check_bus_id("domain", domain)
    lines = _common(name, listen, store_dir, domain, monitor)
    leaf = f"listen: {json.dumps(_check_listen('leaf_listen', leaf_listen))}"
    if leaf_advertise is not None:
        # The plants learn this address from the hub and reconnect to it, so behind NAT, a VPN
        # or a proxy it must be the one they reach (not the hub's own listen address).
        leaf += f", advertise: {json.dumps(_check_listen('leaf_advertise', leaf_advertise))}"
    if leaf_users:
        users = ", ".join(
            f"{{user: {json.dumps(check_bus_id('plant id', plant_id))}, password: {json.dumps(_check_password(password))}}}"
            for plant_id, password in leaf_users.items()
        )
        leaf += f", authorization {{ users = [ {users} ] }}"
    lines.append(f"leafnodes {{ {leaf} }}")
    return "\n".join(lines) + "\n"


def plant_server_config(
    *,
    plant_id: str,
    listen: str,
    hub_leaf_url: str,
    store_dir: Path,
    domain: str | None = None,
    monitor: str | None = None,
    leaf_password: str | None = None,
) -> str:
    """A plant's nats-server config: a leaf node of the hub with JetStream in its own domain.

    Args:
        plant_id: The plant's id on the bus.
        listen: ``host:port`` for the plant's service (normally loopback).
        hub_leaf_url: The hub's leaf address, ``nats-leaf://host:7422``.
        store_dir: Where the plant's JetStream keeps its streams (the outage buffer).
        domain: The plant's JetStream domain; default ``plant-<plant_id>``.
        monitor: ``host:port`` of the HTTP monitoring endpoint, or ``None``.
        leaf_password: The password the hub gave this plant (its leaf user is the plant id).

    Raises:
        ValueError: The id, domain, addresses, URL or password cannot be used.
    """
    check_bus_id("plant id", plant_id)
    domain = check_bus_id("domain", domain or plant_domain(plant_id))
    match = re.fullmatch(r"(?P<scheme>nats-leaf|tls)://(?P<address>[^\s\"@/]+)", hub_leaf_url)
    if match is None:
        raise ValueError(f"hub_leaf_url must be nats-leaf://host:port (no credentials), got {hub_leaf_url!r}")
    if leaf_password is not None:
        secret = quote(_check_password(leaf_password), safe="")
        hub_leaf_url = f"{match['scheme']}://{plant_id}:{secret}@{match['address']}"
    lines = _common(f"anjian-plant-{plant_id}", listen, store_dir, domain, monitor)
    lines.append(f"leafnodes {{ remotes = [ {{ url: {json.dumps(hub_leaf_url)} }} ], reconnect: 1 }}")
    return "\n".join(lines) + "\n"
