"""A loopback webhook receiver for the service benchmarks: answers 204, records each delivery."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["CountingReceiver"]


class _QuietServer(ThreadingHTTPServer):
    """A threaded HTTP server that does not print a traceback when the killed service drops a connection."""

    def handle_error(self, request: object, client_address: object) -> None:
        return


class CountingReceiver:
    """A loopback webhook receiver recording when each idempotency key was POSTed."""

    def __init__(self) -> None:
        self.posts: dict[str, list[float]] = defaultdict(list)
        self.event_ids: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.posts[self.headers.get("Idempotency-Key", "")].append(time.monotonic())
                    receiver.event_ids.add(self.headers.get("X-Anjian-Event-Id", ""))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def delivered_ids(self) -> set[str]:
        with self._lock:
            return set(self.event_ids)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
