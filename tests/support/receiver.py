"""The webhook receiver of the tests (the benchmarks' one), polling helpers and a free port."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from anjian.service.benchmarks.ports import free_port as unused_port
from anjian.service.benchmarks.receiver import ReceivedRequest
from anjian.service.benchmarks.receiver import WebhookReceiver as Receiver

__all__ = ["ReceivedRequest", "Receiver", "receiver", "unused_port", "wait_until"]

WAIT_S = 5.0


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Poll ``predicate`` until it holds, failing the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        time.sleep(0.005)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()
