"""The cuttable loopback link of the bus tests: forwards while up, refuses while cut, holds its port throughout."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from anjian.service.benchmarks.tcp_link import TcpLink


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _echoes(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"ping")
        return sock.recv(4)


def _is_taken(port: int) -> bool:
    """Whether a plain socket (what another server binds) cannot have the port."""
    with socket.socket() as other:
        try:
            other.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def test_the_link_forwards_while_up_refuses_while_cut_and_holds_its_port_until_closed(echo_port: int) -> None:
    link = TcpLink(echo_port)
    try:
        assert not link.is_up and _is_taken(link.port), "held from the start, before the first restore"
        with pytest.raises(ConnectionRefusedError):
            _echoes(link.port)

        link.restore()
        assert link.is_up and _echoes(link.port) == b"ping"
        through = socket.create_connection(("127.0.0.1", link.port), timeout=5)
        through.sendall(b"ping")
        assert through.recv(4) == b"ping"

        link.cut()
        assert through.recv(4) == b"", "a cut closes the connections through the link"
        through.close()
        assert not link.is_up and _is_taken(link.port), "a cut link keeps its port"
        with pytest.raises(ConnectionRefusedError):
            _echoes(link.port)

        link.restore()
        assert _echoes(link.port) == b"ping", "restored on the same port"
    finally:
        link.close()
    with socket.socket() as server:  # SO_REUSEADDR: the closed connections may sit in TIME_WAIT
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", link.port))
        server.listen()  # closed: another server can have the port
