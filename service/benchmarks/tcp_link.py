"""A TCP link that can be cut and restored: a loopback proxy between a plant's leaf node and the hub.

Killing either nats-server would also stop its JetStream; a real outage is the link
between them going away while both keep running. ``TcpLink`` forwards one port to
another and, on ``cut()``, closes every connection through it and refuses new ones
until ``restore()``.

The link holds its port from construction to ``close()``: while cut (and before the
first ``restore()``) a bound socket that does not listen keeps it, so connections are
refused and no other process (an outgoing connection given that ephemeral port, a
parallel test's server) can take it in between.
"""

from __future__ import annotations

import socket
import threading

__all__ = ["TcpLink"]

_CHUNK = 65_536


def _held_port(port: int) -> socket.socket:
    """A socket bound to ``127.0.0.1:port`` (0: the OS picks), not listening: the port is ours, connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # SO_REUSEADDR: the connections of an earlier listen may still be in TIME_WAIT
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


class TcpLink:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port`` until cut.

    Args:
        target_port: Where connections go.
        port: Where it listens; default a free port.

    Raises:
        OSError: ``port`` is taken.
    """

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self._held: socket.socket | None = _held_port(port or 0)
        self.port = int(self._held.getsockname()[1])
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def is_up(self) -> bool:
        """Whether the link accepts connections."""
        return self._listener is not None

    def restore(self) -> None:
        """Listen again (also the first start)."""
        with self._lock:
            if self._listener is not None:
                return
            listener, self._held = self._held or _held_port(self.port), None
            listener.listen()
            listener.settimeout(0.2)
            self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), name="tcp-link", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Close every connection through the link and refuse new ones (the port stays held)."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            listener.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self._thread is not None:
            self._thread.join(2.0)
        if listener is not None:
            with self._lock:
                try:
                    self._held = self._held or _held_port(self.port)
                except OSError:
                    self._held = None  # restore() binds again, or names the port it cannot have

    def close(self) -> None:
        """Cut the link and give its port back."""
        self.cut()
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            held.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2.0)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
