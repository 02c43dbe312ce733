"""The one loopback webhook receiver: records every POST, answers scripted statuses, counts keys for the benches."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from anjian.service.benchmarks.ports import free_port
from anjian.service.benchmarks.receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def _post(receiver: WebhookReceiver, key: str, event_id: str) -> httpx.Response:
    headers = {"Idempotency-Key": key, "X-Anjian-Event-Id": event_id}
    return httpx.post(receiver.url, content=b'{"n":1}', headers=headers, timeout=5)


def test_receiver_answers_scripted_statuses_then_ok(receiver: WebhookReceiver) -> None:
    receiver.statuses = [503]

    first, second = _post(receiver, "k1", "e1"), _post(receiver, "k1", "e1")

    assert (first.status_code, first.text) == (503, "receiver says no")
    assert (second.status_code, second.text) == (200, "ok")


def test_receiver_records_path_headers_body_and_arrival(receiver: WebhookReceiver) -> None:
    _post(receiver, "k1", "e1")

    (request,) = receiver.wait_for_requests(1)

    assert request.path == "/hook" and request.body == b'{"n":1}'
    assert request.headers["idempotency-key"] == "k1" and request.received_at > 0


def test_receiver_groups_posts_by_idempotency_key_for_duplicate_counts(receiver: WebhookReceiver) -> None:
    for key, event_id in (("k1", "e1"), ("k2", "e2"), ("k1", "e1")):
        _post(receiver, key, event_id)

    posts = receiver.posts_by_key()

    assert sorted((key, len(times)) for key, times in posts.items()) == [("k1", 2), ("k2", 1)]
    assert posts["k1"][0] <= posts["k1"][1]
    assert receiver.delivered_ids() == {"e1", "e2"}


def test_waiting_for_more_requests_than_arrive_times_out(receiver: WebhookReceiver) -> None:
    with pytest.raises(TimeoutError, match="got 0 request"):
        receiver.wait_for_requests(1, timeout_s=0.1)


def test_a_receiver_that_goes_down_refuses_even_kept_alive_connections_and_comes_back_on_its_port() -> None:
    receiver = WebhookReceiver()
    try:
        with httpx.Client(timeout=5) as client:  # keeps its connection alive, as the dispatcher does
            assert client.post(receiver.url, content=b"1").status_code == 200
            port = receiver.port

            receiver.down()
            with pytest.raises(httpx.TransportError):
                client.post(receiver.url, content=b"2")

            receiver.up()
            assert receiver.port == port and client.post(receiver.url, content=b"3").status_code == 200
        assert [request.body for request in receiver.requests] == [b"1", b"3"]
    finally:
        receiver.close()


def test_a_receiver_on_a_chosen_port_can_start_down() -> None:
    port = free_port()
    receiver = WebhookReceiver(port, is_up=False)

    with pytest.raises(httpx.ConnectError):
        httpx.post(receiver.url, content=b"1", timeout=5)
    receiver.up()
    try:
        assert receiver.url == f"http://127.0.0.1:{port}/hook"
        assert httpx.post(receiver.url, content=b"1", timeout=5).status_code == 200
    finally:
        receiver.close()
