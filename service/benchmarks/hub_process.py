"""``anjian hub serve`` as a child process, for the tests and the benchmark that kill a real hub."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import yaml

__all__ = ["HubProcess", "write_hub_config"]

_READY_TIMEOUT_S = 60.0


def write_hub_config(
    directory: Path,
    *,
    nats_url: str,
    plant_ids: Sequence[str],
    port: int,
    fetch_batch: int = 256,
    ack_wait_s: float = 30.0,
    database_url: str | None = None,
) -> Path:
    """A hub YAML in ``directory`` supervising ``plant_ids`` (groups: none), storing under ``directory/data``."""
    document = {
        "bus": {"url": nats_url, "fetch_batch": fetch_batch, "ack_wait_s": ack_wait_s},
        "storage": {"dir": str(directory / "data"), "database_url": database_url},
        "server": {"host": "127.0.0.1", "port": port},
        "plants": [{"id": plant_id} for plant_id in plant_ids],
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hub.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


class HubProcess:
    """``python -m anjian.service hub serve --config HUB`` as a child process; output appended to ``log``."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self._config = config
        self.port = port
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the hub and wait until it answers ``/healthz``.

        Raises:
            RuntimeError: It exited or did not answer within 60 s (with its log's tail).
        """
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "anjian.service", "hub", "serve", "--config", str(self._config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the hub did not start:\n{self._log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        """``kill -9``: no chance to ack or close anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then kill after ``timeout_s``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
