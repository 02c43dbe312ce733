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

With ``tls`` (a ``LeafTls``) the leaf link is encrypted: the hub's leaf listener presents its
certificate and key (and, given a CA, requires each plant to present a certificate that CA
signed: mutual TLS); a plant's remote verifies the hub's certificate against the CA it is given
(and presents its own certificate when it has one). A plant without that CA, or without TLS
settings at all (the hub demands TLS, and the system's CAs do not know a private one), fails the
handshake. Every file is checked when the config is
written: it must exist, be readable and hold the PEM block it stands for.

Each server keeps its JetStream on its own disk, in its own domain: a plant's events wait
there while the link is down, and the hub's stream sources them when it returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from anjian.cameras.url import host_port_problem, network_url_problem
from anjian.service.bus.subjects import check_bus_id, plant_domain

__all__ = ["LeafTls", "hub_server_config", "plant_server_config"]

_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024  # a snapshot (up to bus.max_snapshot_bytes) travels inside its event
_LISTEN_ADDRESS = re.compile(r"^[A-Za-z0-9_.:\[\]-]+:\d{1,5}$")


def _check_listen(kind: str, value: str) -> str:
    problem = host_port_problem(value) if _LISTEN_ADDRESS.fullmatch(value) else "not host:port"
    if problem is not None:
        raise ValueError(f"{kind} must be host:port, got {value!r} ({problem})")
    return value


def _check_password(password: str) -> str:
    """A leaf password: 16 to 200 printable characters."""
    if not 16 <= len(password) <= 200 or not password.isprintable():
        raise ValueError(f"a leaf password must be 16-200 printable characters, got {len(password)}")
    return password


_PEM_MARKERS = {"certificate": "CERTIFICATE-----", "key": "PRIVATE KEY-----", "CA": "CERTIFICATE-----"}
_TLS_TIMEOUT_S = 5  # the handshake over a slow WAN link


def _check_pem(kind: str, path: Path) -> Path:
    """``path`` made absolute, when it is a readable file holding a PEM ``kind``; else a ``ValueError`` saying why."""
    marker = _PEM_MARKERS[kind]
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ValueError(
            f"TLS {kind} file {path} does not exist"
            if not path.exists()
            else f"TLS {kind} {path} is not a file"
        )
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ValueError(f"TLS {kind} file {path} cannot be read: {exc.strerror or exc}") from None
    if "-----BEGIN " not in text or marker not in text:
        raise ValueError(f"TLS {kind} file {path} is not PEM (no '-----BEGIN ...{marker}' block)")
    return path


@dataclass(frozen=True, slots=True)
class LeafTls:
    """The TLS files of one side of the leaf link (PEM).

    Attributes:
        cert_file: This server's certificate (the hub's: required; a plant's: for mutual TLS).
        key_file: Its private key; given exactly when ``cert_file`` is.
        ca_file: The CA to verify the other side with (a plant's: the CA that signed the hub's
            certificate, required; the hub's: given, every plant must present a certificate it signed).

    Raises:
        ValueError: A file is missing, unreadable or not PEM of its kind, or a certificate lacks its key.
    """

    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "a TLS certificate and its key go together: give both (--tls-cert and --tls-key)"
            )
        for name, kind in (("cert_file", "certificate"), ("key_file", "key"), ("ca_file", "CA")):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_pem(kind, Path(value)))

    def block(self, *, is_verify: bool = False) -> str:
        """The ``tls { ... }`` block of a nats-server config."""
        fields = [
            f"{name}: {json.dumps(str(value))}"
            for name, value in (
                ("cert_file", self.cert_file),
                ("key_file", self.key_file),
                ("ca_file", self.ca_file),
            )
            if value is not None
        ]
        if is_verify:
            fields.append("verify: true")
        fields.append(f"timeout: {_TLS_TIMEOUT_S}")
        return f"tls {{ {', '.join(fields)} }}"


