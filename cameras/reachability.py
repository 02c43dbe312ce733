"""Does anything answer at a camera's TCP port? A cheap check (connect, close) run between full opens.

A full open of an RTSP camera costs a TCP handshake, DESCRIBE/SETUP/PLAY and a second of
probing the stream; a camera that is down is asked that only at the backoff's pace.
Between those opens the reader checks the port about once a second, so a camera that
comes back is opened at once instead of at the end of a delay grown to tens of seconds.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from urllib.parse import unquote

from anjian.cameras.url import split_url

__all__ = ["port_answers", "port_probe", "tcp_endpoint"]

_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935, "rtmps": 443}
_PROBE_SCHEMES = frozenset({*_DEFAULT_PORTS, "tcp"})


def tcp_endpoint(url: str) -> tuple[str, int] | None:
    """``(host, port)`` a camera URL connects to over TCP, or ``None`` (files, devices, UDP, SRT, no host).

    Example:
        >>> tcp_endpoint("rtsp://admin:pa/ss@[fe80::1]/live")
        ('fe80::1', 554)
    """
    parts = split_url(url)
    if parts.scheme not in _PROBE_SCHEMES or not parts.host:
        return None
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(parts.scheme)
    if port is None:
        return None
    return unquote(parts.host.strip("[]")), port  # an IPv6 zone: fe80::1%25eth0 -> fe80::1%eth0


def port_answers(host: str, port: int, timeout_s: float) -> bool:
    """True when a TCP connection to ``host:port`` is accepted within ``timeout_s`` (then closed at once)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except (OSError, UnicodeError):  # refused, unreachable, timed out, unresolvable
        return False


def port_probe(url: str, timeout_s: float = 1.0) -> Callable[[], bool] | None:
    """A no-argument check of ``url``'s TCP port, or ``None`` when it has none to check."""
    endpoint = tcp_endpoint(url)
    if endpoint is None:
        return None
    host, port = endpoint
    return lambda: port_answers(host, port, timeout_s)
