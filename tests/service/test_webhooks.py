"""WebhookDispatcher: delivery guarantees against a real HTTP receiver on loopback, plus unit checks."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from anjian.cameras.backoff import backoff_delay_s
from anjian.service import webhooks as webhooks_module
from anjian.service.claims import LeaseKeeper
from anjian.service.config import StorageConfig, WebhookConfig
from anjian.service.evidence import EvidenceStore
from anjian.service.metrics import ServiceMetrics
from anjian.service.outbox import idempotency_key
from anjian.service.records import DeliveryStatus, WebhookDelivery
from anjian.service.sink import StoreSink
from anjian.service.store import EventStore
from anjian.service.subscriptions import SubscriptionSpec
from anjian.service.webhooks import (
    SIGNATURE_HEADER,
    FailureLog,
    WebhookDispatcher,
    sign_payload,
    verify_signature,
)
from tests.factories import make_event
from tests.service.conftest import FakeClock
from tests.support.receiver import Receiver, unused_port, wait_until
from tests.support.waiting import wait_for

SECRET = "s3cret-for-tests"
WAIT_S = 5.0


def only_delivery(store: EventStore) -> WebhookDelivery:
    (delivery,) = store.outbox.list()
    return delivery


def deliver_once_and_close(
    store: EventStore, receiver: Callable[[httpx.Request], httpx.Response], **options: Any
) -> WebhookDelivery:
    """Store one event (no snapshot) for a subscription that ``receiver`` answers (``httpx.MockTransport``)
    and run one ``deliver_due`` round of a dispatcher with ``options``; closes ``store``. The delivery."""
    store.subscriptions.create(SubscriptionSpec(url="http://receiver.example/hook"))
    store.upsert_event(make_event(snapshot_jpeg=None))
    dispatcher = WebhookDispatcher(store, transport=httpx.MockTransport(receiver), **options)
    try:
        dispatcher.deliver_due()
        return only_delivery(store)
    finally:
        dispatcher.stop()
        store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"))
    yield store
    store.close()


@pytest.fixture
def evidence(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore(tmp_path / "data", is_fsync=False)


@pytest.fixture
def make_dispatcher(store: EventStore) -> Iterator[Callable[..., WebhookDispatcher]]:
    created: list[WebhookDispatcher] = []

    def make(webhooks: list[WebhookConfig], **kwargs: object) -> WebhookDispatcher:
        kwargs.setdefault("backoff_base_s", 0.001)
        kwargs.setdefault("backoff_max_s", 0.004)
        store.subscriptions.sync_config(webhooks)
        dispatcher = WebhookDispatcher(store, **kwargs)  # type: ignore[arg-type]
        created.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in created:
        dispatcher.stop()


DeliverOneEvent = Callable[..., WebhookDelivery]
"""``deliver_one_event(webhook, *, until)``: the fixture's function."""


@pytest.fixture
def deliver_one_event(
    store: EventStore, make_dispatcher: Callable[..., WebhookDispatcher]
) -> DeliverOneEvent:
    """Subscribes ``webhook``, stores a new event and starts a dispatcher (fast backoff): the event's one
    delivery, once its status is ``until``."""

    def deliver(webhook: WebhookConfig, *, until: DeliveryStatus) -> WebhookDelivery:
        dispatcher = make_dispatcher([webhook])
        store.upsert_event(make_event())
        dispatcher.start()
        wait_until(lambda: only_delivery(store).status is until)
        return only_delivery(store)

    return deliver


# ------------------------------------------------------------ real HTTP receiver


