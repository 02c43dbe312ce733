"""A private Mosquitto broker on a free loopback port, for the sensor benchmark and the tests.

Debian's ``mosquitto`` runs as a subprocess with a generated config (one listener on
127.0.0.1, optional password file made with ``mosquitto_passwd``, no persistence), so
the MQTT sources are measured and tested against the real broker.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from anjian.service.benchmarks.background_server import BackgroundServer
from anjian.service.benchmarks.ports import free_port

__all__ = ["MosquittoBroker", "MosquittoError", "mosquitto_available"]

_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto")


class MosquittoError(RuntimeError):
    """The broker could not be started."""


def _binary(name: str) -> str | None:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    return found


def mosquitto_available() -> bool:
    """True when Debian's ``mosquitto`` (and ``mosquitto_passwd``) are installed."""
    return _binary("mosquitto") is not None and _binary("mosquitto_passwd") is not None


class MosquittoBroker(BackgroundServer):
    """One broker process; ``with MosquittoBroker(user="u", password="p") as broker: broker.url``.

    Args:
        user: With ``password``, the broker refuses anonymous clients and takes only this one.
        password: The user's password.
        port: The port to listen on; default a free one.

    Attributes:
        port: The listening port.
    """

    def __init__(
        self, *, user: str | None = None, password: str | None = None, port: int | None = None
    ) -> None:
        self.user = user
        self.password = password
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="anjian-mosquitto-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``mqtt://[user:password@]127.0.0.1:port``."""
        auth = f"{self.user}:{self.password}@" if self.user is not None else ""
        return f"mqtt://{auth}127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections.

        Raises:
            MosquittoError: It is not installed, exits, or does not listen within ``timeout_s``.
        """
        binary = _binary("mosquitto")
        if binary is None:
            raise MosquittoError("mosquitto is not installed (apt-get install mosquitto)")
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr", "log_type error"]
        if os.geteuid() == 0:  # as root it would switch to user mosquitto, who cannot read our private folder
            lines.append("user root")
        if self.user is not None:
            passwd = _binary("mosquitto_passwd")
            if passwd is None:
                raise MosquittoError("mosquitto_passwd is not installed")
            password_file = self._dir / "passwd"
            password_file.touch(mode=0o600)
            subprocess.run(
                [passwd, "-b", str(password_file), self.user, self.password or ""],
                check=True,
                capture_output=True,
            )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        config = self._dir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise MosquittoError(f"mosquitto exited with {self._process.returncode}: {error.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise MosquittoError(f"mosquitto did not listen on port {self.port} within {timeout_s:.0f}s")

    def stop(self) -> None:
        """Stop the broker (its clients see the connection drop) and forget its files."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def close(self) -> None:
        """Stop the broker and remove its folder."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return None if self._process is None else self._process.pid
