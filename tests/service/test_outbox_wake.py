"""The outbox tells its due listeners (the webhook dispatcher) after every commit that made a delivery due,
whoever wrote it: ingest, a lifecycle action, an escalation, a redelivery; and never for one that did not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from anjian.pipeline.event import RiskLevel
from anjian.service.config import SlaConfig
from anjian.service.lifecycle import Action
from anjian.service.store import EventStore
from anjian.service.subscriptions import SubscriptionSpec
from tests.factories import make_event
from tests.service.conftest import FakeClock

HOOK = "http://127.0.0.1:9/hook"


class _Listener:
    """Counts calls and, at each call, how many deliveries a fresh read already sees (committed ones)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.seen: list[int] = []

    def __call__(self) -> None:
        self.seen.append(len(self.store.outbox.list()))


@pytest.fixture
def listener(store: EventStore) -> _Listener:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    listener = _Listener(store)
    store.outbox.add_due_listener(listener)
    return listener


def test_every_kind_of_write_that_enqueues_calls_the_listener_after_its_commit(
    store: EventStore, listener: _Listener, clock: FakeClock
) -> None:
    event = make_event(severity=RiskLevel.BLUE)
    store.upsert_event(event)
    assert listener.seen == [1], "a new revision: called once, its delivery already committed"

    store.upsert_event(event)
    assert listener.seen == [1], "a duplicate revision enqueues nothing: no call"

    clock.now += 10_000
    store.escalate_overdue(SlaConfig(blue_s=600))
    assert listener.seen == [1, 2]

    store.transition(event.id, Action.ACKNOWLEDGE, actor="op", note="seen")
    assert listener.seen == [1, 2, 3]

    first = store.outbox.list()[0]
    store.outbox.redeliver(first.id, retry_for_s=60)
    assert listener.seen == [1, 2, 3, 3], "a redelivery makes a delivery due again"


def test_a_write_without_a_matching_subscription_calls_nobody(store: EventStore) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK, kinds=("event.escalated",)))
    calls: list[None] = []
    store.outbox.add_due_listener(lambda: calls.append(None))
    store.upsert_event(make_event())
    assert calls == []


def test_a_removed_listener_is_not_called_and_others_still_are(
    store: EventStore, listener: _Listener
) -> None:
    calls: list[None] = []
    other: Callable[[], None] = lambda: calls.append(None)
    store.outbox.add_due_listener(other)
    store.outbox.remove_due_listener(listener)
    store.outbox.remove_due_listener(listener)  # twice: ignored
    store.upsert_event(make_event())
    assert listener.seen == [] and calls == [None]