def test_published_event_arrives_promptly_as_signed_json(
    receiver: Receiver,
    store: EventStore,
    evidence: EvidenceStore,
    make_dispatcher: Callable[..., WebhookDispatcher],
) -> None:
    dispatcher = make_dispatcher([WebhookConfig(url=receiver.url, secret=SecretStr(SECRET))])
    dispatcher.start()
    sink = StoreSink(store, evidence)  # the store wakes the dispatcher
    event = make_event()

    sink.publish(event)  # the worker is idle (its timer is 60 s): only wake() gets this out in time

    (request,) = receiver.wait_for_requests(1)
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER.lower()], request.body, now=time.time())
    assert not verify_signature("wrong", request.headers[SIGNATURE_HEADER.lower()], request.body)
    assert request.headers["x-anjian-event-id"] == event.id
    (subscription,) = store.subscriptions.list()
    assert request.headers["idempotency-key"] == idempotency_key(event.id, "r1", subscription.id)
    assert request.headers["webhook-id"] == request.headers["idempotency-key"]
    assert Webhook(SECRET.encode()).verify(request.body, request.headers)["event"]["id"] == event.id
    payload = json.loads(request.body)
    assert payload["schema_version"] == 1
    assert payload["kind"] == "event.created"
    assert payload["event"]["id"] == event.id
    assert payload["event"]["camera_id"] == "cam-1"
    assert payload["event"]["behaviour"] == "open_flame"
    assert payload["event"]["severity"] == "red"
    assert payload["event"]["started_at"] == "2023-11-14T22:13:20Z"
    assert payload["event"]["snapshot_url"] == f"/events/{event.id}/snapshot.jpg"
    assert payload["event"]["boxes"] == [
        {"class_name": "fire", "confidence": 0.87, "xyxy_norm": [0.1, 0.2, 0.3, 0.4]}
    ]
    wait_until(lambda: only_delivery(store).status is DeliveryStatus.DELIVERED)
    delivery = only_delivery(store)
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 200, None)


def test_receiver_failing_twice_gets_event_on_third_attempt(
    receiver: Receiver, deliver_one_event: DeliverOneEvent
) -> None:
    receiver.statuses = [500, 500]

    delivery = deliver_one_event(
        WebhookConfig(url=receiver.url, max_attempts=5), until=DeliveryStatus.DELIVERED
    )

    requests = receiver.wait_for_requests(3)
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (3, 200, None)
    assert len({r.body for r in requests}) == 1, "every retry sends the same body"
    assert len({r.headers["idempotency-key"] for r in requests}) == 1
    assert SIGNATURE_HEADER.lower() not in requests[0].headers, "no secret, no signature"


def test_unreachable_url_fails_after_max_attempts_with_last_error(deliver_one_event: DeliverOneEvent) -> None:
    url = f"http://127.0.0.1:{unused_port()}/hook"

    delivery = deliver_one_event(
        WebhookConfig(url=url, max_attempts=3, timeout_s=2), until=DeliveryStatus.FAILED
    )

    assert delivery.attempts == 3
    assert delivery.last_status_code is None
    assert delivery.last_error is not None and delivery.last_error.startswith("ConnectError")
    assert delivery.next_attempt_at is None


def test_receiver_answering_500_until_max_attempts_records_status_and_body(
    receiver: Receiver, deliver_one_event: DeliverOneEvent
) -> None:
    receiver.statuses = [503, 503]

    delivery = deliver_one_event(WebhookConfig(url=receiver.url, max_attempts=2), until=DeliveryStatus.FAILED)

    assert (delivery.attempts, delivery.last_status_code) == (2, 503)
    assert delivery.last_error == "HTTP 503: receiver says no"


def test_pending_delivery_is_sent_after_restart(
    tmp_path: Path, receiver: Receiver, make_dispatcher: Callable[..., WebhookDispatcher]
) -> None:
    storage = StorageConfig(dir=tmp_path / "data")
    before_crash = EventStore.from_config(storage)
    before_crash.subscriptions.sync_config([WebhookConfig(url=receiver.url)])
    event = make_event()
    before_crash.upsert_event(event)  # stored, never dispatched
    before_crash.close()

    after_restart = EventStore.from_config(storage)
    dispatcher = WebhookDispatcher(after_restart)
    try:
        dispatcher.start()
        (request,) = receiver.wait_for_requests(1)
        assert json.loads(request.body)["event"]["id"] == event.id
        wait_until(lambda: only_delivery(after_restart).status is DeliveryStatus.DELIVERED)
    finally:
        dispatcher.stop()
        after_restart.close()


def test_stop_returns_promptly_and_leaves_pending_rows(
    store: EventStore, make_dispatcher: Callable[..., WebhookDispatcher]
) -> None:
    dispatcher = make_dispatcher([WebhookConfig(url="http://127.0.0.1:9/hook")])
    dispatcher.start()
    assert dispatcher.is_running

    dispatcher.stop(timeout_s=WAIT_S)

    assert not dispatcher.is_running
    with pytest.raises(RuntimeError, match="cannot be restarted"):
        dispatcher.start()


