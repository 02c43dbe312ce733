"""StoreSink: the pipeline's revisions are queued off the frame path, ingested ones are committed in batches,
and neither is lost when the database is locked or fails."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest
from sqlalchemy.exc import DataError, OperationalError

from anjian.pipeline.event import Event
from anjian.service.errors import IngestBusyError, RevisionRefusedError
from anjian.service.evidence import EvidenceStore
from anjian.service.sink import StoreSink
from anjian.service.store import EventStore, UpsertResult
from tests.factories import make_event, make_jpeg
from tests.support.receiver import wait_until

MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 8


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore(f"sqlite:///{tmp_path / 'anjian.db'}", busy_timeout_s=0.2)
    yield store
    store.close()


@pytest.fixture
def evidence(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore(tmp_path, is_fsync=False)


class GatedStore:
    """Wraps ``EventStore.upsert_events`` so a test decides when a transaction may run."""

    def __init__(self, store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = threading.Event()
        self.waiting = threading.Event()
        self.batches: list[int] = []
        upsert = store.upsert_events

        def gated(items: Sequence[tuple[Event, str | None]]) -> list[UpsertResult]:
            self.waiting.set()
            self.gate.wait(30)
            self.batches.append(len(items))
            return upsert(items)

        monkeypatch.setattr(store, "upsert_events", gated)

    def hold_first(self, sink: StoreSink) -> Future[UpsertResult]:
        """Submit one revision and return once the writer is inside its transaction, held at the gate."""
        first = sink.submit(make_event())
        assert self.waiting.wait(10)
        return first


@pytest.fixture
def gated(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> GatedStore:
    return GatedStore(store, monkeypatch)


def test_publish_returns_while_the_database_is_locked_and_nothing_is_lost(
    store: EventStore, evidence: EvidenceStore, tmp_path: Path
) -> None:
    sink = StoreSink(store, evidence, retry_base_s=0.05, retry_max_s=0.2)
    locker = sqlite3.connect(tmp_path / "anjian.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    events = [make_event() for _ in range(3)]
    try:
        for event in events:
            sink.publish(event)  # the runner's thread: must come straight back
        wait_until(lambda: sink.stats().retries >= 1, 10)  # the writer met the lock …
        assert sink.backlog() == 3, "… and kept every revision queued"
        assert all(store.get_event(e.id) is None for e in events)
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    assert sink.flush(30)
    sink.stop()
    assert all(store.get_event(e.id) is not None for e in events)
    assert (sink.stats().stored, sink.stats().failed) == (3, 0)


def test_revisions_arriving_together_are_committed_in_one_transaction(
    store: EventStore, evidence: EvidenceStore, gated: GatedStore
) -> None:
    sink = StoreSink(store, evidence)
    first = gated.hold_first(sink)
    rest = [sink.submit(make_event()) for _ in range(40)]
    assert not any(f.done() for f in rest), "nothing is acknowledged before it is committed"

    gated.gate.set()
    results = [f.result(30) for f in [first, *rest]]
    sink.stop()

    assert all(r.is_applied for r in results)
    assert gated.batches == [1, 40]
    assert sink.stats().batches == 2


def test_a_full_writer_refuses_ingest_but_never_the_pipeline(
    store: EventStore, evidence: EvidenceStore, gated: GatedStore
) -> None:
    sink = StoreSink(store, evidence, max_backlog=3)
    futures = [gated.hold_first(sink)]
    futures += [sink.submit(make_event()) for _ in range(2)]

    with pytest.raises(IngestBusyError, match="3 event revisions are waiting"):
        sink.submit(make_event())
    sink.publish(make_event())  # the pipeline's revision is queued anyway

    gated.gate.set()
    assert all(f.result(30).is_applied for f in futures)
    sink.stop()
    assert sink.stats().stored == 4


def test_a_failed_batch_fails_ingest_at_once_and_retries_the_pipelines_revisions(
    store: EventStore, evidence: EvidenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    upsert = store.upsert_events
    calls: list[int] = []
    gate = threading.Event()

    def failing_once(items: Sequence[tuple[Event, str | None]]) -> list[UpsertResult]:
        calls.append(len(items))
        if len(calls) == 1:
            gate.wait(30)  # the first transaction runs while the next two revisions queue
        if len(calls) == 2:
            raise OperationalError("INSERT …", {}, Exception("disk I/O error"))
        return upsert(items)

    monkeypatch.setattr(store, "upsert_events", failing_once)
    sink = StoreSink(store, evidence, retry_base_s=0.01)
    blocker, ingested, published = make_event(), make_event(), make_event()
    sink.publish(blocker)
    wait_until(lambda: calls == [1])
    future = sink.submit(ingested)
    sink.publish(published)
    gate.set()

    with pytest.raises(OperationalError):
        future.result(30)
    assert sink.flush(30)
    sink.stop()
    assert calls == [1, 2, 1]
    assert store.get_event(ingested.id) is None, "the pipeline's HTTP sink sends it again"
    assert store.get_event(published.id) is not None, "retried: events are never lost"
    assert (sink.stats().failed, sink.stats().retries) == (1, 1)


@pytest.fixture
def refusing_store(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EventStore]:
    """The store over SQLite or PostgreSQL; a NUL in a message is refused on both.

    PostgreSQL refuses it itself (``DataError``); SQLite would store it, so there the
    store raises the ``DataError`` PostgreSQL's driver does.
    """
    store = EventStore(database_url)
    if database_url.startswith("sqlite"):
        upsert = store.upsert_events

        def refusing(items: Sequence[tuple[Event, str | None]]) -> list[UpsertResult]:
            if any("\x00" in event.message for event, _ in items):
                raise DataError(
                    "INSERT INTO events …",
                    {},
                    ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
                )
            return upsert(items)

        monkeypatch.setattr(store, "upsert_events", refusing)
    yield store
    store.close()


def test_a_revision_the_database_refuses_is_set_aside_and_the_writer_goes_on(
    refusing_store: EventStore,
    evidence: EvidenceStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = refusing_store
    gated = GatedStore(store, monkeypatch)
    sink = StoreSink(store, evidence, retry_base_s=0.01, retry_max_s=0.05)
    blocker = gated.hold_first(sink)
    # Queued while the first transaction is held: they are written as one batch.
    published_bad, ingested_bad = make_event(message="fire\x00"), make_event(message="\x00")
    published_good, ingested_good, later_good = make_event(), make_event(), make_event()
    sink.publish(published_bad)
    sink.publish(published_good)
    refused = sink.submit(ingested_bad)
    taken = sink.submit(ingested_good)
    sink.publish(later_good)

    gated.gate.set()

    assert blocker.result(30).is_applied and taken.result(30).is_applied
    with pytest.raises(RevisionRefusedError, match="NUL") as info:
        refused.result(30)
    assert info.value.event_id == ingested_bad.id
    wait_until(lambda: store.get_event(later_good.id) is not None, 10)
    assert sink.flush(30), "nothing is put back at the head of the queue"
    sink.stop()
    for event in (published_good, ingested_good, later_good):
        assert store.get_event(event.id) is not None
    assert store.get_event(published_bad.id) is None and store.get_event(ingested_bad.id) is None
    stats = sink.stats()
    assert (stats.set_aside, stats.stored) == (2, 4)
    set_aside_lines = [r.getMessage() for r in caplog.records if "sets aside" in r.getMessage()]
    assert any(published_bad.id in line and "NUL" in line for line in set_aside_lines)


def test_a_batch_keeps_the_snapshot_of_the_newest_revision(
    store: EventStore, evidence: EvidenceStore, gated: GatedStore
) -> None:
    sink = StoreSink(store, evidence)
    blocker = gated.hold_first(sink)
    event = make_event(snapshot_jpeg=make_jpeg(bgr=(0, 0, 255)))
    newest = make_jpeg(bgr=(255, 0, 0))
    futures = [
        sink.submit(event),
        sink.submit(make_event(id=event.id, revision=3, snapshot_jpeg=newest)),
        sink.submit(make_event(id=event.id, revision=2, snapshot_jpeg=make_jpeg(bgr=(0, 255, 0)))),
    ]

    gated.gate.set()
    blocker.result(30)
    applied = [f.result(30).is_applied for f in futures]
    sink.stop()

    assert gated.batches == [1, 3]
    assert applied == [True, True, False]
    stored = store.get_event(event.id)
    assert stored is not None and stored.revision == 3 and stored.snapshot_path is not None
    assert evidence.read(stored.snapshot_path) == newest


def test_stop_stores_what_is_queued_and_later_revisions_synchronously(
    store: EventStore, evidence: EvidenceStore, gated: GatedStore
) -> None:
    sink = StoreSink(store, evidence)
    queued = [make_event() for _ in range(5)]
    for event in queued:
        sink.publish(event)
    assert gated.waiting.wait(10)
    stopper = threading.Thread(target=sink.stop)
    stopper.start()
    gated.gate.set()
    stopper.join(30)

    late = make_event()
    sink.publish(late)
    with pytest.raises(IngestBusyError, match="stopping"):
        sink.submit(make_event())
    assert all(store.get_event(e.id) is not None for e in [*queued, late])


def test_an_ingest_whose_client_hung_up_is_still_stored_and_the_writer_goes_on(
    store: EventStore, evidence: EvidenceStore
) -> None:
    sink = StoreSink(store, evidence)
    abandoned, later = make_event(), make_event()

    future = sink.submit(abandoned)
    assert not future.cancel(), "a submitted revision cannot be taken back"
    assert sink.submit(later).result(30).is_applied
    sink.stop()

    assert store.get_event(abandoned.id) is not None


def test_evidence_that_cannot_be_written_leaves_its_alerts_stored_without_it_and_one_line_per_batch(
    store: EventStore,
    evidence: EvidenceStore,
    gated: GatedStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = StoreSink(store, evidence)
    blocker = gated.hold_first(sink)
    (tmp_path / "evidence" / "cam-2").write_bytes(b"")  # not a folder: no cam-2 evidence can be written
    events = [make_event(camera_id="cam-2", clip_mp4=MP4) for _ in range(5)]

    with caplog.at_level(logging.INFO, logger="anjian.service.sink"):
        for event in events:
            sink.publish(event)
        gated.gate.set()
        blocker.result(30)
        assert sink.flush(30)
    sink.stop()

    assert gated.batches == [1, 5]
    for event in events:
        stored = store.get_event(event.id)
        assert stored is not None and (stored.snapshot_path, stored.clip_path) == (None, None)
    assert sink.stats().snapshot_failures == 10, "5 snapshots and 5 clips, each counted once"
    lines = [record for record in caplog.records if record.name == "anjian.service.sink"]
    assert [record.getMessage().split(" (event ")[0] for record in lines] == [
        "event writer: stored 5 revision(s) of cam-2 without their snapshot",
        "event writer: stored 5 revision(s) of cam-2 without their clip",
    ]
    assert all(record.exc_info is None for record in lines), "no traceback for a disk that refuses"


def test_a_batch_failing_on_a_full_disk_is_logged_once_and_keeps_its_snapshots_for_the_retry_that_stores_it(
    store: EventStore,
    evidence: EvidenceStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disk is full: neither the snapshots nor the transaction can be written, attempt after attempt."""
    full = tmp_path / "evidence"
    full.write_bytes(b"")  # no evidence can be written until it goes
    upsert = store.upsert_events
    calls: list[int] = []
    gate = threading.Event()

    def full_disk(items: Sequence[tuple[Event, str | None]]) -> list[UpsertResult]:
        calls.append(len(items))
        if len(calls) == 1:
            gate.wait(30)  # the others queue meanwhile, to be written as one batch
        elif len(calls) <= 4:
            if len(calls) == 4:
                full.unlink()  # space is freed while the third attempt fails
            raise OperationalError(
                "INSERT INTO events …", {}, sqlite3.OperationalError("database or disk is full")
            )
        return upsert(items)

    monkeypatch.setattr(store, "upsert_events", full_disk)
    sink = StoreSink(store, evidence, retry_base_s=0.01, retry_max_s=0.02)
    events = [make_event() for _ in range(4)]
    with caplog.at_level(logging.INFO, logger="anjian.service.sink"):
        sink.publish(make_event(snapshot_jpeg=None))
        wait_until(lambda: calls == [1])
        for event in events:
            sink.publish(event)
        gate.set()
        assert sink.flush(30)
    sink.stop()

    assert calls == [1, 4, 4, 4, 4]
    for event in events:
        stored = store.get_event(event.id)
        assert stored is not None and stored.snapshot_path is not None, "the retry that stored it wrote it"
        assert evidence.read(stored.snapshot_path) == event.snapshot_jpeg
    stats = sink.stats()
    assert (stats.retries, stats.snapshot_failures) == (3, 0), "no revision was stored without its snapshot"
    lines = [record for record in caplog.records if record.name == "anjian.service.sink"]
    errors = [record for record in lines if record.levelno == logging.ERROR]
    assert len(errors) == 1, "three failures within a minute: one line, none per snapshot"
    assert errors[0].exc_info, "the traceback once, for the first failure"
    assert "database or disk is full" in errors[0].getMessage()
    assert "4 snapshot(s) not written either" in errors[0].getMessage()
    assert not any(record.levelno == logging.WARNING for record in lines)
    assert any("storing again after 3 failed attempt(s)" in record.getMessage() for record in lines)
