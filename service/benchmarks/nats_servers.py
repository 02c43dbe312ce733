"""Real nats-server processes for the bus benchmark and tests: a hub and plant leaf nodes on loopback.

``NatsServer`` writes a config file into its own folder, starts Debian's ``nats-server``
on free loopback ports, and can be stopped, killed (``kill -9``) and started again on the
same ports and JetStream store, so a test can cut the link between a plant and the hub and
restore it. ``NatsTopology`` builds one hub and any number of plants leaf-connected to it.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from anjian.service.benchmarks.ports import free_port
from anjian.service.benchmarks.tcp_link import TcpLink
from anjian.service.bus.server_config import hub_server_config, plant_server_config
from anjian.service.bus.subjects import plant_domain

__all__ = ["NATS_SERVER", "NatsServer", "NatsTopology", "nats_server_available"]

NATS_SERVER = "nats-server"
_START_TIMEOUT_S = 20.0
_MAX_FILE_STORE_BYTES = 10**12
"""JetStream's file storage in the test and bench topologies: 1 TB, whatever the disk has free. nats-server's
default is what the disk has free when it starts, and the hub's events stream reserves its max_bytes (20 GB by
default) at creation: on a disk with less free the hub's tests failed ("insufficient storage resources")."""


def nats_server_available() -> bool:
    """Whether Debian's nats-server is on the PATH (``apt install nats-server``)."""
    return shutil.which(NATS_SERVER) is not None


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class NatsServer:
    """One nats-server process with its config in ``folder``; restartable on the same ports and store.

    Args:
        folder: Holds the config, the log and the JetStream store.
        config: The config file's text.
        port: The client port (the config's ``listen``).
    """

    def __init__(self, folder: Path, config: str, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = port
        self.config_path = folder / "nats.conf"
        self.config_path.write_text(config, encoding="utf-8")
        self.log_path = folder / "nats.log"
        self._process: subprocess.Popen[bytes] | None = None

    def reconfigure(self, config: str) -> None:
        """Replace the config file (it takes effect at the next ``start``)."""
        self.config_path.write_text(config, encoding="utf-8")

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def is_running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it accepts clients.

        Raises:
            RuntimeError: It exited or did not listen within 20 s (the log's tail says why).
        """
        if self.is_running:
            return
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [NATS_SERVER, "-c", str(self.config_path)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _listening(self.port):
                return
            time.sleep(0.05)
        self.kill()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"nats-server ({self.config_path}) did not start:\n{tail}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop it gracefully (SIGTERM), killing it after ``timeout_s``."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill it at once (SIGKILL): what a power cut or a crash does."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


@dataclass
class NatsTopology:
    """A hub nats-server and plant leaf nodes, each in a sub-folder of ``root``.

    Every plant's leaf connection goes through one ``TcpLink`` (``link``, the hub's WAN link, which
    the hub advertises), which a test cuts and restores while every server keeps running.

    Example:
        >>> topology = NatsTopology(tmp_path)
        >>> plant = topology.add_plant("lab-3")
        >>> topology.start()
        >>> topology.link.cut(); ...; topology.link.restore()
        >>> topology.stop()
    """

    root: Path
    hub_domain: str = "hub"
    leaf_passwords: dict[str, str] = field(default_factory=dict)
    hub: NatsServer = field(init=False)
    plants: dict[str, NatsServer] = field(default_factory=dict, init=False)
    link: TcpLink = field(init=False)
    leaf_port: int = field(init=False)

    def __post_init__(self) -> None:
        port, self.leaf_port = free_port(), free_port()
        self.link = TcpLink(self.leaf_port)
        self.hub = NatsServer(
            self.root / "hub",
            hub_server_config(
                listen=f"127.0.0.1:{port}",
                leaf_listen=f"127.0.0.1:{self.leaf_port}",
                leaf_advertise=f"127.0.0.1:{self.link.port}",
                leaf_users=self.leaf_passwords,
                store_dir=self.root / "hub" / "jetstream",
                domain=self.hub_domain,
                max_file_store_bytes=_MAX_FILE_STORE_BYTES,
            ),
            port,
        )

    def plant_config(self, plant_id: str, port: int, leaf_password: str | None) -> str:
        """The config text of a plant's leaf node on ``port``, presenting ``leaf_password``."""
        return plant_server_config(
            plant_id=plant_id,
            listen=f"127.0.0.1:{port}",
            hub_leaf_url=f"nats-leaf://127.0.0.1:{self.link.port}",
            store_dir=self.root / f"plant-{plant_id}" / "jetstream",
            domain=plant_domain(plant_id),
            leaf_password=leaf_password,
            max_file_store_bytes=_MAX_FILE_STORE_BYTES,
        )

    def add_plant(self, plant_id: str, *, leaf_password: str | None = None) -> NatsServer:
        """Add a plant's leaf node (not started), JetStream domain ``plant-<plant_id>``.

        Args:
            plant_id: The plant.
            leaf_password: What it presents to the hub; default its entry in ``leaf_passwords``.
        """
        port = free_port()
        password = leaf_password if leaf_password is not None else self.leaf_passwords.get(plant_id)
        server = NatsServer(
            self.root / f"plant-{plant_id}", self.plant_config(plant_id, port, password), port
        )
        self.plants[plant_id] = server
        return server

    def start(self) -> None:
        """Start the hub, the link, then every plant."""
        self.hub.start()
        self.link.restore()
        for server in self.plants.values():
            server.start()

    def stop(self) -> None:
        """Stop the plants, the link, then the hub."""
        for server in self.plants.values():
            server.stop()
        self.link.close()
        self.hub.stop()
