"""What /proc says about a process: the benchmarks' RSS and CPU figures, and a free port."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from anjian.service.benchmarks.ports import free_port
from anjian.service.benchmarks.processes import process_cpu_s, process_rss_bytes

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux_only
def test_rss_grows_with_memory_this_process_touches() -> None:
    before = process_rss_bytes(os.getpid())
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])

    assert process_rss_bytes(os.getpid()) - before >= 48 * 1024 * 1024


@linux_only
def test_cpu_seconds_count_work_done() -> None:
    before = process_cpu_s(os.getpid())
    sum(i * i for i in range(2_000_000))

    after = process_cpu_s(os.getpid())
    assert before is not None and after is not None and after > before


def test_unknown_processes_read_as_zero_and_none() -> None:
    assert process_rss_bytes(None) == 0
    assert process_rss_bytes(2**22 + 12345) == 0  # above Linux's pid_max default
    assert process_cpu_s(2**22 + 12345) is None


def test_free_port_can_be_bound() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
