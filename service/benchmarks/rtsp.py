"""Run the stand-in RTSP server (``rtsp_server.py``) as a child process, from the venv.

The server needs GStreamer's Python bindings, which only Debian's
``/usr/bin/python3`` has, so it runs as a subprocess of that interpreter. Besides
start and stop, it can be killed (a camera that dies), paused with SIGSTOP (a camera
that hangs with its sockets open) and restarted on the same port (a camera that comes
back), which is what reconnect logic needs to be tested and measured against: the
tests (through ``tests/support/rtsp.py``) and ``anjian bench reconnect`` run it.
"""

from __future__ import annotations

import functools
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Self
from urllib.parse import quote

from anjian.service.benchmarks.background_server import BackgroundServer

__all__ = ["SYSTEM_PYTHON", "RtspServerError", "RtspTestServer", "rtsp_server_available"]

SYSTEM_PYTHON = "/usr/bin/python3"
"""The interpreter that has ``gi`` (python3-gi) and runs the server script."""

_SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
_REQUIRED_ELEMENTS = ("appsrc", "filesrc", "parsebin", "qtdemux", "h264parse", "rtph264pay")
_PROBE = f"""
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [n for n in {_REQUIRED_ELEMENTS!r} if Gst.ElementFactory.find(n) is None]
print("missing GStreamer elements: " + ", ".join(missing) if missing else "ok")
"""


class RtspServerError(RuntimeError):
    """The test RTSP server could not be started or controlled."""


@functools.cache
def rtsp_server_available() -> tuple[bool, str]:
    """Check that the test RTSP server can run on this machine.

    It needs ``/usr/bin/python3`` with python3-gi, GstRtspServer
    (gir1.2-gst-rtsp-server-1.0) and the GStreamer elements it uses. The
    answer is cached for the process.

    Returns:
        ``(True, "ok")``, or ``(False, reason)`` with a reason fit for ``pytest.skip``.
    """
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False, f"{SYSTEM_PYTHON} not found (the RTSP test server needs Debian's python3-gi)"
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"cannot run {SYSTEM_PYTHON}: {error}"
    answer = probe.stdout.strip()
    if probe.returncode != 0:
        last_line = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"{SYSTEM_PYTHON} cannot load GStreamer RTSP server bindings: {last_line}"
    if answer != "ok":
        return False, answer
    return True, "ok"


