"""The pipeline's spool is bounded by the bytes it really takes on disk, and so is its ``rejected/`` folder.

Past its cap the spool only stripped pictures and kept every record, counting ``len(data)``:
a 1.4 kB record takes a 4 KiB block, so it held twice what it counted, with no bound at all
(s19 scale review, findings 5 and 7). On a full disk each lost revision logged a traceback
(300 revisions: 2,400 lines, finding 6).
"""

from __future__ import annotations

import errno
import json
import logging
import re
import threading
from collections import deque
from pathlib import Path

import httpx
import pytest

from anjian.pipeline.http_sink import HttpEventSink
from anjian.pipeline.log_throttle import LogThrottle
from anjian.pipeline.spool import DiskSpool
from tests.factories import make_event
from tests.support.receiver import wait_until

WAIT_S = 20.0
RECORD = b"x" * 1_400  # a revision without pictures


def _on_disk(directory: Path, pattern: str = "*.rec") -> int:
    """Bytes the matching files and the folder itself take on disk (``du`` counts the same)."""
    paths = [directory, *directory.glob(pattern)]
    return sum(max(p.stat().st_blocks * 512, p.stat().st_size) for p in paths)


def _sink(tmp_path: Path, max_spool_bytes: int) -> HttpEventSink:
    """A sink whose service never answers (nothing listens on port 9)."""
    return HttpEventSink(
        "http://127.0.0.1:9",
        "anj_x",
        tmp_path / "spool",
        is_fsync=False,
        backoff_base_s=5.0,
        backoff_max_s=5.0,
        max_spool_bytes=max_spool_bytes,
    )


def test_the_spool_counts_the_blocks_its_records_take_not_their_length(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path / "spool", is_fsync=False)
    for _ in range(50):
        spool.append(RECORD)

    assert spool.size_bytes == _on_disk(tmp_path / "spool")
    assert spool.size_bytes > 50 * len(RECORD), "a record takes whole blocks (4 KiB for 1.4 kB here)"
    assert DiskSpool(tmp_path / "spool", is_fsync=False).size_bytes == spool.size_bytes, "and after a restart"


def test_at_its_cap_the_spool_drops_the_oldest_records_and_never_takes_more(tmp_path: Path) -> None:
    cap = 40 * 4096 + 4096  # forty one-block records and the folder's own block
    spool = DiskSpool(tmp_path / "spool", is_fsync=False, max_bytes=cap)
    seqs = [spool.append(RECORD) for _ in range(300)]

    assert _on_disk(tmp_path / "spool") <= cap
    kept = [seq for seq, _ in spool.peek_many(1000, 10**9)]
    assert kept == seqs[-len(kept) :], "the newest are kept, in order"
    assert spool.evicted == 300 - len(kept) > 0
    assert DiskSpool(tmp_path / "spool", is_fsync=False, max_bytes=cap // 2).size_bytes <= cap // 2, (
        "a lower cap at the next start holds at once"
    )


def test_a_record_too_big_for_the_cap_is_refused_and_the_others_stay(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path / "spool", is_fsync=False, max_bytes=64 * 1024)
    spool.append(RECORD)

    with pytest.raises(ValueError, match="does not fit"):
        spool.append(bytes(100_000))
    assert (len(spool), spool.evicted) == (1, 0)


def test_a_record_dropped_while_it_was_being_sent_is_not_an_error_when_refused(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path / "spool", is_fsync=False, max_bytes=3 * 4096)
    first = spool.append(RECORD)
    spool.append(RECORD)
    spool.append(RECORD)  # the folder's block and two records fit: the first goes

    assert spool.reject(first, "HTTP 422") is None
    assert len(spool) == 2


def test_at_its_cap_the_spool_passes_over_the_records_being_sent(tmp_path: Path) -> None:
    """The oldest records are the batch the sender has just read and is posting: dropping them counted
    revisions that arrive as lost (s19 diff review, finding 3)."""
    spool = DiskSpool(tmp_path / "spool", is_fsync=False, max_bytes=10 * 4096 + 4096)
    seqs = [spool.append(RECORD) for _ in range(10)]
    sending = [seq for seq, _ in spool.peek_many(3, 10**9)]
    newer = [spool.append(RECORD) for _ in range(5)]

    assert sending == seqs[:3]
    assert spool.evicted == 5
    assert [seq for seq, _ in spool.peek_many(100, 10**9)] == sending + seqs[8:] + newer, (
        "the oldest not being sent went"
    )
    assert _on_disk(tmp_path / "spool") <= 10 * 4096 + 4096


def test_records_being_sent_go_too_when_nothing_else_is_left_so_the_cap_holds(tmp_path: Path) -> None:
    cap = 3 * 4096 + 4096
    spool = DiskSpool(tmp_path / "spool", is_fsync=False, max_bytes=cap)
    seqs = [spool.append(RECORD) for _ in range(3)]
    spool.peek_many(3, 10**9)
    newest = spool.append(RECORD)

    assert (spool.evicted, _on_disk(tmp_path / "spool") <= cap) == (1, True)
    assert [seq for seq, _ in spool.peek_many(100, 10**9)] == [*seqs[1:], newest]
    spool.remove(seqs[0])  # delivered after all: nothing to do
    assert len(spool) == 3


