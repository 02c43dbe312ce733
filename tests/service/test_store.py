"""EventStore over a real SQLite file: upserts, revision dedup, filters, ordering, the outbox."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pipeline.event import Behaviour, EventBox, RiskLevel
from service.config import StorageConfig
from service.store import DeliveryStatus, EventStore
from tests.factories import make_event

HOOK = "http://127.0.0.1:9/hook"


class FakeClock:
    """A settable clock returning epoch seconds."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[EventStore]:
    store = EventStore.from_config(StorageConfig(dir=tmp_path / "data"), clock=clock)
    yield store
    store.close()


def test_store_creates_sqlite_file_in_wal_mode(tmp_path: Path, store: EventStore) -> None:
    assert (tmp_path / "data" / "anjian.db").is_file()
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_upsert_inserts_event_and_get_returns_every_field(store: EventStore, clock: FakeClock) -> None:
    event = make_event(ended_at=1_700_000_010.0)

    result = store.upsert_event(event, snapshot_path="evidence/cam-1/x/snapshot.jpg")

    assert result.is_applied
    stored = store.get_event(event.id)
    assert stored == result.event
    assert stored is not None
    assert (stored.id, stored.revision, stored.camera_id) == (event.id, 1, "cam-1")
    assert stored.behaviour is Behaviour.OPEN_FLAME
    assert stored.severity is RiskLevel.RED
    assert stored.state == "raised"
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
    assert stored.created_at == stored.updated_at == clock.now


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
    assert (stored.revision, stored.last_seen_at, stored.confidence, stored.boxes) == (
        2,
        1_700_000_009.0,
        0.95,
        (),
    )
    assert stored.snapshot_path == "evidence/cam-1/a/snapshot.jpg"
    assert stored.created_at == clock.now - 5
    assert stored.updated_at == clock.now


@pytest.mark.parametrize("revision", [1, 2], ids=["older", "duplicate"])
def test_stale_or_duplicate_revision_is_ignored_and_enqueues_nothing(
    store: EventStore, revision: int
) -> None:
    event = make_event(revision=2, confidence=0.9)
    store.upsert_event(event, webhook_urls=[HOOK])

    result = store.upsert_event(
        make_event(id=event.id, revision=revision, confidence=0.1), webhook_urls=[HOOK]
    )

    assert not result.is_applied
    assert result.deliveries_enqueued == 0
    assert result.event.revision == 2
    assert result.event.confidence == 0.9
    assert len(store.list_deliveries(event_id=event.id)) == 1


def test_upsert_enqueues_one_pending_delivery_per_distinct_url_with_payload(
    store: EventStore, clock: FakeClock
) -> None:
    event = make_event()

    result = store.upsert_event(event, webhook_urls=[HOOK, "http://b.example/x", HOOK])

    assert result.deliveries_enqueued == 2
    deliveries = store.list_deliveries(event_id=event.id)
    assert [d.url for d in deliveries] == [HOOK, "http://b.example/x"]
    for delivery in deliveries:
        assert delivery.status is DeliveryStatus.PENDING
        assert (delivery.revision, delivery.attempts, delivery.next_attempt_at) == (1, 0, clock.now)
        assert delivery.payload["schema_version"] == 1
        assert delivery.payload["kind"] == "event.created"
        assert delivery.payload["event"]["id"] == event.id
    assert store.next_delivery_due_at() == clock.now
    assert store.count_deliveries(DeliveryStatus.PENDING) == 2


@pytest.mark.parametrize(
    ("revision", "ended_at", "kind"),
    [(1, None, "event.created"), (2, None, "event.updated"), (3, 1_700_000_020.0, "event.ended")],
    ids=["created", "updated", "ended"],
)
def test_delivery_payload_kind_follows_revision_and_end(
    store: EventStore, revision: int, ended_at: float | None, kind: str
) -> None:
    store.upsert_event(make_event(id="e1", revision=revision, ended_at=ended_at), webhook_urls=[HOOK])

    (delivery,) = store.list_deliveries(event_id="e1")

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
                behaviour=behaviour,
                severity=severity,
                started_at=started_at,
                last_seen_at=started_at + 1,
            )
        )
        clock.now += 1