def test_a_url_the_resolver_refuses_fails_its_own_delivery_and_the_others_still_go_out(
    receiver: Receiver, store: EventStore
) -> None:
    # Stored before URLs were checked: resolving "a..b" raises UnicodeError, no httpx.HTTPError.
    bad = store.subscriptions.create(SubscriptionSpec(url="http://a..b/hook"))
    good = store.subscriptions.create(SubscriptionSpec(url=receiver.url))
    event = make_event()
    store.upsert_event(event)
    dispatcher = WebhookDispatcher(store, backoff_base_s=60.0, backoff_max_s=60.0)
    try:
        attempted = dispatcher.deliver_due()
    finally:
        dispatcher.stop()

    assert attempted == 2
    (request,) = receiver.wait_for_requests(1)
    assert request.headers["x-anjian-event-id"] == event.id
    by_subscription = {d.subscription_id: d for d in store.outbox.list()}
    assert by_subscription[good.id].status is DeliveryStatus.DELIVERED
    failed = by_subscription[bad.id]
    assert (failed.status, failed.attempts) == (DeliveryStatus.PENDING, 1), "a failed attempt, retried"
    assert failed.next_attempt_at is not None
    assert failed.last_error is not None and failed.last_error.startswith("UnicodeError")


# ------------------------------------------------ unit checks (MockTransport, fake clock)


def test_a_receivers_error_page_is_kept_as_one_short_printable_line(tmp_path: Path) -> None:
    """The first 200 characters of any non-2xx page went into ``last_error`` (``GET /webhooks/deliveries``)
    and the log: an admin could read the error pages of services only the plant host reaches."""
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"))
    page = "<html>\n  <title>500</title>\x1b[2J\n" + "internal-only page: db_password=hunter2 " * 10

    def internal(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text=page)

    delivery = deliver_once_and_close(store, internal, backoff_base_s=60.0)

    assert delivery.last_status_code == 500
    assert delivery.last_error is not None
    excerpt = delivery.last_error.removeprefix("HTTP 500: ")
    assert excerpt.startswith("<html> <title>500</title>\\x1b[2J internal-only page:")
    assert len(excerpt) == 80 and excerpt.isprintable()


def test_failed_attempts_back_off_exponentially_by_the_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"), clock=clock)
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500 if len(calls) < 4 else 204)

    url = "http://control-room.example/hook"
    store.subscriptions.sync_config([WebhookConfig(url=url, max_attempts=10)])
    dispatcher = WebhookDispatcher(
        store,
        transport=httpx.MockTransport(handle),
        clock=clock,
        backoff_base_s=2.0,
        backoff_max_s=5.0,
    )
    try:
        store.upsert_event(make_event())
        schedule = []
        for _ in range(3):
            assert dispatcher.deliver_due() == 1
            schedule.append(only_delivery(store).next_attempt_at)
            assert dispatcher.deliver_due() == 0, "not due again until the backoff elapses"
            clock.now = only_delivery(store).next_attempt_at or clock.now
        assert dispatcher.deliver_due() == 1
    finally:
        dispatcher.stop()
        store.close()

    start = 1_800_000_000.0
    assert schedule == [start + 2.0, start + 2.0 + 4.0, start + 2.0 + 4.0 + 5.0]
    assert only_delivery(store).status is DeliveryStatus.DELIVERED


def test_signature_uses_clock_time_and_body(tmp_path: Path) -> None:
    clock = FakeClock(1_800_000_123.9)
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"), clock=clock)
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    url = "https://control-room.example/hook"
    store.subscriptions.sync_config([WebhookConfig(url=url, secret=SecretStr(SECRET))])
    dispatcher = WebhookDispatcher(
        store,
        transport=httpx.MockTransport(handle),
        clock=clock,
    )
    try:
        store.upsert_event(make_event(revision=4, ended_at=1_700_000_100.0))
        dispatcher.deliver_due()
    finally:
        dispatcher.stop()
        store.close()

    (request,) = seen
    body = request.content
    assert request.headers[SIGNATURE_HEADER] == sign_payload(SECRET, body, 1_800_000_123)
    assert request.headers[SIGNATURE_HEADER].startswith("t=1800000123,v1=")
    assert request.headers["X-Anjian-Event-Kind"] == "event.ended"
    assert json.loads(body)["kind"] == "event.ended"
    assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER], body, now=clock.now)
    assert not verify_signature(SECRET, request.headers[SIGNATURE_HEADER], body + b" ", now=clock.now)
    assert not verify_signature(SECRET, request.headers[SIGNATURE_HEADER], body, now=clock.now + 301)