class RtspTestServer(BackgroundServer):
    """A real RTSP server serving looping clips, controlled from tests.

    Each mount serves one H.264 MP4 clip as a live stream at the clip's own
    frame rate, looping forever with increasing timestamps. The port is chosen
    by the OS on the first ``start()`` and kept for ``restart()``.

    Args:
        mounts: Mount path (``"/cam1"``) to clip file.
        user: If set (with ``password``), clients need these basic-auth credentials.
        password: Password for ``user``.
        host: Address to listen on and to put in URLs.
        ready_timeout_s: How long ``start()`` waits for the server to listen.
        verbose: Make the server log media and every pushed frame to its stderr.

    Raises:
        ValueError: If a mount does not start with ``/``, a clip is missing, or
            only one of ``user``/``password`` is given.

    Example:
        >>> with RtspTestServer({"/cam1": clip}, user="admin", password="pw") as server:
        ...     container = av.open(server.url("/cam1"), options={"rtsp_transport": "tcp"})
    """

    def __init__(
        self,
        mounts: Mapping[str, str | Path],
        *,
        user: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
        ready_timeout_s: float = 20.0,
        verbose: bool = False,
    ) -> None:
        if not mounts:
            raise ValueError("mounts must name at least one /mount -> clip")
        for mount, clip in mounts.items():
            if not mount.startswith("/") or "=" in mount:
                raise ValueError(f"mount must look like '/cam1', got {mount!r}")
            if not Path(clip).is_file():
                raise ValueError(f"clip for {mount} does not exist: {str(clip)!r}")
        if (user is None) != (password is None):
            raise ValueError("user and password must be given together")
        self._mounts = {mount: Path(clip) for mount, clip in mounts.items()}
        self._user = user
        self._password = password
        self._host = host
        self._ready_timeout_s = ready_timeout_s
        self._verbose = verbose
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._is_paused = False

    @property
    def port(self) -> int:
        """The TCP port, fixed by the first ``start()``; 0 before that."""
        return self._port

    @property
    def is_running(self) -> bool:
        """Whether the server process exists and has not exited (paused counts)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id, or None when not started."""
        return None if self._process is None else self._process.pid

    def url(self, mount: str, with_credentials: bool = True) -> str:
        """Return the ``rtsp://`` URL of ``mount`` (which need not exist: 404 tests).

        Args:
            mount: Mount path such as ``"/cam1"``.
            with_credentials: Put ``user:password@`` in the URL when the server has them.

        Raises:
            RtspServerError: If the server was never started (no port yet).
        """
        if self._port == 0:
            raise RtspServerError("the server has no port yet: call start() first")
        path = mount if mount.startswith("/") else f"/{mount}"
        userinfo = ""
        if with_credentials and self._user is not None and self._password is not None:
            userinfo = f"{quote(self._user, safe='')}:{quote(self._password, safe='')}@"
        return f"rtsp://{userinfo}{self._host}:{self._port}{path}"

    def start(self) -> Self:
        """Spawn the server and wait until it listens.

        Returns:
            ``self``, for chaining.

        Raises:
            RtspServerError: If it is already running, exits early or is not ready
                within ``ready_timeout_s``; the message includes its stderr.
        """
        if self.is_running:
            raise RtspServerError(f"the RTSP test server is already running (pid {self.pid})")
        self._close_stderr()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        command = [SYSTEM_PYTHON, str(_SERVER_SCRIPT), "--port", str(self._port), "--address", self._host]
        for mount, clip in self._mounts.items():
            command += ["--mount", f"{mount}={clip}"]
        if self._user is not None and self._password is not None:
            command += ["--user", self._user, "--password", self._password]
        if self._verbose:
            command.append("--verbose")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self._is_paused = False
        try:
            self._port = self._wait_ready(self._process)
        except RtspServerError:
            self._terminate(self._process)
            raise
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout_s``. No-op if not running."""
        if self._process is None:
            return
        if self._is_paused and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)
        self._is_paused = False
        self._terminate(self._process, timeout_s)

    def kill(self) -> None:
        """SIGKILL the server at once, like a camera losing power. No-op if not running."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.kill()
        self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._is_paused = False

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open but nothing flows (a hung camera).

        Raises:
            RtspServerError: If the server is not running.
        """
        self._signal_running(signal.SIGSTOP)
        self._is_paused = True

    def resume(self) -> None:
        """SIGCONT a paused server; frames flow again.

        Raises:
            RtspServerError: If the server is not running.
        """
        self._signal_running(signal.SIGCONT)
        self._is_paused = False

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port.

        Returns:
            ``self``, for chaining.

        Raises:
            RtspServerError: As for ``start()``.
        """
        self.stop()
        return self.start()

    def stderr_text(self) -> str:
        """Return what the current (or last) server process wrote to stderr."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", errors="replace")
        self._stderr.seek(0, os.SEEK_END)
        return text

    def close(self) -> None:
        """Stop the server and close its stderr capture (what ``with`` does on the way out)."""
        self.stop()
        self._close_stderr()

    def __repr__(self) -> str:
        state = "paused" if self._is_paused else ("running" if self.is_running else "stopped")
        return f"RtspTestServer(port={self._port}, mounts={sorted(self._mounts)}, {state})"

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> int:
        """Read the server's stdout until ``READY <port>``; return the port."""
        if process.stdout is None:
            raise RtspServerError("the server process has no stdout pipe")
        deadline = time.monotonic() + self._ready_timeout_s
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in received:
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    raise RtspServerError(self._failure(f"not ready after {self._ready_timeout_s:.0f}s"))
                if not selector.select(timeout=min(remaining_s, 0.2)):
                    if process.poll() is not None:
                        raise RtspServerError(self._failure(f"exited with status {process.returncode}"))
                    continue
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    process.wait(timeout=5)
                    raise RtspServerError(self._failure(f"exited with status {process.returncode}"))
                received += chunk
        line = received.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()
        word, _, port = line.partition(" ")
        if word != "READY" or not port.isdigit():
            raise RtspServerError(self._failure(f"printed {line!r} instead of 'READY <port>'"))
        return int(port)

    def _failure(self, what: str) -> str:
        """Describe a start failure, with the server's stderr."""
        port = f" on port {self._port}" if self._port else ""
        return f"RTSP test server{port} {what}; stderr:\n{self.stderr_text().strip() or '(empty)'}"

    def _signal_running(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the running server, or raise."""
        if self._process is None or self._process.poll() is not None:
            raise RtspServerError(f"cannot send {signum.name}: the RTSP test server is not running")
        self._process.send_signal(signum)

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
        """SIGTERM ``process``, SIGKILL it if it lingers, and reap it."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def _close_stderr(self) -> None:
        """Close the stderr capture file of the previous process."""
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