def _common(
    name: str,
    listen: str,
    store_dir: Path,
    domain: str,
    monitor: str | None,
    max_file_store_bytes: int | None,
) -> list[str]:
    store = f"store_dir: {json.dumps(str(store_dir))}, domain: {json.dumps(domain)}"
    if max_file_store_bytes is not None:
        store += f", max_file_store: {int(max_file_store_bytes)}"
    lines = [
        f"server_name: {json.dumps(name)}",
        f"listen: {json.dumps(_check_listen('listen', listen))}",
        f"max_payload: {_MAX_PAYLOAD_BYTES}",
        f"jetstream {{ {store} }}",
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
    tls: LeafTls | None = None,
    max_file_store_bytes: int | None = None,
) -> str:
    """The hub's nats-server config: JetStream in ``domain``, accepting the plants' leaf connections.

    Args:
        listen: ``host:port`` for clients (the hub service).
        leaf_listen: ``host:port`` the plants' leaf nodes connect to.
        store_dir: Where JetStream keeps its streams.
        domain: The hub's JetStream domain (the plants' ``bus.hub_domain``).
        name: The server's name.
        monitor: ``host:port`` of the HTTP monitoring endpoint, or ``None``.
        max_file_store_bytes: JetStream's file storage limit; None: nats-server's default (up to
            1 TB, as much as the disk has free when it starts).
        leaf_advertise: ``host:port`` the plants reach the leaf port at, when it is not
            ``leaf_listen`` (NAT, VPN, a proxy); the plants reconnect to what the hub advertises.
        leaf_users: Plant id to the password its leaf node must present; ``None`` or empty:
            any leaf node may connect (a closed network only).
        tls: The leaf listener's certificate and key (and the CA of the plants' certificates, for
            mutual TLS); ``None``: the leaf link is plain text (a VPN only).

    Raises:
        ValueError: An address is not ``host:port``, the domain cannot be used on the bus, or
            ``tls`` has no certificate.
    """
    check_bus_id("domain", domain)
    lines = _common(name, listen, store_dir, domain, monitor, max_file_store_bytes)
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
    if tls is not None:
        if tls.cert_file is None:
            raise ValueError("the hub's leaf TLS needs its certificate and key (--tls-cert, --tls-key)")
        leaf += ", " + tls.block(is_verify=tls.ca_file is not None)
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
    tls: LeafTls | None = None,
    max_file_store_bytes: int | None = None,
) -> str:
    """A plant's nats-server config: a leaf node of the hub with JetStream in its own domain.

    Args:
        plant_id: The plant's id on the bus.
        listen: ``host:port`` for the plant's service (normally loopback).
        hub_leaf_url: The hub's leaf address, ``nats-leaf://host:7422``.
        store_dir: Where the plant's JetStream keeps its streams (the outage buffer).
        domain: The plant's JetStream domain; default ``plant-<plant_id>``.
        monitor: ``host:port`` of the HTTP monitoring endpoint, or ``None``.
        max_file_store_bytes: JetStream's file storage limit; None: nats-server's default (up to
            1 TB, as much as the disk has free when it starts).
        leaf_password: The password the hub gave this plant (its leaf user is the plant id).
        tls: The CA that signed the hub's certificate (and this plant's certificate and key,
            when the hub requires them); ``None``: plain text (a VPN only).

    Raises:
        ValueError: The id, domain, addresses, URL or password cannot be used, or ``tls`` has no CA.
    """
    check_bus_id("plant id", plant_id)
    domain = check_bus_id("domain", domain or plant_domain(plant_id))
    match = re.fullmatch(r"(?P<scheme>nats-leaf|tls)://(?P<address>[^\s\"@/]+)", hub_leaf_url)
    refused = f"hub_leaf_url must be nats-leaf://host:port (no credentials), got {hub_leaf_url!r}"
    if match is None:
        raise ValueError(refused)
    problem = network_url_problem(hub_leaf_url, ("nats-leaf", "tls"), what="a leaf address")
    if problem is not None:
        raise ValueError(f"{refused}: {problem}")
    if leaf_password is not None:
        secret = quote(_check_password(leaf_password), safe="")
        hub_leaf_url = f"{match['scheme']}://{plant_id}:{secret}@{match['address']}"
    lines = _common(f"anjian-plant-{plant_id}", listen, store_dir, domain, monitor, max_file_store_bytes)
    remote = f"url: {json.dumps(hub_leaf_url)}"
    if tls is not None:
        if tls.ca_file is None:
            raise ValueError("a plant's leaf TLS needs the CA that signed the hub's certificate (--tls-ca)")
        remote += ", " + tls.block()
    lines.append(f"leafnodes {{ remotes = [ {{ {remote} }} ], reconnect: 1 }}")
    return "\n".join(lines) + "\n"
