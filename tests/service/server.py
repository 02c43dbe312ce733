"""Run an ASGI app under a real uvicorn server on loopback, in a thread, for tests that need real HTTP."""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI

from tests.support.receiver import unused_port

__all__ = ["ServerThread"]


class ServerThread:
    """uvicorn serving ``app`` on ``127.0.0.1:port`` (a free port by default) until ``stop``."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or unused_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self, timeout_s: float = 20.0) -> ServerThread:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the server down (its lifespan too)."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
