"""Evidence retention: only settled alerts lose their snapshot and clip, when the disk runs low (the default),
by age or past the size cap, oldest first; their rows say so; open alerts keep theirs however old; a clock
ahead or commits out of order never delete early nor hide an alert; crash leftovers go, writes in progress
stay."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import anjian.service.store as store_module
from anjian.service.app import create_app
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import AnjianConfig
from anjian.service.evidence import EvidenceStore
from anjian.service.evidence_retention import EvidenceRetention
from anjian.service.lifecycle import Action
from anjian.service.store import EventStore
from tests.factories import make_event, make_jpeg
from tests.service.conftest import FakeClock, bearer, make_config
from tests.support.receiver import wait_until

DAY = 86_400.0
MB = 1024 * 1024
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 8
SNAPSHOT = make_jpeg()
EVIDENCE_BYTES = len(SNAPSHOT) + len(MP4)  # one alert's snapshot and clip

SETTLING = {
    "resolved": (Action.ACKNOWLEDGE, Action.RESOLVE),
    "false_alarm": (Action.FALSE_ALARM,),
    "closed": (Action.ACKNOWLEDGE, Action.RESOLVE, Action.CLOSE),
}
OPEN = {
    "raised": (),
    "acknowledged": (Action.ACKNOWLEDGE,),
    "dispatched": (Action.ACKNOWLEDGE, Action.DISPATCH),
}


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[EventStore]:
    store = EventStore(f"sqlite:///{tmp_path / 'anjian.db'}", clock=clock)
    yield store
    store.close()


@pytest.fixture
def evidence(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore(tmp_path, is_fsync=False)


def _alert(store: EventStore, evidence: EvidenceStore, actions: Sequence[Action] = ()) -> str:
    """An alert with its snapshot and clip on disk, worked through ``actions`` now."""
    event = make_event(snapshot_jpeg=SNAPSHOT)
    store.upsert_event(event, snapshot_path=evidence.save_snapshot(event.camera_id, event.id, SNAPSHOT))
    store.attach_clip(event.id, evidence.save_clip(event.camera_id, event.id, MP4))
    for action in actions:
        store.transition(event.id, action, actor="duty officer", note="done", assignee="fire team 2")
    return event.id


class FakeDisk:
    """``shutil.disk_usage`` of a 10 GB file system whose free space the test sets."""

    def __init__(self, free_bytes: int) -> None:
        self.free_bytes = free_bytes

    def __call__(self, path: Path) -> tuple[int, int, int]:
        total = 10 * 1024 * MB
        return total, total - self.free_bytes, self.free_bytes


def _later(store: EventStore, clock: FakeClock, seconds: float) -> None:
    """Time passes, and the site goes on storing alerts (one without evidence, stamped now)."""
    clock.now += seconds
    store.upsert_event(make_event(snapshot_jpeg=None))


def _keeping_90_days(config: AnjianConfig) -> AnjianConfig:
    return config.model_copy(
        update={"storage": config.storage.model_copy(update={"keep_evidence_days": 90.0})}
    )


def _has_evidence(store: EventStore, event_ids: Sequence[str]) -> list[bool]:
    events = [store.get_event(event_id) for event_id in event_ids]
    return [event is not None and event.snapshot_path is not None for event in events]


def _folder(evidence: EvidenceStore, event_id: str) -> Path:
    return evidence.evidence_root / "cam-1" / event_id


def _retention(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock, **overrides: object
) -> EvidenceRetention:
    options: dict[str, object] = {"keep_s": 90 * DAY, "max_bytes": None, "batch": 2}  # several batches
    options.update(overrides)
    return EvidenceRetention(store.database, evidence, clock=clock, **options)  # type: ignore[arg-type]


def test_retention_deletes_the_evidence_of_settled_alerts_unchanged_for_keep_evidence_days_only(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock
) -> None:
    old_settled = {state: _alert(store, evidence, actions) for state, actions in SETTLING.items()}
    old_open = {state: _alert(store, evidence, actions) for state, actions in OPEN.items()}
    clock.now += 80 * DAY
    recently_settled = _alert(store, evidence, (Action.FALSE_ALARM,))
    _later(
        store, clock, 10 * DAY + 1
    )  # the first ones unchanged for 90 days and a second, this one for 10 days
    before = {event_id: store.get_event(event_id) for event_id in [*old_settled.values(), *old_open.values()]}
    trails = {event_id: store.audit_trail(event_id) for event_id in before}

    done = _retention(store, evidence, clock).prune()

    assert (done.expired, done.evicted, done.not_deleted) == (3, 0, 0)
    assert done.freed_bytes == 3 * EVIDENCE_BYTES
    for state, event_id in old_settled.items():
        stored, earlier = store.get_event(event_id), before[event_id]
        assert stored is not None and earlier is not None, "the incident stays"
        assert (stored.snapshot_path, stored.clip_path) == (None, None), state
        assert stored.state == earlier.state == state
        assert stored.version == earlier.version + 1, "a screen that reloads sees the change"
        assert stored.updated_at == earlier.updated_at, "not news: the live feed does not replay it"
        assert store.audit_trail(event_id) == trails[event_id], "the audit trail stays"
        assert not _folder(evidence, event_id).exists(), "the event's folder goes with its files"
    for event_id in [*old_open.values(), recently_settled]:
        stored = store.get_event(event_id)
        assert stored is not None and stored.snapshot_path is not None and stored.clip_path is not None
        assert evidence.read(stored.snapshot_path) == SNAPSHOT and evidence.read(stored.clip_path) == MP4
        if event_id in before:
            assert stored == before[event_id]


def test_an_open_alert_keeps_its_evidence_however_old_even_over_the_size_cap(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    raised = _alert(store, evidence)
    dispatched = _alert(store, evidence, OPEN["dispatched"])
    settled = _alert(store, evidence, (Action.FALSE_ALARM,))
    _later(store, clock, 3650 * DAY)

    with caplog.at_level(logging.WARNING, logger="anjian.service.evidence_retention"):
        done = _retention(store, evidence, clock, keep_s=DAY, max_bytes=1).prune()

    assert done.expired == 1 and done.evidence_bytes == 2 * EVIDENCE_BYTES
    for event_id in (raised, dispatched):
        stored = store.get_event(event_id)
        assert stored is not None and stored.snapshot_path is not None and stored.clip_path is not None
        assert evidence.read(stored.snapshot_path) == SNAPSHOT
    gone = store.get_event(settled)
    assert gone is not None and gone.snapshot_path is None
    assert any("still open" in record.getMessage() for record in caplog.records)


def test_the_size_cap_deletes_the_settled_alerts_that_changed_longest_ago_first(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock
) -> None:
    settled = []
    for _ in range(4):
        settled.append(_alert(store, evidence, (Action.FALSE_ALARM,)))
        clock.now += DAY
    open_alert = _alert(store, evidence)

    # 5 alerts' evidence against a cap of 3.5: the two oldest settled ones must go, no more.
    done = _retention(store, evidence, clock, keep_s=None, max_bytes=int(3.5 * EVIDENCE_BYTES)).prune()

    assert (done.expired, done.evicted) == (0, 2)
    assert done.evidence_bytes == 3 * EVIDENCE_BYTES
    kept = [store.get_event(event_id) for event_id in [*settled, open_alert]]
    assert [event is not None and event.snapshot_path is not None for event in kept] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_an_alert_settled_after_a_pass_loses_its_evidence_at_a_later_pass_once_old(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock
) -> None:
    first_open = _alert(store, evidence)
    cleared = _alert(store, evidence, (Action.FALSE_ALARM,))
    _later(store, clock, 100 * DAY)
    retention = _retention(store, evidence, clock)
    assert retention.prune().expired == 1

    store.transition(first_open, Action.FALSE_ALARM, actor="duty officer", note="reflection")
    _later(store, clock, 89 * DAY)
    assert retention.prune().expired == 0, "settled 89 days ago: kept"
    _later(store, clock, 1 * DAY + 1)

    done = retention.prune()

    assert done.expired == 1, "the alert cleared before is not counted again"
    stored = store.get_event(first_open)
    assert stored is not None and stored.snapshot_path is None and not _folder(evidence, first_open).exists()
    assert store.get_event(cleared) is not None


def test_a_row_whose_files_are_already_gone_is_cleared_all_the_same(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock
) -> None:
    """A crash after the files went but before the rows were cleared: the next pass finishes the job."""
    event_id = _alert(store, evidence, (Action.FALSE_ALARM,))
    for file in _folder(evidence, event_id).iterdir():
        file.unlink()
    _later(store, clock, 91 * DAY)

    done = _retention(store, evidence, clock).prune()

    stored = store.get_event(event_id)
    assert (
        done.expired == 1 and stored is not None and (stored.snapshot_path, stored.clip_path) == (None, None)
    )


def test_stale_temporary_files_of_interrupted_writes_go_and_fresh_ones_stay(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock
) -> None:
    event_id = _alert(store, evidence)  # open: only its leftovers go
    folder = _folder(evidence, event_id)
    stale, fresh = folder / ".tmp-k9x2m1.mp4", folder / ".tmp-a8b7c6.jpg"
    stale.write_bytes(b"\0" * 1000)  # what a kill -9 in the middle of a clip write leaves
    fresh.write_bytes(b"\0" * 10)  # a write in progress
    os.utime(stale, (clock.now - 2 * 3600, clock.now - 2 * 3600))
    os.utime(fresh, (clock.now - 60, clock.now - 60))

    done = _retention(store, evidence, clock).prune()

    assert not stale.exists() and fresh.exists()
    assert (done.removed_temporaries, done.expired) == (1, 0)
    assert done.evidence_bytes == EVIDENCE_BYTES + 10
    assert (folder / "snapshot.jpg").is_file() and (folder / "clip.mp4").is_file()


def test_the_retention_thread_runs_a_pass_one_tick_after_start(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock
) -> None:
    event_id = _alert(store, evidence)
    stale = _folder(evidence, event_id) / ".tmp-left.jpg"
    stale.write_bytes(b"\0")
    os.utime(stale, (clock.now - 2 * 3600, clock.now - 2 * 3600))
    retention = _retention(store, evidence, clock, tick_s=0.01)

    retention.start()
    try:
        wait_until(lambda: not stale.exists(), 10)
    finally:
        retention.stop()


def test_the_api_says_expired_evidence_is_gone_with_404s_never_a_500(
    tmp_path: Path, clock: FakeClock
) -> None:
    config = _keeping_90_days(make_config(tmp_path / "data"))
    parts = build_service_parts(config, clock=clock, disk_usage=FakeDisk(5000 * MB))
    try:
        event_id = _alert(parts.store, parts.evidence, (Action.FALSE_ALARM,))
        _later(parts.store, clock, 91 * DAY)
        assert parts.retention is not None and parts.retention.prune().expired == 1
        client = TestClient(create_app(config, parts))
        viewer = bearer(parts.store, "viewer")

        event = client.get(f"/events/{event_id}", headers=viewer)
        snapshot = client.get(f"/events/{event_id}/snapshot.jpg", headers=viewer)
        clip = client.get(f"/events/{event_id}/clip.mp4", headers=viewer)
        metrics = client.get("/metrics").text
    finally:
        parts.close()

    assert event.status_code == 200
    assert (event.json()["snapshot_url"], event.json()["clip_url"]) == (None, None)
    assert event.json()["state"] == "false_alarm"
    assert (snapshot.status_code, clip.status_code) == (404, 404)
    assert "has no snapshot" in snapshot.json()["detail"]
    assert 'anjian_evidence_deleted_total{reason="age"} 1.0' in metrics
    assert "anjian_evidence_bytes 0.0" in metrics


@pytest.fixture
def disk() -> FakeDisk:
    return FakeDisk(free_bytes=5000 * MB)


@pytest.fixture
def parts(tmp_path: Path, clock: FakeClock, disk: FakeDisk) -> Iterator[ServiceParts]:
    """The service as built by default (min_free_mb 500, so evidence is reclaimed below 1000 MB free)."""
    parts = build_service_parts(make_config(tmp_path / "data"), clock=clock, disk_usage=disk)
    yield parts
    parts.close()


def test_by_default_nothing_is_deleted_while_the_disk_has_room_however_old(
    parts: ServiceParts, clock: FakeClock
) -> None:
    settled = [_alert(parts.store, parts.evidence, actions) for actions in SETTLING.values()]
    _later(parts.store, clock, 3650 * DAY)  # an upgrade ten years on
    assert parts.retention is not None

    done = parts.retention.prune()

    assert _has_evidence(parts.store, settled) == [True, True, True]
    assert (done.expired, done.evicted, done.reclaimed, done.freed_bytes) == (0, 0, 0, 0)
    assert done.evidence_bytes == 3 * EVIDENCE_BYTES


def test_below_the_reclaim_threshold_the_oldest_settled_evidence_goes_first_until_enough_is_free(
    parts: ServiceParts, clock: FakeClock, disk: FakeDisk
) -> None:
    open_alert = _alert(parts.store, parts.evidence)  # the oldest, but open: kept
    settled = []
    for _ in range(4):
        clock.now += 60
        settled.append(_alert(parts.store, parts.evidence, (Action.FALSE_ALARM,)))
    disk.free_bytes = 1000 * MB - int(2.5 * EVIDENCE_BYTES)  # 2.5 alerts' evidence short of 2 x min_free_mb
    assert parts.retention is not None

    done = parts.retention.prune()

    assert (done.expired, done.evicted, done.reclaimed) == (0, 0, 3)
    assert done.freed_bytes == 3 * EVIDENCE_BYTES
    assert _has_evidence(parts.store, [*settled, open_alert]) == [False, False, False, True, True]
    disk.free_bytes += done.freed_bytes
    assert parts.retention.prune().reclaimed == 0, "enough free again: nothing more goes"


def test_age_deletion_with_a_clock_a_year_ahead_of_the_stored_changes_deletes_nothing(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    settled = [_alert(store, evidence, (Action.FALSE_ALARM,)) for _ in range(3)]  # settled "yesterday"
    ahead = FakeClock(clock.now + 365 * DAY)  # the box booted with its clock a year ahead
    retention = _retention(store, evidence, ahead, keep_s=10 * DAY)

    with caplog.at_level(logging.WARNING, logger="anjian.service.evidence_retention"):
        passes = [retention.prune(), retention.prune()]

    assert [done.expired for done in passes] == [0, 0]
    assert _has_evidence(store, settled) == [True, True, True]
    assert sum("clock is" in record.getMessage() for record in caplog.records) == 1, "logged once"


def test_a_settling_committed_behind_the_cursor_is_still_handled_by_the_next_pass(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock
) -> None:
    """Writers stamp updated_at before they get the write lock: A (stamped first) commits after B and after a
    pass moved past B."""
    start = clock.now
    a, b = _alert(store, evidence), _alert(store, evidence)
    clock.now = start + 101
    store.transition(b, Action.FALSE_ALARM, actor="duty officer")
    retention = _retention(store, evidence, clock, keep_s=None, max_bytes=EVIDENCE_BYTES // 2)
    assert retention.prune().evicted == 1  # B goes: the cursor is at B
    clock.now = start + 100  # A's settling, stamped before B's, commits now
    store.transition(a, Action.FALSE_ALARM, actor="duty officer")
    clock.now = start + 160

    done = retention.prune()

    assert done.evicted == 1
    assert _has_evidence(store, [a, b]) == [False, False]


def test_the_cursor_never_passes_the_time_its_pass_started(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock
) -> None:
    """An alert stamped far ahead (a writer's clock ahead, then stepped back) must not hide later settlings."""
    start = clock.now
    ahead, later = _alert(store, evidence), _alert(store, evidence)
    clock.now = start + 3600
    store.transition(ahead, Action.FALSE_ALARM, actor="duty officer")
    retention_clock = FakeClock(start)
    retention = _retention(store, evidence, retention_clock, keep_s=None, max_bytes=EVIDENCE_BYTES // 2)
    assert retention.prune().evicted == 1
    clock.now = retention_clock.now = start + 10  # the clock is right again
    store.transition(later, Action.FALSE_ALARM, actor="duty officer")
    retention_clock.now += 60

    assert retention.prune().evicted == 1
    assert _has_evidence(store, [ahead, later]) == [False, False]


def test_a_batch_pauses_as_long_as_it_held_the_write_lock_at_most_a_second(
    store: EventStore, evidence: EvidenceStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(7):
        _alert(store, evidence, (Action.FALSE_ALARM,))
    _later(store, clock, 100 * DAY)
    elapsed = FakeClock(0.0)  # monotonic seconds; each file deletion "takes" its share
    per_alert = iter([0.1, 0.1, 0.2, 0.2, 0.7, 0.7, 0.0])
    delete_event = evidence.delete_event

    def slow_delete(*args: object) -> int:
        elapsed.now += next(per_alert)
        return delete_event(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(evidence, "delete_event", slow_delete)
    retention = _retention(store, evidence, clock, monotonic=elapsed, pause_s=0.05)
    waits: list[float] = []
    monkeypatch.setattr(retention._stopping, "wait", waits.append)  # observe the pauses

    assert retention.prune().expired == 7
    assert waits == pytest.approx([0.2, 0.4, 1.0])


def test_postgresql_a_row_changed_while_the_pass_waits_for_its_lock_does_not_move_the_cursor_past_the_rest(
    database_url: str, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's FOR UPDATE returns a row that was locked meanwhile with its new updated_at (now)."""
    store = EventStore(database_url, clock=clock)
    evidence = EvidenceStore(tmp_path / "evidence-data", is_fsync=False)
    try:
        settled = []
        for _ in range(6):
            settled.append(_alert(store, evidence, (Action.FALSE_ALARM,)))
            clock.now += 60
        retention = _retention(store, evidence, clock, keep_s=None, max_bytes=EVIDENCE_BYTES)
        holding = threading.Event()
        enqueue = store_module.enqueue

        def slow_enqueue(*args: object, **kwargs: object) -> object:
            holding.set()  # the row is locked by the close until this returns
            time.sleep(0.5)
            return enqueue(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store_module, "enqueue", slow_enqueue)
        clock.now += 3600
        closer = threading.Thread(
            target=store.transition, args=(settled[1], Action.CLOSE), kwargs={"actor": "supervisor"}
        )
        closer.start()
        holding.wait(10)
        done = retention.prune()
        closer.join()

        assert done.evicted == 5
        assert _has_evidence(store, settled) == [False, True, False, False, False, False], (
            "only the alert closed meanwhile (now the newest change) keeps its evidence"
        )
    finally:
        store.close()
