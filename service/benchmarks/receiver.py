"""A real webhook receiver on loopback: records every POST and answers with scripted statuses.

The service benchmarks count deliveries per ``Idempotency-Key`` with it (duplicates
after a crash, deliveries per second); the tests check payloads, signatures and
retries against it. It speaks HTTP/1.1 with keep-alive, as a production receiver
does, and stays quiet when a killed service drops a connection mid-request.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ReceivedRequest", "WebhookReceiver"]

_WAIT_S = 5.0


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST the receiver got.

    Attributes:
        path: Request path, e.g. ``"/hook"``.
        headers: Header names lower-cased, to their values.
        body: The request body.
        received_at: ``time.monotonic()`` when it arrived, seconds.
    """

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float


class _QuietServer(ThreadingHTTPServer):
    """A threaded HTTP server that can drop its open connections and prints no traceback when a client does."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Reset every open (keep-alive) connection, as a receiver that goes down does."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        return


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 that records POSTs to any path.

    Set ``statuses`` to script the answers (each POST takes the next one, with the body
    ``receiver says no`` for a failure); once they run out it answers ``200 ok``.
    ``down()`` stops it (open connections reset, the records kept) and ``up()`` serves
    again on the same port: a receiver's outage.

    Args:
        port: TCP port; 0 lets the OS choose one at the first ``up()``.
        is_up: Serve from the start (else call ``up()``; ``url`` is known before only
            with a ``port``).

    Example:
        >>> receiver = WebhookReceiver()
        >>> subscribe(receiver.url)  # deliveries go to http://127.0.0.1:PORT/hook
        >>> (request,) = receiver.wait_for_requests(1)
        >>> receiver.close()
    """

    def __init__(self, port: int = 0, *, is_up: bool = True) -> None:
        self.requests: list[ReceivedRequest] = []
        self.statuses: list[int] = []
        self.port = port
        self._cond = threading.Condition()
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None
        if is_up:
            self.up()

    @property
    def url(self) -> str:
        """Where to POST: ``http://127.0.0.1:PORT/hook``."""
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        """Start serving on ``port`` (chosen now if it is 0); no-op when already up."""
        if self._server is not None:
            return
        self._server = _QuietServer(("127.0.0.1", self.port), self._handler())
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Stop serving: the port refuses connections and open ones are reset; no-op when down."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(_WAIT_S)

    def close(self) -> None:
        """Stop serving and free the port (the records stay readable)."""
        self.down()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this receiver."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Keep-alive answers go out at once: with Nagle on, each one waited for the client's
            # delayed ACK (~40 ms), which the bench then reported as delivery latency.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append(ReceivedRequest(self.path, headers, body, time.monotonic()))
                    receiver._cond.notify_all()
                payload = b"receiver says no" if status >= 300 else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    def wait_for_requests(self, count: int, timeout_s: float = _WAIT_S) -> list[ReceivedRequest]:
        """Block until ``count`` requests arrived; all of them so far.

        Raises:
            TimeoutError: Fewer arrived within ``timeout_s``.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout_s):
                raise TimeoutError(f"receiver got {len(self.requests)} request(s), expected {count}")
            return list(self.requests)

    def posts_by_key(self) -> dict[str, list[float]]:
        """``Idempotency-Key`` to the arrival times (monotonic seconds) of each POST carrying it."""
        posts: dict[str, list[float]] = defaultdict(list)
        with self._cond:
            for request in self.requests:
                posts[request.headers.get("idempotency-key", "")].append(request.received_at)
        return dict(posts)

    def delivered_ids(self) -> set[str]:
        """The distinct ``X-Anjian-Event-Id`` values received."""
        with self._cond:
            return {request.headers.get("x-anjian-event-id", "") for request in self.requests}
