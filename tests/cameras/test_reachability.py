"""A camera's TCP endpoint is read from its URL, whatever its password holds, and checked with a bare connect."""

from __future__ import annotations

import socket

import pytest

from anjian.cameras.reachability import port_answers, port_probe, tcp_endpoint
from tests.support.receiver import unused_port


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("rtsp://admin:pa/ss@10.0.0.5/stream1", ("10.0.0.5", 554)),
        ("rtsp://admin:p@ss@cam.local:8554/x", ("cam.local", 8554)),
        ("rtsps://10.0.0.5/x", ("10.0.0.5", 322)),
        ("http://cam/mjpeg", ("cam", 80)),
        ("https://cam/live.m3u8", ("cam", 443)),
        ("rtmp://cam/live", ("cam", 1935)),
        ("rtsp://u:p@[fe80::1%25eth0]:554/x", ("fe80::1%eth0", 554)),
        ("tcp://10.0.0.5:5000", ("10.0.0.5", 5000)),
        ("tcp://10.0.0.5", None),
        ("udp://239.0.0.1:1234", None),
        ("/dev/video0", None),
        ("/clips/a.mp4", None),
    ],
    ids=[
        "slash-password",
        "at-password-port",
        "rtsps",
        "http",
        "https",
        "rtmp",
        "ipv6-zone",
        "tcp",
        "tcp-no-port",
        "udp",
        "device",
        "file",
    ],
)
def test_tcp_endpoint_of_camera_urls(url: str, endpoint: tuple[str, int] | None) -> None:
    assert tcp_endpoint(url) == endpoint


def test_port_answers_only_while_something_listens() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert port_answers("127.0.0.1", port, 1.0)
        probe = port_probe(f"rtsp://admin:pa/ss@127.0.0.1:{port}/x")
        assert probe is not None and probe()
    assert not port_answers("127.0.0.1", port, 1.0)
    assert not port_answers("127.0.0.1", unused_port(), 1.0)
    assert not port_answers("no-such-host.invalid", 554, 1.0)
    assert port_probe("/clips/a.mp4") is None