def test_a_batch_longer_than_its_lease_is_renewed_and_sent_once(tmp_path: Path) -> None:
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"))
    sent: list[str] = []
    lock = threading.Lock()

    def slow_receiver(request: httpx.Request) -> httpx.Response:
        time.sleep(0.15)  # five of these take 0.75 s: several times the 0.2 s lease
        with lock:
            sent.append(request.headers["Idempotency-Key"])
        return httpx.Response(204)

    store.subscriptions.create(SubscriptionSpec(url="http://slow.example/hook", timeout_s=1.0))
    for _ in range(5):
        store.upsert_event(make_event())
    dispatcher = WebhookDispatcher(
        store, transport=httpx.MockTransport(slow_receiver), claim_batch=5, workers=3, lease_s=0.2
    )
    dispatcher.start()
    try:
        wait_until(lambda: store.outbox.count(DeliveryStatus.DELIVERED) == 5, 20)
    finally:
        dispatcher.stop()
        store.close()

    assert sorted(sent) == sorted(set(sent)) and len(sent) == 5, "the idle workers never took a leased row"


def test_each_success_is_recorded_before_the_next_post_of_its_batch(tmp_path: Path) -> None:
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"))
    statuses_seen: list[list[DeliveryStatus]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        statuses_seen.append([d.status for d in store.outbox.list()])
        return httpx.Response(204)

    store.subscriptions.create(SubscriptionSpec(url="http://receiver.example/hook"))
    for _ in range(3):
        store.upsert_event(make_event())
    dispatcher = WebhookDispatcher(store, transport=httpx.MockTransport(receiver), claim_batch=3)
    try:
        assert dispatcher.deliver_due() == 3
    finally:
        dispatcher.stop()
        store.close()

    # What a kill -9 during the third POST would send again: only the third.
    delivered, pending = DeliveryStatus.DELIVERED, DeliveryStatus.PENDING
    assert statuses_seen == [
        [pending, pending, pending],
        [delivered, pending, pending],
        [delivered, delivered, pending],
    ]


def test_renewal_leaves_rows_settled_or_rescheduled_since_the_claim_alone(
    store: EventStore,
) -> None:
    store.subscriptions.create(SubscriptionSpec(url="http://receiver.example/hook"))
    for _ in range(3):
        store.upsert_event(make_event())
    now = time.time()
    first, second, third = store.outbox.claim_due(now=now, lease_s=5.0, limit=3)
    store.outbox.mark_delivered({first.id: 200}, now=now)
    store.outbox.mark_attempt_failed(
        second.id, error="HTTP 500", status_code=500, retry_at=now + 2.0, now=now
    )

    renewed = store.outbox.renew([first.id, second.id, third.id], leased_until=now + 5.0, until=now + 11.0)

    assert renewed == [third.id]
    by_id = {d.id: d for d in store.outbox.list()}
    assert by_id[first.id].next_attempt_at is None
    assert by_id[second.id].next_attempt_at == now + 2.0
    assert by_id[third.id].next_attempt_at == now + 11.0


def test_a_receiver_that_does_not_answer_is_probed_with_one_delivery_and_the_others_wait_uncounted(
    tmp_path: Path,
) -> None:
    """Each row of a burst to a hung receiver waited its timeout in turn (and spent an attempt on it)."""
    clock = FakeClock()
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"), clock=clock)
    tried: list[str] = []
    answering = threading.Event()

    def hung_until_told(request: httpx.Request) -> httpx.Response:
        tried.append(request.headers["Idempotency-Key"])
        if not answering.is_set():
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(204)

    store.subscriptions.create(SubscriptionSpec(url="http://hung.example/hook", max_attempts=3))
    store.upsert_events([(make_event(snapshot_jpeg=None), None) for _ in range(5)])
    dispatcher = WebhookDispatcher(
        store, transport=httpx.MockTransport(hung_until_told), clock=clock, backoff_base_s=2.0
    )
    try:
        assert dispatcher.deliver_due() == 5
        first, *others = store.outbox.list()
        assert tried == [first.idempotency_key], "one timeout, not five in a row"
        assert (first.attempts, first.next_attempt_at) == (1, clock.now + 2.0)
        for delivery in others:
            assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0), "held: no attempt"
            assert delivery.next_attempt_at == first.next_attempt_at
            assert (
                delivery.last_error == f"held back: no answer to delivery {first.id} (ReadTimeout: timed out)"
            )
        store.upsert_event(make_event(snapshot_jpeg=None))  # a later batch: no try before the probe's retry
        assert dispatcher.deliver_due() == 1
        assert len(tried) == 1 and store.outbox.list()[-1].next_attempt_at == first.next_attempt_at

        answering.set()
        clock.now += 2.0
        assert dispatcher.deliver_due() == 6
    finally:
        dispatcher.stop()
        store.close()

    delivered = store.outbox.list()
    assert tried[1:] == [d.idempotency_key for d in delivered], "the probe first, then the rest in order"
    assert [(d.status, d.attempts) for d in delivered] == [(DeliveryStatus.DELIVERED, 2)] + [
        (DeliveryStatus.DELIVERED, 1)
    ] * 5


