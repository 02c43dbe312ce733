"""BusConnection's life: stopped at any point, it leaves nothing pending behind on its loop."""

from __future__ import annotations

import gc
import logging

import pytest

from anjian.service.bus.connection import BusConnection
from tests.support.receiver import unused_port


def test_stopped_while_connecting_to_an_unreachable_server_it_leaves_no_task_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A task abandoned on a stopped loop is destroyed by the garbage collector later, anywhere in the
    # process: its "Task was destroyed but it is pending!" line, logged from inside ast.parse, once
    # failed an unrelated CLI test with SystemError.
    with caplog.at_level(logging.WARNING):
        bus = BusConnection(f"nats://127.0.0.1:{unused_port()}", name="t-unreachable", reconnect_wait_s=5.0)
        bus.start()
        assert not bus.wait_connected(1.0), "nothing listens there: it keeps trying"
        bus.stop()
        del bus
        gc.collect()
    assert "was destroyed but it is pending" not in caplog.text


def test_a_connection_never_started_can_be_stopped_and_leaves_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        bus = BusConnection(f"nats://127.0.0.1:{unused_port()}", name="t-never")
        bus.stop()
        bus.stop()  # twice is fine
        del bus
        gc.collect()
    assert caplog.text == ""
