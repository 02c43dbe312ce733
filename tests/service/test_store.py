"""EventStore over a real SQLite file and a real PostgreSQL: upserts, revision dedup, filters, paging, outbox."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import event as orm_event
from sqlalchemy import text

from anjian.pipeline.event import Behaviour, EventBox, RiskLevel
from anjian.service.config import SlaConfig, StorageConfig
from anjian.service.errors import RevisionConflictError
from anjian.service.lifecycle import AlertState
from anjian.service.records import DeliveryStatus
from anjian.service.store import EventStore
from anjian.service.subscriptions import SubscriptionSpec
from anjian.service.tables import EventRow
from tests.factories import make_event
from tests.service.conftest import FakeClock

HOOK = "http://127.0.0.1:9/hook"


def test_sqlite_store_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"))
    try:
        assert (tmp_path / "data" / "anjian.db").is_file()
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        store.close()


def test_upsert_inserts_event_and_get_returns_every_field(store: EventStore, clock: FakeClock) -> None:
    event = make_event(ended_at=1_700_000_010.0)

    result = store.upsert_event(event, snapshot_path="evidence/cam-1/x/snapshot.jpg")

    assert result.is_applied
    stored = store.get_event(event.id)
    assert stored == result.event
    assert stored is not None
    assert (stored.id, stored.revision, stored.camera_id, stored.version) == (event.id, 1, "cam-1", 1)
    assert stored.behaviour is Behaviour.OPEN_FLAME
    assert stored.severity is stored.detected_severity is RiskLevel.RED
    assert stored.state is AlertState.RAISED
    assert (stored.started_at, stored.last_seen_at, stored.ended_at) == (
        event.started_at,
        event.last_seen_at,
        1_700_000_010.0,
    )
    assert stored.boxes == (EventBox("fire", 0.87, (0.1, 0.2, 0.3, 0.4)),)
    assert (stored.zone_id, stored.model_version, stored.message) == (
        "zone-a",
        "anjian-demo-1",
        event.message,
    )
    assert stored.snapshot_path == "evidence/cam-1/x/snapshot.jpg"
    assert stored.created_at == stored.updated_at == stored.state_changed_at == clock.now
    (raised,) = store.audit_trail(event.id)
    assert (raised.actor, raised.action, raised.from_state, raised.to_state) == (
        "pipeline",
        "raise",
        None,
        AlertState.RAISED,
    )


def test_get_event_returns_none_for_unknown_id(store: EventStore) -> None:
    assert store.get_event("nope") is None


def test_higher_revision_updates_event_and_keeps_created_at_and_snapshot(
    store: EventStore, clock: FakeClock
) -> None:
    first = make_event()
    store.upsert_event(first, snapshot_path="evidence/cam-1/a/snapshot.jpg")
    clock.now += 5

    result = store.upsert_event(
        make_event(id=first.id, revision=2, last_seen_at=1_700_000_009.0, confidence=0.95, boxes=())
    )

    assert result.is_applied
    stored = result.event
    assert (stored.revision, stored.last_seen_at, stored.confidence, stored.boxes, stored.version) == (
        2,
        1_700_000_009.0,
        0.95,
        (),
        2,
    )
    assert stored.snapshot_path == "evidence/cam-1/a/snapshot.jpg"
    assert stored.created_at == clock.now - 5
    assert stored.updated_at == clock.now
    assert len(store.audit_trail(first.id)) == 1, "an update is not a lifecycle step"


@pytest.mark.parametrize("revision", [1, 2], ids=["older", "duplicate"])
def test_stale_or_duplicate_revision_is_ignored_and_enqueues_nothing(
    store: EventStore, revision: int
) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    event = make_event(revision=2, confidence=0.9)
    store.upsert_event(event)

    result = store.upsert_event(make_event(id=event.id, revision=revision, confidence=0.1))

    assert not result.is_applied
    assert result.deliveries_enqueued == 0
    assert (result.event.revision, result.event.confidence) == (2, 0.9)
    assert len(store.outbox.list(event_id=event.id)) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site_id", "site-2"),
        ("workshop_id", "freezing-1"),
        ("camera_id", "cam-2"),
        ("behaviour", Behaviour.SMOKING),
    ],
)
def test_a_revision_that_changes_what_identifies_its_incident_is_refused(
    store: EventStore, field: str, value: object
) -> None:
    first = make_event()
    store.upsert_event(first)
    subscription = store.subscriptions.create(SubscriptionSpec(url="http://receiver.example/hook"))

    with pytest.raises(RevisionConflictError, match=f"{field} is '{value}'") as info:
        store.upsert_event(replace(first, revision=2, **{field: value}))

    assert (info.value.field, info.value.stored, info.value.received) == (
        field,
        str(getattr(first, field)),
        str(value),
    )
    stored = store.get_event(first.id)
    assert stored is not None and (stored.revision, getattr(stored, field)) == (1, getattr(first, field))
    assert [d for d in store.outbox.list() if d.subscription_id == subscription.id] == []


def test_upsert_enqueues_one_pending_delivery_per_active_subscription(
    store: EventStore, clock: FakeClock
) -> None:
    first = store.subscriptions.create(SubscriptionSpec(url=HOOK, retry_for_s=3600))
    second = store.subscriptions.create(SubscriptionSpec(url="http://b.example/x"))
    gone = store.subscriptions.create(SubscriptionSpec(url="http://c.example/x"))
    store.subscriptions.deactivate(gone.id)
    event = make_event()

    result = store.upsert_event(event)

    assert result.deliveries_enqueued == 2
    deliveries = store.outbox.list(event_id=event.id)
    assert [d.url for d in deliveries] == [HOOK, "http://b.example/x"]
    assert [d.idempotency_key for d in deliveries] == [
        f"{event.id}:r1:{first.id}",
        f"{event.id}:r1:{second.id}",
    ]
    assert deliveries[0].retry_until == clock.now + 3600
    for delivery in deliveries:
        assert delivery.status is DeliveryStatus.PENDING
        assert (delivery.revision, delivery.attempts, delivery.next_attempt_at) == (1, 0, clock.now)
        assert (delivery.kind, delivery.payload["kind"]) == ("event.created", "event.created")
        assert delivery.payload["schema_version"] == 1
        assert delivery.payload["event"]["id"] == event.id
        assert delivery.payload["change"] is None
    assert store.outbox.next_due_at() == clock.now
    assert store.outbox.count(DeliveryStatus.PENDING) == 2


@pytest.mark.parametrize(
    ("spec", "is_wanted"),
    [
        (SubscriptionSpec(url=HOOK), True),
        (SubscriptionSpec(url=HOOK, kinds=("event.created",)), True),
        (SubscriptionSpec(url=HOOK, kinds=("event.escalated",)), False),
        (SubscriptionSpec(url=HOOK, site_ids=("site-1",)), True),
        (SubscriptionSpec(url=HOOK, site_ids=("site-2",)), False),
        (SubscriptionSpec(url=HOOK, camera_ids=("cam-1", "cam-2")), True),
        (SubscriptionSpec(url=HOOK, camera_ids=("cam-2",)), False),
        (SubscriptionSpec(url=HOOK, behaviours=("open_flame",)), True),
        (SubscriptionSpec(url=HOOK, behaviours=("smoking",)), False),
    ],
    ids=[
        "all",
        "kind",
        "other-kind",
        "site",
        "other-site",
        "camera",
        "other-camera",
        "behaviour",
        "other-behaviour",
    ],
)
def test_subscription_filters_choose_what_is_enqueued(
    store: EventStore, spec: SubscriptionSpec, is_wanted: bool
) -> None:
    store.subscriptions.create(spec)

    result = store.upsert_event(make_event())

    assert result.deliveries_enqueued == int(is_wanted)


@pytest.mark.parametrize(
    ("revision", "ended_at", "kind"),
    [(1, None, "event.created"), (2, None, "event.updated"), (3, 1_700_000_020.0, "event.ended")],
    ids=["created", "updated", "ended"],
)
def test_delivery_kind_follows_revision_and_end(
    store: EventStore, revision: int, ended_at: float | None, kind: str
) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    store.upsert_event(make_event(id="e1", revision=revision, ended_at=ended_at))

    (delivery,) = store.outbox.list(event_id="e1")

    assert delivery.payload["kind"] == kind


def _seed(store: EventStore, clock: FakeClock) -> None:
    rows = [
        ("a", "cam-1", Behaviour.OPEN_FLAME, RiskLevel.RED, 100.0),
        ("b", "cam-2", Behaviour.SMOKING, RiskLevel.ORANGE, 200.0),
        ("c", "cam-1", Behaviour.SMOKING, RiskLevel.ORANGE, 300.0),
        ("d", "cam-2", Behaviour.OPEN_FLAME, RiskLevel.RED, 400.0),
        ("e", "cam-1", Behaviour.OPEN_FLAME, RiskLevel.YELLOW, 400.0),
    ]
    for event_id, camera_id, behaviour, severity, started_at in rows:
        store.upsert_event(
            make_event(
                id=event_id,
                camera_id=camera_id,
                workshop_id="w2" if event_id == "b" else "polishing-1",
                behaviour=behaviour,
                severity=severity,
                started_at=started_at,
                last_seen_at=started_at + 1,
            )
        )
        clock.now += 1


def test_list_events_is_newest_first_with_id_breaking_ties(store: EventStore, clock: FakeClock) -> None:
    _seed(store, clock)

    assert [e.id for e in store.list_events().items] == ["e", "d", "c", "b", "a"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"camera_id": "cam-1"}, ["e", "c", "a"]),
        ({"workshop_id": "w2"}, ["b"]),
        ({"site_id": "site-1"}, ["e", "d", "c", "b", "a"]),
        ({"site_id": "site-9"}, []),
        ({"behaviours": [Behaviour.SMOKING]}, ["c", "b"]),
        ({"severities": [RiskLevel.RED]}, ["d", "a"]),
        ({"severities": [RiskLevel.RED, RiskLevel.YELLOW]}, ["e", "d", "a"]),
        ({"states": [AlertState.RAISED]}, ["e", "d", "c", "b", "a"]),
        ({"states": [AlertState.CLOSED]}, []),
        ({"since": 300.0}, ["e", "d", "c"]),
        ({"until": 300.0}, ["b", "a"]),
        ({"since": 200.0, "until": 400.0}, ["c", "b"]),
        ({"camera_id": "cam-1", "behaviours": [Behaviour.OPEN_FLAME], "severities": [RiskLevel.RED]}, ["a"]),
        ({"limit": 2}, ["e", "d"]),
    ],
    ids=[
        "camera",
        "workshop",
        "site",
        "other-site",
        "behaviour",
        "severity",
        "severities",
        "state",
        "other-state",
        "since",
        "until",
        "window",
        "combined",
        "limit",
    ],
)
def test_list_events_filters(
    store: EventStore, clock: FakeClock, filters: dict[str, object], expected: list[str]
) -> None:
    _seed(store, clock)

    assert [e.id for e in store.list_events(**filters).items] == expected  # type: ignore[arg-type]


def test_cursor_pages_cover_every_event_once_in_order_even_with_ties(
    store: EventStore, clock: FakeClock
) -> None:
    _seed(store, clock)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0

    while True:
        page = store.list_events(limit=2, cursor=cursor)
        seen += [e.id for e in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == ["e", "d", "c", "b", "a"]
    assert pages == 3
    filtered = store.list_events(camera_id="cam-1", limit=1)
    assert [e.id for e in store.list_events(camera_id="cam-1", cursor=filtered.next_cursor).items] == [
        "c",
        "a",
    ]


@pytest.mark.parametrize(
    "cursor", ["!!!", "bm90IGpzb24", "WzEsMiwzXQ", "WyJ4IiwieSJd"], ids=["b64", "json", "len", "type"]
)
def test_malformed_cursor_is_a_value_error(store: EventStore, cursor: str) -> None:
    with pytest.raises(ValueError, match="malformed cursor"):
        store.list_events(cursor=cursor)


def test_list_events_rejects_limit_below_one(store: EventStore) -> None:
    with pytest.raises(ValueError, match="limit must be >= 1"):
        store.list_events(limit=0)


def test_events_and_outbox_survive_reopening_the_database(tmp_path: Path) -> None:
    storage = StorageConfig(dir=tmp_path / "data")
    first = EventStore.from_config(storage)
    first.subscriptions.create(SubscriptionSpec(url=HOOK))
    event = make_event()
    first.upsert_event(event)
    first.close()

    second = EventStore.from_config(storage)
    try:
        assert second.get_event(event.id) is not None
        assert [d.status for d in second.outbox.list()] == [DeliveryStatus.PENDING]
    finally:
        second.close()


def test_claim_leases_delivery_until_lease_ends(store: EventStore, clock: FakeClock) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    store.upsert_event(make_event())

    [claimed] = store.outbox.claim_due(now=clock.now, lease_s=30.0)

    assert claimed.attempts == 0
    assert store.outbox.claim_due(now=clock.now + 29.0, lease_s=30.0) == []
    [again] = store.outbox.claim_due(now=clock.now + 30.0, lease_s=30.0)
    assert again.id == claimed.id


def test_claim_takes_the_oldest_due_batch_and_release_makes_the_rest_due(
    store: EventStore, clock: FakeClock
) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    events = [make_event() for _ in range(5)]
    for event in events:
        store.upsert_event(event)
        clock.now += 1

    first = store.outbox.claim_due(now=clock.now, lease_s=30.0, limit=3)
    rest = store.outbox.claim_due(now=clock.now, lease_s=30.0, limit=3)

    assert [d.event_id for d in first] == [e.id for e in events[:3]]
    assert [d.event_id for d in rest] == [e.id for e in events[3:]]
    assert store.outbox.claim_due(now=clock.now, lease_s=30.0, limit=3) == []
    store.outbox.release([d.id for d in first[1:]], leased_until=clock.now + 30.0, now=clock.now)
    assert [d.id for d in store.outbox.claim_due(now=clock.now, lease_s=30.0, limit=9)] == [
        d.id for d in first[1:]
    ]
    with pytest.raises(ValueError, match="limit must be >= 1"):
        store.outbox.claim_due(now=clock.now, lease_s=30.0, limit=0)


def test_a_batch_is_marked_delivered_in_one_go_or_not_at_all(store: EventStore, clock: FakeClock) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    store.upsert_event(make_event())
    store.upsert_event(make_event())
    one, two = store.outbox.list()

    with pytest.raises(KeyError, match="no webhook delivery with id 999"):
        store.outbox.mark_delivered({one.id: 200, 999: 200}, now=clock.now)
    assert {d.status for d in store.outbox.list()} == {DeliveryStatus.PENDING}

    assert store.outbox.mark_delivered({one.id: 200, two.id: 204}, now=clock.now) == 2
    assert [(d.status, d.last_status_code) for d in store.outbox.list()] == [
        (DeliveryStatus.DELIVERED, 200),
        (DeliveryStatus.DELIVERED, 204),
    ]


def test_marking_attempts_records_status_error_and_schedule(store: EventStore, clock: FakeClock) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    store.upsert_event(make_event())
    (delivery,) = store.outbox.list()

    retried = store.outbox.mark_attempt_failed(
        delivery.id, error="HTTP 500: boom", status_code=500, retry_at=clock.now + 2, now=clock.now
    )
    assert (retried.status, retried.attempts, retried.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert (retried.last_error, retried.next_attempt_at) == ("HTTP 500: boom", clock.now + 2)

    assert store.outbox.mark_delivered({delivery.id: 204}, now=clock.now + 3) == 1
    done = store.outbox.get(delivery.id)
    assert done is not None
    assert (done.status, done.attempts, done.last_status_code) == (DeliveryStatus.DELIVERED, 2, 204)
    assert (done.last_error, done.next_attempt_at, done.delivered_at) == (None, None, clock.now + 3)
    assert store.outbox.next_due_at() is None


def test_dead_letter_is_listed_and_redelivered_with_the_same_key(store: EventStore, clock: FakeClock) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    store.upsert_event(make_event())
    (delivery,) = store.outbox.list()
    store.outbox.mark_attempt_failed(
        delivery.id, error="gone", status_code=None, retry_at=None, now=clock.now
    )
    assert [d.id for d in store.outbox.list(status=DeliveryStatus.FAILED)] == [delivery.id]
    clock.now += 100

    again = store.outbox.redeliver(delivery.id, retry_for_s=600)

    assert (again.status, again.next_attempt_at, again.retry_until) == (
        DeliveryStatus.PENDING,
        clock.now,
        clock.now + 600,
    )
    assert again.idempotency_key == delivery.idempotency_key
    assert again.attempts == 0  # a subscription's max_attempts applies afresh
    assert store.outbox.list(status=DeliveryStatus.FAILED) == []


def test_settled_deliveries_past_their_keeping_time_are_pruned_and_pending_ones_never(
    store: EventStore, clock: FakeClock
) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    for _ in range(5):
        store.upsert_event(make_event())
    old_delivered, old_failed, old_pending, new_delivered, new_failed = store.outbox.list()
    store.outbox.mark_delivered({old_delivered.id: 200}, now=clock.now)
    store.outbox.mark_attempt_failed(
        old_failed.id, error="gone", status_code=None, retry_at=None, now=clock.now
    )
    clock.now += 40 * 86_400  # a pending delivery this old is still owed to its receiver
    store.outbox.mark_delivered({new_delivered.id: 200}, now=clock.now)
    store.outbox.mark_attempt_failed(
        new_failed.id, error="gone", status_code=None, retry_at=None, now=clock.now
    )

    assert store.outbox.prune(settled_before=clock.now - 30 * 86_400, batch=1) == 2
    assert [d.id for d in store.outbox.list()] == [old_pending.id, new_delivered.id, new_failed.id]


def test_mark_unknown_delivery_raises_key_error(store: EventStore, clock: FakeClock) -> None:
    with pytest.raises(KeyError, match="no webhook delivery with id 42"):
        store.outbox.mark_delivered({42: 200}, now=clock.now)


def test_config_webhooks_sync_adds_updates_and_deactivates(store: EventStore) -> None:
    from anjian.service.config import WebhookConfig

    first = store.subscriptions.sync_config(
        [WebhookConfig(url=HOOK), WebhookConfig(url="http://b.example/x")]
    )
    api = store.subscriptions.create(SubscriptionSpec(url="http://api.example/x"))

    second = store.subscriptions.sync_config([WebhookConfig(url=HOOK, secret="s" * 20, timeout_s=9)])

    assert second[0].id == first[0].id, "the same URL keeps its subscription"
    assert (second[0].secret, second[0].timeout_s) == ("s" * 20, 9)
    assert {s.url for s in store.subscriptions.list()} == {HOOK, api.url}
    assert store.subscriptions.get(first[1].id) is not None
    assert store.subscriptions.get(first[1].id).is_active is False  # type: ignore[union-attr]


def test_concurrent_writers_and_readers_do_not_fail(store: EventStore) -> None:
    store.subscriptions.create(SubscriptionSpec(url=HOOK))
    errors: list[BaseException] = []
    event_ids = [[f"t{t}-e{i}" for i in range(15)] for t in range(3)]

    def write(ids: list[str]) -> None:
        try:
            for event_id in ids:
                store.upsert_event(make_event(id=event_id, snapshot_jpeg=None))
                store.upsert_event(make_event(id=event_id, revision=2, snapshot_jpeg=None))
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised by the test
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(30):
                store.list_events(limit=50)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(ids,)) for ids in event_ids]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    events = store.list_events(limit=1000).items
    assert len(events) == 45
    assert all(e.revision == 2 for e in events)
    assert len(store.outbox.list()) == 90


def test_escalation_reads_only_the_overdue_alerts_a_chunk_at_a_time(
    store: EventStore, clock: FakeClock
) -> None:
    sla = SlaConfig(red_s=60, orange_s=900, max_escalations=3)
    for _ in range(30):  # raised 100 s ago: overdue when red, not when orange
        store.upsert_event(make_event(severity=RiskLevel.ORANGE))
    overdue = [store.upsert_event(make_event(severity=RiskLevel.RED)).event.id for _ in range(5)]
    clock.now += 100
    loaded: list[str] = []

    def count(target: EventRow, _context: object) -> None:
        loaded.append(target.id)

    orm_event.listen(EventRow, "load", count)
    try:
        escalated = store.escalate_overdue(sla, chunk=2)
    finally:
        orm_event.remove(EventRow, "load", count)

    assert sorted(e.id for e in escalated) == sorted(overdue)
    assert sorted(set(loaded)) == sorted(overdue), "the 30 alerts within their deadline were never loaded"
    assert store.escalate_overdue(sla) == [], "the next deadline runs from the escalation"