class _WatchedOrder(deque[int]):
    """The spool's order, counting the looks that scan it (``in``, ``remove``)."""

    scans = 0

    def __contains__(self, item: object) -> bool:
        _WatchedOrder.scans += 1
        return super().__contains__(item)

    def remove(self, value: int) -> None:
        _WatchedOrder.scans += 1
        super().remove(value)


def test_removing_a_record_already_dropped_does_not_scan_the_spool(tmp_path: Path) -> None:
    """Each seq of a delivered batch the cap had dropped was looked for in the whole order: 20 ms a batch
    of 100 with 20k waiting, 0.25 s at the default cap (s19 diff review, finding 3)."""
    spool = DiskSpool(tmp_path / "spool", is_fsync=False, max_bytes=10 * 4096 + 4096)
    seqs = [spool.append(RECORD) for _ in range(15)]
    assert spool.evicted == 5
    spool._seqs = _WatchedOrder(spool._seqs)
    _WatchedOrder.scans = 0

    for seq in seqs[:6]:  # five dropped, then the oldest waiting
        spool.remove(seq)

    assert _WatchedOrder.scans == 0
    assert [seq for seq, _ in spool.peek_many(100, 10**9)] == seqs[6:]


def test_revisions_being_sent_when_the_spool_reaches_its_cap_arrive_and_are_not_counted_lost(
    tmp_path: Path,
) -> None:
    posting, release = threading.Event(), threading.Event()
    arrived: list[str] = []

    def service(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if not posting.is_set():
            posting.set()
            release.wait(WAIT_S)  # the service is slow: the spool reaches its cap meanwhile
        arrived.extend(e["id"] for e in body.get("events", [body]))
        return httpx.Response(200, json={})

    sink = HttpEventSink(
        "http://alerts.test",
        "anj_x",
        tmp_path / "spool",
        transport=httpx.MockTransport(service),
        is_fsync=False,
        max_spool_bytes=5 * 4096 + 4096,
    )
    events = [make_event(id=f"e{i:03d}", snapshot_jpeg=None) for i in range(21)]
    sink.start()
    try:
        sink.publish(events[0])
        assert posting.wait(WAIT_S)
        for event in events[1:]:
            sink.publish(event)
        wait_until(lambda: sink.stats().spooled == len(events), WAIT_S)
        release.set()
        assert sink.flush(WAIT_S)
    finally:
        release.set()
        sink.stop()

    stats = sink.stats()
    assert events[0].id in arrived
    assert stats.evicted > 0
    assert stats.delivered + stats.evicted == stats.spooled == len(events), (
        "a revision that arrived is not also counted lost"
    )


def test_the_sink_at_its_cap_keeps_the_newest_revisions_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service away long: revisions go on coming; the spool keeps the newest within its cap."""
    cap = 200 * 1024
    sink = _sink(tmp_path, cap)
    events = [make_event(id=f"e{i:03d}", snapshot_jpeg=None) for i in range(150)]
    with caplog.at_level(logging.INFO, logger="anjian.pipeline.http_sink"):
        sink.start()
        try:
            for event in events:
                sink.publish(event)
            wait_until(lambda: sink.stats().spooled == len(events), WAIT_S)
        finally:
            sink.stop()

    stats = sink.stats()
    assert _on_disk(tmp_path / "spool") <= cap
    assert stats.evicted == len(events) - len(sink.spool) > 0
    kept = [record for record in sorted((tmp_path / "spool").glob("*.rec"))]
    assert f'"id":"{events[-1].id}"' in kept[-1].read_text(), "the newest revision is kept"
    lines = [r for r in caplog.records if "cap" in r.getMessage() and r.levelno == logging.ERROR]
    assert len(lines) == 1, "one line a minute, not one per revision dropped"
    assert "storage.max_spool_mb" in lines[0].getMessage()


def test_a_full_disk_logs_its_first_lost_revision_then_one_line_a_minute_with_the_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    sink = _sink(tmp_path, 1024 * 1024)
    sink._spool_log = LogThrottle(60.0, clock=lambda: now[0])
    append = sink.spool.append

    def full(_data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    sink.spool.append = full  # type: ignore[method-assign,assignment]
    with caplog.at_level(logging.INFO, logger="anjian.pipeline.http_sink"):
        sink.start()
        try:
            for i in range(300):
                sink.publish(make_event(revision=i + 1, snapshot_jpeg=None))
            wait_until(lambda: sink.stats().spool_errors == 300, WAIT_S)
            assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None
            now[0] = 61.0
            sink.publish(make_event(snapshot_jpeg=None))
            wait_until(lambda: sink.stats().spool_errors == 301, WAIT_S)
            sink.spool.append = append  # type: ignore[method-assign]
            sink.publish(make_event(snapshot_jpeg=None))
            wait_until(lambda: sink.stats().spooled == 1, WAIT_S)
        finally:
            sink.stop()

    messages = [r.getMessage() for r in caplog.records if not r.getMessage().startswith("ingest:")]
    assert len(messages) == 3, messages
    assert "300 revision(s) lost since the last line, 301 since writing stopped" in messages[1]
    assert "writing again; 301 revision(s) were lost meanwhile" in messages[2]


def test_rejected_keeps_the_newest_refused_records_within_its_bytes(tmp_path: Path) -> None:
    """A 413 is a record too big for the service: 1,000 of them kept could be 64 GB."""
    record = bytes(100_000)
    cap = 5 * 104 * 1024
    spool = DiskSpool(tmp_path / "spool", is_fsync=False, max_rejected_bytes=cap)
    for i in range(20):
        spool.reject(spool.append(record + f"{i:02d}".encode()), "HTTP 413: too large")

    rejected = tmp_path / "spool" / "rejected"
    kept = sorted(rejected.glob("*.rec"))
    assert 0 < len(kept) < 20
    assert sum(max(p.stat().st_blocks * 512, p.stat().st_size) for p in rejected.iterdir()) <= cap
    assert [p.read_bytes()[-2:] for p in kept] == [f"{i:02d}".encode() for i in range(20 - len(kept), 20)]
    assert len(list(rejected.glob("*.reason.txt"))) == len(kept)


def test_the_record_refused_last_stays_even_alone_over_the_rejected_bytes(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path / "spool", is_fsync=False, max_rejected_bytes=1)
    spool.reject(spool.append(b"older"), "HTTP 422")
    where = spool.reject(spool.append(b"newest"), "HTTP 413")

    assert where is not None and where.read_bytes() == b"newest"
    assert [p.read_bytes() for p in (tmp_path / "spool" / "rejected").glob("*.rec")] == [b"newest"]


def test_a_revision_larger_than_the_whole_cap_is_counted_and_named_not_taken_for_a_failing_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It raised ``ValueError`` in the spool, and the sink reported a full or read-only disk, then "writing
    again" at the next revision (s19 diff review, finding 4)."""
    now = [0.0]
    sink = _sink(tmp_path, 64 * 1024)
    sink._spool_log = LogThrottle(60.0, clock=lambda: now[0])
    huge = [make_event(revision=i + 1, snapshot_jpeg=None, message="x" * 100_000) for i in range(3)]
    with caplog.at_level(logging.INFO, logger="anjian.pipeline.http_sink"):
        sink.start()
        try:
            sink.publish(make_event(snapshot_jpeg=None))
            sink.publish(huge[0])
            sink.publish(huge[1])
            sink.publish(make_event(snapshot_jpeg=None))
            wait_until(lambda: sink.stats().spooled == 2 and sink.stats().too_large == 2, WAIT_S)
            now[0] = 61.0
            sink.publish(huge[2])
            wait_until(lambda: sink.stats().too_large == 3, WAIT_S)
        finally:
            sink.stop()

    stats = sink.stats()
    assert (stats.too_large, stats.spool_errors, stats.spooled, len(sink.spool)) == (3, 0, 2, 2)
    messages = [r.getMessage() for r in caplog.records if not r.getMessage().startswith("ingest:")]
    assert len(messages) == 2, messages
    assert re.search(rf"revision 1 of event {huge[0].id} takes 100\d{{3}} bytes", messages[0])
    assert "storage.max_spool_mb" in messages[0]
    assert f"revision 3 of event {huge[2].id}" in messages[1]
    assert "(1 more too large since the last line)" in messages[1]
    assert all(r.exc_info is None for r in caplog.records)


def test_rejected_keeps_the_records_refused_last_whatever_the_wall_clock_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Named by the wall clock alone, a clock step back (or a second rolling over between two reads of it)
    ordered a newer record before older ones, and pruning kept the oldest."""
    from anjian.pipeline import spool as spool_module

    clock = iter(
        1_800_000_000.0 - 10.0 * i for i in range(100)
    )  # every refusal stamped earlier than the one before
    monkeypatch.setattr(spool_module.time, "time", lambda: next(clock))
    spool = DiskSpool(tmp_path / "spool", is_fsync=False, max_rejected_bytes=3 * 8192)
    for i in range(6):
        spool.reject(spool.append(bytes(4000) + f"{i:02d}".encode()), "HTTP 413")

    kept = sorted((tmp_path / "spool" / "rejected").glob("*.rec"))
    assert kept and [p.read_bytes()[-2:] for p in kept] == [
        f"{i:02d}".encode() for i in range(6 - len(kept), 6)
    ]
    reopened = DiskSpool(tmp_path / "spool", is_fsync=False, max_rejected_bytes=3 * 8192)
    newest = reopened.reject(reopened.append(bytes(4000) + b"99"), "HTTP 413")
    assert newest is not None and newest == max((tmp_path / "spool" / "rejected").glob("*.rec"))
