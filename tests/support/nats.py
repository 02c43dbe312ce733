"""The tests' NATS servers are the bus benchmark's: a hub and plant leaf nodes on loopback, or one plain server."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import pytest

from anjian.service.benchmarks.nats_servers import NatsServer, NatsTopology, nats_server_available
from anjian.service.benchmarks.ports import free_port

__all__ = [
    "NatsServer",
    "NatsTopology",
    "assert_nats_server_accepts",
    "nats_server_available",
    "publish_raw",
    "running_jetstream_server",
    "start_jetstream_server",
]


def start_jetstream_server(folder: Path) -> NatsServer:
    """Start one nats-server with JetStream on a free loopback port, its store in ``folder`` (a plant's own server)."""
    port = free_port()
    config = f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{folder / "jetstream"}" }}\n'
    server = NatsServer(folder, config, port)
    server.start()
    return server


@contextmanager
def running_jetstream_server(folder: Path) -> Iterator[NatsServer]:
    """``start_jetstream_server``, killed on leaving; skips the test where nats-server is not installed."""
    if not nats_server_available():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    server = start_jetstream_server(folder)
    try:
        yield server
    finally:
        server.kill()


def assert_nats_server_accepts(folder: Path, name: str, text: str) -> None:
    """Write config ``text`` to ``folder/name`` and assert ``nats-server -t`` (test the config) accepts it."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    check = subprocess.run(
        ["nats-server", "-t", "-c", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr


def publish_raw(url: str, subject: str, data: bytes, msg_id: str) -> None:
    """Publish ``data`` on a JetStream ``subject`` as it stands: no signature, no model of this anjian
    (what a stranger on the bus, or a plant of another version, would send)."""

    async def publish() -> None:
        client = await nats.connect(url)
        try:
            await client.jetstream().publish(subject, data, headers={"Nats-Msg-Id": msg_id})
        finally:
            await client.close()

    asyncio.run(publish())