def test_a_receiver_that_hangs_holds_up_no_other_subscription_of_its_batch(tmp_path: Path) -> None:
    """One worker claimed the whole burst and POSTed it in turn: every other receiver's rows waited
    behind the hung one's timeout (a robot's 8 cards arrived at 0, 3, 6 ... 21 s)."""
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"))
    answer_hung = threading.Event()
    fast: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "hung.example":
            answer_hung.wait(60)  # accepts, and says nothing until the test lets it
        else:
            fast.append(request.headers["Idempotency-Key"])
        return httpx.Response(204)

    store.subscriptions.create(SubscriptionSpec(url="http://hung.example/hook", timeout_s=60))
    store.subscriptions.create(SubscriptionSpec(url="http://fast.example/hook"))
    store.upsert_events([(make_event(snapshot_jpeg=None), None) for _ in range(4)])  # one burst, interleaved
    dispatcher = WebhookDispatcher(store, transport=httpx.MockTransport(handle), workers=1, lease_s=120.0)
    sender = threading.Thread(target=dispatcher.deliver_due)
    sender.start()
    try:
        assert wait_for(lambda: len(fast) == 4), "the other receiver's rows went while the hung one held"
    finally:
        answer_hung.set()
        sender.join(60)
        dispatcher.stop()
        store.close()

    assert store.outbox.count(DeliveryStatus.DELIVERED) == 8


def test_delivery_to_a_deactivated_subscription_is_a_dead_letter_without_sending(tmp_path: Path) -> None:
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"))

    def handle(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"nothing should be sent, got {request.url}")

    subscription = store.subscriptions.create(SubscriptionSpec(url="http://removed.example/hook"))
    dispatcher = WebhookDispatcher(store, transport=httpx.MockTransport(handle))
    try:
        store.upsert_event(make_event())
        store.subscriptions.deactivate(subscription.id)
        dispatcher.deliver_due()
    finally:
        dispatcher.stop()
        store.close()

    delivery = only_delivery(store)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 0)
    assert delivery.last_error == "the webhook subscription is no longer active"


def test_retries_go_on_for_the_whole_retry_window_then_dead_letter(tmp_path: Path) -> None:
    clock = FakeClock()
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"), clock=clock)
    store.subscriptions.create(SubscriptionSpec(url="http://down.example/hook", retry_for_s=86_400))
    dispatcher = WebhookDispatcher(
        store,
        transport=httpx.MockTransport(lambda _request: httpx.Response(503)),
        clock=clock,
        backoff_base_s=2.0,
        backoff_max_s=900.0,
    )
    start = clock.now
    try:
        store.upsert_event(make_event())
        while only_delivery(store).status is DeliveryStatus.PENDING:
            clock.now = only_delivery(store).next_attempt_at or clock.now
            assert dispatcher.deliver_due() == 1
    finally:
        dispatcher.stop()
        store.close()

    delivery = only_delivery(store)
    assert delivery.status is DeliveryStatus.FAILED
    assert clock.now - start >= 86_400 - 900, "retried for (nearly) the whole 24 h window"
    assert clock.now - start <= 86_400
    assert 100 < delivery.attempts < 120, "backoff capped at 15 min: about 96 attempts a day, plus the ramp"


