"""``anjian serve`` as a child process on a generated site, for the benchmarks that kill or load a real service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

__all__ = ["ServiceProcess", "create_token", "write_site"]

_SECRET = "whsec_" + "YmVuY2gtc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 fixed bytes
_READY_TIMEOUT_S = 120.0
_CLI_TIMEOUT_S = 120.0


def write_site(directory: Path, receiver_url: str, *, sla: dict[str, float] | None = None) -> Path:
    """A site YAML with one camera (never opened by ``serve``), the receiver as a signed webhook, and ``sla``."""
    site = directory / "site.yaml"
    document: dict[str, object] = {
        "site": {
            "id": "bench",
            "workshops": [{"id": "w1", "cameras": [{"id": "cam-1", "url": "rtsp://127.0.0.1:9/unused"}]}],
        },
        "webhooks": [{"url": receiver_url, "secret": _SECRET}],
        "storage": {"dir": str(directory / "data")},
    }
    if sla is not None:
        document["sla"] = sla
    site.write_text(yaml.safe_dump(document))
    return site


def create_token(site: Path, role: str) -> str:
    """A new API token of ``role`` for ``site``, made by ``anjian tokens create`` in a child process; its secret.

    The command also creates and migrates the site's database, so a caller that times a
    start makes its tokens first. It runs in the site's folder.

    Raises:
        subprocess.CalledProcessError: The command failed (an invalid site, an unknown role).
    """
    return subprocess.run(
        [sys.executable, "-m", "anjian.service", "tokens", "create", "--config", str(site), "--role", role],
        capture_output=True,
        text=True,
        check=True,
        cwd=site.parent,
        timeout=_CLI_TIMEOUT_S,
    ).stdout.strip()


class ServiceProcess:
    """``python -m anjian.service serve --config SITE`` as a child process of this one, on ``port``.

    It runs in the site's folder; its output is appended to ``log``.
    """

    def __init__(self, site: Path, port: int, log: Path) -> None:
        self._site = site
        self._port = port
        self._log = log
        self._cwd = site.parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The port the service listens on (``ANJIAN_PORT``)."""
        return self._port

    def start(self) -> float:
        """Start and wait for ``/readyz``; returns the seconds it took."""
        started = time.monotonic()
        env = {**os.environ, "ANJIAN_PORT": str(self._port), "PYTHONUNBUFFERED": "1"}
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "anjian.service", "serve", "--config", str(self._site)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._cwd,
            )
        while time.monotonic() - started < _READY_TIMEOUT_S:
            try:
                if httpx.get(f"http://127.0.0.1:{self._port}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the service did not become ready; see {self._log}")

    def kill(self) -> None:
        """SIGKILL the service (no shutdown of any kind) and reap it; no-op when not running."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGINT the service (a clean shutdown), SIGKILL it after 30 s; no-op when not running."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
