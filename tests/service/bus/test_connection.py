"""BusConnection's life: stopped at any point, it leaves nothing pending behind on its loop; its URL's password is never shown."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest

from anjian.service.bus.address import BUS_ADDRESS
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.errors import BusUnavailableError
from anjian.service.composition import build_service_parts
from tests.factories import make_event
from tests.service.bus.conftest import plant_config
from tests.support.nats import nats_server_available, start_jetstream_server
from tests.support.receiver import unused_port
from tests.support.waiting import wait_for

PASSWORD = "s3cret-leaf-password"


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


def test_a_password_in_the_nats_url_never_reaches_the_log_or_the_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not nats_server_available():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    server = start_jetstream_server(tmp_path / "nats")  # no auth: it ignores the credentials
    url = server.url.replace("nats://", f"nats://anjian:{PASSWORD}@")
    with caplog.at_level(logging.DEBUG):
        bus = BusConnection(url, name="t-credentials")
        bus.start()
        try:
            assert bus.wait_connected(20)
            server.kill()
            assert wait_for(lambda: "disconnected from NATS" in caplog.text, 30)
            with pytest.raises(BusUnavailableError) as raised:
                bus.jetstream()
        finally:
            bus.stop()
    assert "connected to NATS at nats://***:***@127.0.0.1" in caplog.text
    assert PASSWORD not in caplog.text
    assert "***:***@" in str(raised.value) and PASSWORD not in str(raised.value)


def test_a_password_in_the_plants_nats_url_is_not_stored_with_a_delivery_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"nats://anjian:{PASSWORD}@127.0.0.1:{unused_port()}"
    parts = build_service_parts(plant_config(tmp_path / "plant", url))
    parts.start()
    try:
        parts.sink.publish(make_event())

        def errors() -> list[str]:
            rows = parts.store.outbox.list()
            return [row.last_error for row in rows if row.url == BUS_ADDRESS and row.last_error is not None]

        assert wait_for(lambda: len(errors()) > 0, 30)
        (error,) = errors()
        assert "nats://***:***@127.0.0.1" in error
        assert PASSWORD not in error
        assert PASSWORD not in caplog.text
    finally:
        parts.close()