def test_a_webhook_that_stays_down_is_logged_once_not_per_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"), clock=clock)
    metrics = ServiceMetrics(store)
    subscription = store.subscriptions.create(SubscriptionSpec(url="http://down.example/hook"))
    dispatcher = WebhookDispatcher(
        store,
        transport=httpx.MockTransport(lambda _request: httpx.Response(503)),
        clock=clock,
        backoff_base_s=1.0,
        metrics=metrics,
    )
    try:
        for _ in range(5):
            store.upsert_event(make_event())
        with caplog.at_level(logging.WARNING, logger="anjian.service.webhooks"):
            for _ in range(4):  # 4 rounds x 5 deliveries, within a minute of the monotonic clock
                assert dispatcher.deliver_due() == 5
                clock.now += 20.0
    finally:
        dispatcher.stop()
        store.close()

    warnings = [r for r in caplog.records if r.name == "anjian.service.webhooks"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "at most one line a minute" in warnings[0].getMessage()
    text = metrics.render().decode()
    assert f'anjian_webhook_failed_attempts_total{{subscription_id="{subscription.id}"}} 20.0' in text
    assert "anjian_webhook_failure_log_suppressed_total 19.0" in text


def test_failure_log_says_how_many_lines_it_left_out_and_when_the_webhook_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = FailureLog(interval_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="anjian.service.webhooks"):
        assert log.failed(7, logging.WARNING, "attempt %d failed", 1)
        for attempt in range(2, 6):
            now[0] += 10.0
            assert not log.failed(7, logging.WARNING, "attempt %d failed", attempt)
        assert log.failed(8, logging.WARNING, "another webhook, attempt %d failed", 1), "webhooks apart"
        now[0] += 30.0
        assert log.failed(7, logging.WARNING, "attempt %d failed", 6)
        log.succeeded(7, "http://hook.example/")

    lines = [r.getMessage() for r in caplog.records]
    assert lines[2] == "attempt 6 failed (4 similar line(s) of this webhook left out in the last 60s)"
    assert lines[3] == "webhook http://hook.example/ answers again after 6 failed attempt(s)"


@pytest.mark.parametrize(
    ("attempts", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (500, 30.0)], ids=str
)
def test_backoff_doubles_up_to_the_cap(attempts: int, expected: float) -> None:
    assert backoff_delay_s(attempts, base_s=1.0, max_s=30.0) == expected


@pytest.mark.parametrize(
    "header",
    ["", "t=abc,v1=00", "v1=00", "t=1", "garbage"],
    ids=["empty", "bad-t", "no-t", "no-v1", "garbage"],
)
def test_verify_signature_rejects_malformed_headers(header: str) -> None:
    assert not verify_signature(SECRET, header, b"{}")


def test_idempotency_key_names_event_change_and_subscription() -> None:
    assert idempotency_key("abc", "r2", 7) == "abc:r2:7"
    assert idempotency_key("abc", "a15", 7) != idempotency_key("abc", "a15", 8)


def test_the_dispatcher_prunes_deliveries_settled_longer_ago_than_it_keeps_them(
    receiver: Receiver, store: EventStore, make_dispatcher: Callable[..., WebhookDispatcher]
) -> None:
    clock = FakeClock(1_800_000_000.0)
    dispatcher = make_dispatcher([WebhookConfig(url=receiver.url)], clock=clock, keep_settled_s=30 * 86_400.0)
    store.upsert_event(make_event())
    assert dispatcher.deliver_due() == 1
    assert dispatcher.prune_settled() == 0  # delivered just now

    clock.now += 31 * 86_400
    assert dispatcher.prune_settled() == 1
    assert store.outbox.list() == []
    assert make_dispatcher([WebhookConfig(url=receiver.url)]).prune_settled() == 0  # kept for ever by default


def test_the_first_prune_comes_soon_after_start(
    receiver: Receiver,
    store: EventStore,
    make_dispatcher: Callable[..., WebhookDispatcher],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first prune came an hour after start: a service restarted more often never pruned its outbox."""
    monkeypatch.setattr(webhooks_module, "_FIRST_PRUNE_AFTER_S", 0.05)  # a minute in the service
    clock = FakeClock(1_800_000_000.0)
    dispatcher = make_dispatcher([WebhookConfig(url=receiver.url)], clock=clock, keep_settled_s=30 * 86_400.0)
    store.upsert_event(make_event())
    assert dispatcher.deliver_due() == 1
    clock.now += 31 * 86_400

    dispatcher.start()

    wait_until(lambda: store.outbox.list() == [], 10.0)


def test_a_worker_whose_lease_ran_out_leaves_the_rows_another_worker_took_alone(store: EventStore) -> None:
    """A heartbeat that could not renew (database busy past the lease): another worker re-claims the rows.
    The first one's late renewal, release and failure must not take them back or undo their delivery."""
    clock = FakeClock(1_800_000_000.0)
    store.subscriptions.create(SubscriptionSpec(url="http://receiver.example/hook", retry_for_s=3600))
    for _ in range(2):
        store.upsert_event(make_event(snapshot_jpeg=None))
    first, second = (
        LeaseKeeper(store.outbox, clock=clock, lease_s=6.0),
        LeaseKeeper(store.outbox, clock=clock, lease_s=6.0),
    )
    lost, lost_rows = first.claim(limit=2)
    clock.now += 7  # the first's lease ran out unrenewed
    _taken, taken_rows = second.claim(limit=2)
    assert [d.id for d in taken_rows] == [d.id for d in lost_rows]

    assert first.renew_all() == 0 and first.is_expired(lost)  # its late renewal takes nothing back
    store.outbox.release(lost.delivery_ids, leased_until=lost.leased_until, now=clock.now)
    assert LeaseKeeper(store.outbox, clock=clock, lease_s=6.0).claim(limit=2)[1] == []  # still the second's
    delivered = taken_rows[0]
    store.outbox.mark_delivered({delivered.id: 200}, now=clock.now)
    store.outbox.mark_attempt_failed(  # the first's POST of it timed out meanwhile
        delivered.id, error="timeout", status_code=None, retry_at=clock.now + 2, now=clock.now
    )
    after = store.outbox.get(delivered.id)
    assert after is not None and after.status is DeliveryStatus.DELIVERED and after.attempts == 1


def test_a_renewal_keeps_the_rows_the_claim_still_holds_and_drops_one_another_worker_took(
    store: EventStore,
) -> None:
    clock = FakeClock(1_800_000_000.0)
    store.subscriptions.create(SubscriptionSpec(url="http://receiver.example/hook"))
    for _ in range(3):
        store.upsert_event(make_event(snapshot_jpeg=None))
    keeper = LeaseKeeper(store.outbox, clock=clock, lease_s=6.0)
    claim, (sent, taken, kept) = keeper.claim(limit=3)
    store.outbox.mark_delivered({sent.id: 204}, now=clock.now)
    clock.now += 7  # the lease ran out before the heartbeat came: another worker takes the next row
    assert [d.id for d in store.outbox.claim_due(now=clock.now, lease_s=6.0, limit=1)] == [taken.id]

    assert keeper.renew_all() == 1
    assert not keeper.is_expired(claim)
    assert not keeper.holds(claim, taken.id)  # the worker skips it: the other one sends it
    assert keeper.holds(claim, kept.id)


@pytest.mark.parametrize(
    ("status", "retry_after", "wait_s"),
    [
        (503, "120", 120.0),
        (429, "Thu, 01 Jan 2027 00:10:00 GMT", 600.0),
        (503, "soon", None),
        (500, "120", None),
    ],
    ids=["seconds", "http-date", "unreadable", "not-asked"],
)
def test_a_receiver_asking_to_wait_is_retried_no_sooner(
    tmp_path: Path, status: int, retry_after: str, wait_s: float | None
) -> None:
    clock = FakeClock(1_798_761_600.0)  # 2027-01-01 00:00:00 UTC
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"), clock=clock)
    body = "x" * 5_000_000  # a receiver answering megabytes: only the start is read and kept

    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Retry-After": retry_after}, text=body)

    delivery = deliver_once_and_close(store, busy, clock=clock, backoff_base_s=2.0)

    assert delivery.last_error == f"HTTP {status}: " + "x" * 80
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at - clock.now == (wait_s if wait_s is not None else 2.0)