def test_list_events_is_newest_first_with_id_breaking_ties(store: EventStore, clock: FakeClock) -> None:
    _seed(store, clock)

    assert [e.id for e in store.list_events()] == ["e", "d", "c", "b", "a"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"camera_id": "cam-1"}, ["e", "c", "a"]),
        ({"behaviour": Behaviour.SMOKING}, ["c", "b"]),
        ({"severity": RiskLevel.RED}, ["d", "a"]),
        ({"since": 300.0}, ["e", "d", "c"]),
        ({"until": 300.0}, ["b", "a"]),
        ({"since": 200.0, "until": 400.0}, ["c", "b"]),
        ({"camera_id": "cam-1", "behaviour": Behaviour.OPEN_FLAME, "severity": RiskLevel.RED}, ["a"]),
        ({"limit": 2}, ["e", "d"]),
        ({"camera_id": "cam-9"}, []),
    ],
    ids=["camera", "behaviour", "severity", "since", "until", "window", "combined", "limit", "none"],
)
def test_list_events_filters(
    store: EventStore, clock: FakeClock, filters: dict[str, object], expected: list[str]
) -> None:
    _seed(store, clock)

    assert [e.id for e in store.list_events(**filters)] == expected  # type: ignore[arg-type]


def test_list_events_rejects_limit_below_one(store: EventStore) -> None:
    with pytest.raises(ValueError, match="limit must be >= 1"):
        store.list_events(limit=0)


def test_events_and_outbox_survive_reopening_the_database(tmp_path: Path) -> None:
    storage = StorageConfig(dir=tmp_path / "data")
    first = EventStore.from_config(storage)
    event = make_event()
    first.upsert_event(event, webhook_urls=[HOOK])
    first.close()

    second = EventStore.from_config(storage)
    try:
        assert second.get_event(event.id) is not None
        assert [d.status for d in second.list_deliveries()] == [DeliveryStatus.PENDING]
    finally:
        second.close()


def test_claim_leases_delivery_until_lease_ends(store: EventStore, clock: FakeClock) -> None:
    store.upsert_event(make_event(), webhook_urls=[HOOK])

    claimed = store.claim_due_delivery(now=clock.now, lease_s=30.0)

    assert claimed is not None
    assert claimed.attempts == 0
    assert store.claim_due_delivery(now=clock.now + 29.0, lease_s=30.0) is None
    again = store.claim_due_delivery(now=clock.now + 30.0, lease_s=30.0)
    assert again is not None and again.id == claimed.id


def test_marking_attempts_records_status_error_and_schedule(store: EventStore, clock: FakeClock) -> None:
    store.upsert_event(make_event(), webhook_urls=[HOOK])
    (delivery,) = store.list_deliveries()

    retried = store.mark_attempt_failed(
        delivery.id, error="HTTP 500: boom", status_code=500, retry_at=clock.now + 2, now=clock.now
    )
    assert (retried.status, retried.attempts, retried.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert (retried.last_error, retried.next_attempt_at) == ("HTTP 500: boom", clock.now + 2)

    done = store.mark_delivered(delivery.id, status_code=204, now=clock.now + 3)
    assert (done.status, done.attempts, done.last_status_code) == (DeliveryStatus.DELIVERED, 2, 204)
    assert (done.last_error, done.next_attempt_at, done.delivered_at) == (None, None, clock.now + 3)
    assert store.next_delivery_due_at() is None


def test_mark_unknown_delivery_raises_key_error(store: EventStore, clock: FakeClock) -> None:
    with pytest.raises(KeyError, match="no webhook delivery with id 42"):
        store.mark_delivered(42, status_code=200, now=clock.now)


def test_concurrent_writers_and_readers_do_not_fail(store: EventStore) -> None:
    errors: list[BaseException] = []
    event_ids = [[f"t{t}-e{i}" for i in range(15)] for t in range(3)]

    def write(ids: list[str]) -> None:
        try:
            for event_id in ids:
                store.upsert_event(make_event(id=event_id, snapshot_jpeg=None), webhook_urls=[HOOK])
                store.upsert_event(
                    make_event(id=event_id, revision=2, snapshot_jpeg=None), webhook_urls=[HOOK]
                )
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
        thread.join(timeout=30)

    assert errors == []
    assert len(store.list_events(limit=1000)) == 45
    assert all(e.revision == 2 for e in store.list_events(limit=1000))
    assert len(store.list_deliveries()) == 90
