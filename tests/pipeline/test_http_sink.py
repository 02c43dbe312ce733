"""HttpEventSink and its disk spool: never blocks the frame path, delivers in order after outages and restarts.

The delivery tests run a real alert service (uvicorn on loopback) and check what
it stored; unit checks use ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from anjian.pipeline.event_json import event_from_json, event_to_json
from anjian.pipeline.http_sink import HttpEventSink
from anjian.pipeline.spool import DiskSpool
from anjian.service.app import create_app
from tests.factories import make_event
from tests.service.conftest import make_config
from tests.service.server import ServerThread
from tests.support.receiver import unused_port, wait_until

WAIT_S = 20.0


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    app = create_app(make_config(tmp_path / "service"))
    yield app
    app.state.store.close()


@pytest.fixture
def token(app: FastAPI) -> str:
    return str(app.state.store.tokens.create("line-1 pipeline", "pipeline")[1])


def _sink(base_url: str, token: str, spool: Path, **kwargs: object) -> HttpEventSink:
    kwargs.setdefault("backoff_base_s", 0.05)
    kwargs.setdefault("backoff_max_s", 0.2)
    return HttpEventSink(base_url, token, spool, is_fsync=False, **kwargs)  # type: ignore[arg-type]


def _stored_ids_in_arrival_order(app: FastAPI) -> list[str]:
    page = app.state.store.list_events(limit=1000)
    return [e.id for e in sorted(page.items, key=lambda e: (e.created_at, e.id))]


# ------------------------------------------------------------------ wire form and spool


def test_event_json_round_trips_every_field() -> None:
    event = make_event(ended_at=1_700_000_009.25, zone_id=None)

    assert event_from_json(event_to_json(event)) == event
    assert event_from_json(event_to_json(make_event(snapshot_jpeg=None))).snapshot_jpeg is None
    with_clip = make_event(revision=3, clip_mp4=b"\x00\x00\x00\x18ftypisom-clip-bytes", track_id=7)
    assert event_from_json(event_to_json(with_clip)) == with_clip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": 9}, "schema_version"),
        ({"revision": "1"}, "revision"),
        ({"started_at": float("nan")}, "started_at"),
        ({"boxes": [{"class_name": "fire", "confidence": 0.5, "xyxy_norm": [0, 0, 1]}]}, "xyxy_norm"),
        ({"snapshot_jpeg_b64": "@@"}, "base64"),
        ({"clip_mp4_b64": "@@"}, "clip_mp4_b64: not base64"),
        ({"track_id": "7"}, "track_id"),
        ({"surprise": 1}, "unknown field"),
    ],
    ids=["version", "revision-type", "nan", "box", "base64", "clip-base64", "track-type", "extra"],
)
def test_event_from_json_names_what_is_wrong(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event_from_json({**event_to_json(make_event()), **change})


def test_spool_keeps_order_across_reopening_and_drops_half_written_files(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path / "spool", is_fsync=False)
    for i in range(3):
        spool.append(f"r{i}".encode())
    first = spool.peek()
    assert first is not None
    spool.remove(first[0])
    (tmp_path / "spool" / ".tmp-crashed").write_bytes(b"half")

    reopened = DiskSpool(tmp_path / "spool", is_fsync=False)

    assert len(reopened) == 2
    assert reopened.peek() == (2, b"r1")
    assert reopened.append(b"r3") == 4, "sequence numbers continue after the survivors"
    assert not (tmp_path / "spool" / ".tmp-crashed").exists()


def test_records_refused_before_and_after_a_restart_are_both_kept_and_the_oldest_go_past_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence numbers start again at 1 with an empty spool: a record refused after a restart replaced
    rejected/000000000001.rec, an earlier refused alert kept for a person to look at."""
    first = DiskSpool(tmp_path / "spool", is_fsync=False)
    first.reject(first.append(b'{"id": "first"}'), "HTTP 422: bad box")
    again = DiskSpool(tmp_path / "spool", is_fsync=False)  # a restart, the spool empty
    again.reject(again.append(b'{"id": "second"}'), "HTTP 413: too large")

    kept = sorted((tmp_path / "spool" / "rejected").glob("*.rec"))
    assert [path.read_bytes() for path in kept] == [b'{"id": "first"}', b'{"id": "second"}']
    assert kept[0].with_name(kept[0].name + ".reason.txt").read_text() == "HTTP 422: bad box"

    monkeypatch.setattr("anjian.pipeline.spool._MAX_REJECTED", 2)
    again.reject(again.append(b'{"id": "third"}'), "HTTP 422")
    kept = sorted((tmp_path / "spool" / "rejected").glob("*.rec"))
    assert [path.read_bytes() for path in kept] == [b'{"id": "second"}', b'{"id": "third"}']
    assert len(list((tmp_path / "spool" / "rejected").glob("*.reason.txt"))) == 2


# ----------------------------------------------------------------------- unit checks


def test_publish_returns_at_once_while_the_service_hangs(tmp_path: Path) -> None:
    release, entered, answered = threading.Event(), threading.Event(), threading.Event()

    def hang(_request: httpx.Request) -> httpx.Response:
        entered.set()
        release.wait(60)  # the service answers nothing until the test lets it (or a minute passes)
        answered.set()
        return httpx.Response(200, json={})

    sink = _sink("http://service.example", "anj_x", tmp_path / "spool", transport=httpx.MockTransport(hang))
    sink.start()
    try:
        sink.publish(make_event(id="e0"))
        wait_until(entered.is_set, WAIT_S)  # the sender is stuck in its POST from here on
        for i in range(1, 200):
            sink.publish(make_event(id=f"e{i}"))
        is_all_published_while_hung = not answered.is_set()  # behaviour, not a time: no publish waited on it
        # ... and what came while the POST hung is on disk all the same (a kill -9 now loses nothing)
        wait_until(lambda: sink.stats().spooled == 200, WAIT_S)
    finally:
        release.set()
        sink.stop()

    assert is_all_published_while_hung, "publish waited for the hung service"
    assert sink.stats().published == 200


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    sink = _sink("http://service.example", "anj_x", tmp_path / "spool", queue_size=2)  # never started

    for i in range(5):
        sink.publish(make_event(id=f"e{i}"))

    assert (sink.stats().published, sink.stats().dropped) == (5, 3)


@pytest.mark.parametrize("status", [422, 413], ids=["invalid", "too-large"])
def test_refused_event_is_moved_aside_and_the_next_one_goes(tmp_path: Path, status: int) -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ingest/batch":  # both queued before the first send: one bad refuses all
            ids = [event_from_json(e).id for e in json.loads(request.content)["events"]]
            return httpx.Response(status if "bad" in ids else 200, json={"detail": "events[0]: nope"})
        event_id = event_from_json(json.loads(request.content)).id
        seen.append(event_id)
        return httpx.Response(status if event_id == "bad" else 200, json={"detail": "nope"})

    sink = _sink("http://service.example", "anj_x", tmp_path / "spool", transport=httpx.MockTransport(handle))
    sink.start()
    try:
        for event_id in ("bad", "good"):
            sink.publish(make_event(id=event_id))
        assert sink.flush(WAIT_S)
    finally:
        sink.stop()

    assert seen == ["bad", "good"]
    assert (sink.stats().rejected, sink.stats().delivered) == (1, 1)
    rejected = list((tmp_path / "spool" / "rejected").glob("*.rec"))
    assert len(rejected) == 1
    assert f"HTTP {status}" in rejected[0].with_name(rejected[0].name + ".reason.txt").read_text()


def _batched_service(
    calls: list[tuple[str, list[str]]], *, has_batch_route: bool = True
) -> httpx.MockTransport:
    """A service that records each request as (path, event ids) and accepts everything."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/ingest/batch":
            if not has_batch_route:
                return httpx.Response(404, json={"detail": "Not Found"})
            calls.append(("batch", [event_from_json(e).id for e in body["events"]]))
        else:
            calls.append(("single", [event_from_json(body).id]))
        return httpx.Response(200, json={})

    return httpx.MockTransport(handle)


def test_a_backlog_goes_in_batches_in_order(tmp_path: Path) -> None:
    calls: list[tuple[str, list[str]]] = []
    ids = [f"e{i:02d}" for i in range(25)]
    spool = tmp_path / "spool"
    first = _sink("http://service.example", "anj_x", spool, transport=_batched_service(calls))
    for event_id in ids:
        first.publish(make_event(id=event_id))
    first.stop()  # a pipeline stopped with a backlog: everything is in the spool
    sink = _sink("http://service.example", "anj_x", spool, transport=_batched_service(calls), batch_size=10)
    sink.start()
    try:
        assert sink.flush(WAIT_S)
    finally:
        sink.stop()

    assert calls == [("batch", ids[0:10]), ("batch", ids[10:20]), ("batch", ids[20:25])]
    assert sink.stats().delivered == 25


def test_a_service_without_the_batch_route_gets_one_event_per_request(tmp_path: Path) -> None:
    calls: list[tuple[str, list[str]]] = []
    ids = [f"e{i}" for i in range(4)]
    spool = tmp_path / "spool"
    first = _sink("http://service.example", "anj_x", spool)
    for event_id in ids:
        first.publish(make_event(id=event_id))
    first.stop()
    transport = _batched_service(calls, has_batch_route=False)
    sink = _sink("http://service.example", "anj_x", spool, transport=transport)
    sink.start()
    try:
        assert sink.flush(WAIT_S)
    finally:
        sink.stop()

    assert calls == [("single", [i]) for i in ids]


def test_constructor_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        HttpEventSink("http://x", "anj_x", tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="http"):
        HttpEventSink("ftp://x", "anj_x", tmp_path)
    # a port past 65535 spooled every event, unsent, for good
    with pytest.raises(ValueError, match="80800': the port is out of range"):
        HttpEventSink("http://anjian.plant:80800", "anj_x", tmp_path)
    with pytest.raises(ValueError, match=r"'http://\*\*\*:\*\*\*@a b': the host holds a space"):
        HttpEventSink("http://user:Secr3t@a b", "anj_x", tmp_path)
    with pytest.raises(ValueError, match="token"):
        HttpEventSink("http://x", "", tmp_path)


# --------------------------------------------------------------- against a real service


def test_events_reach_the_service_and_duplicates_are_ignored(
    app: FastAPI, token: str, tmp_path: Path
) -> None:
    server = ServerThread(app).start()
    sink = _sink(server.base_url, token, tmp_path / "spool")
    sink.start()
    event = make_event()
    try:
        sink.publish(event)
        sink.publish(event)  # a resend after a crash, say
        sink.publish(make_event(id=event.id, revision=2, ended_at=1_700_000_030.0))
        assert sink.flush(WAIT_S)
    finally:
        sink.stop()
        server.stop()

    stored = app.state.store.get_event(event.id)
    assert stored is not None and (stored.revision, stored.ended_at) == (2, 1_700_000_030.0)
    assert sink.stats().delivered == 3
    assert len(sink.spool) == 0


@pytest.mark.slow
def test_events_published_while_the_service_is_down_arrive_in_order_once_it_is_back(
    app: FastAPI, token: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outage is logged once, not at every attempt (a line every backoff: 2,880 a day), and its end once."""
    port = unused_port()
    sink = _sink(f"http://127.0.0.1:{port}", token, tmp_path / "spool")
    sink.start()
    ids = [f"outage-{i:02d}" for i in range(30)]
    try:
        with caplog.at_level(logging.INFO, logger="anjian.pipeline.http_sink"):
            for event_id in ids:
                sink.publish(make_event(id=event_id))
            wait_until(lambda: sink.stats().spooled == 30 and sink.stats().failed_attempts >= 5, WAIT_S)
            assert len(sink.spool) == 30
            failures = [r for r in caplog.records if "service unreachable" in r.getMessage()]
            assert len(failures) == 1 and failures[0].levelno == logging.WARNING

            server = ServerThread(app, port=port).start()
            try:
                assert sink.flush(WAIT_S)
            finally:
                server.stop()
    finally:
        sink.stop()

    assert _stored_ids_in_arrival_order(app) == ids
    assert [r.getMessage() for r in caplog.records if "takes events again" in r.getMessage()] == [
        "ingest: the service takes events again; 0 event(s) spooled"
    ]


@pytest.mark.slow
def test_spooled_events_survive_kill_9_of_the_pipeline_process(
    app: FastAPI, token: str, tmp_path: Path
) -> None:
    port = unused_port()
    spool = tmp_path / "spool"
    script = textwrap.dedent(
        f"""
        import sys, time
        from anjian.pipeline.http_sink import HttpEventSink
        from tests.factories import make_event
        sink = HttpEventSink("http://127.0.0.1:{port}", {token!r}, {str(spool)!r}, backoff_base_s=0.05)
        sink.start()
        for i in range(20):
            sink.publish(make_event(id=f"crash-{{i:02d}}"))
        while sink.stats().spooled < 20:
            time.sleep(0.01)
        print("spooled", flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "spooled"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)

    server = ServerThread(app, port=port).start()
    restarted = _sink(server.base_url, token, spool)
    restarted.start()
    try:
        assert restarted.flush(WAIT_S)
    finally:
        restarted.stop()
        server.stop()

    assert _stored_ids_in_arrival_order(app) == [f"crash-{i:02d}" for i in range(20)]


def test_the_sender_outlives_a_disk_error_on_the_spool(tmp_path: Path) -> None:
    """Moving a refused record aside fails once (a full disk): the sender logs it, pauses and carries on."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ingest/batch":
            return httpx.Response(404)  # one event per request
        event_id = event_from_json(json.loads(request.content)).id
        return httpx.Response(422 if event_id == "bad" else 200, json={"detail": "nope"})

    sink = _sink("http://service.example", "anj_x", tmp_path / "spool", transport=httpx.MockTransport(handle))
    reject = sink._spool.reject
    failures = iter([OSError(28, "No space left on device")])

    def full_disk_once(seq: int, reason: str) -> Path:
        error = next(failures, None)
        if error is not None:
            raise error
        return reject(seq, reason)

    sink._spool.reject = full_disk_once  # type: ignore[method-assign]
    sink.start()
    try:
        for event_id in ("bad", "good"):
            sink.publish(make_event(id=event_id))
        assert sink.flush(WAIT_S), "the sender died with the disk error"
    finally:
        sink.stop()
    assert (sink.stats().rejected, sink.stats().delivered) == (1, 1)


def test_past_half_its_cap_the_spool_keeps_the_alerts_without_their_pictures(tmp_path: Path) -> None:
    """The service away: the first revisions keep their snapshots; once the spool holds half its cap, later ones
    go without (the other half is for alerts: at the cap the oldest go)."""
    snapshot = b"\xff\xd8\xff" + bytes(40_000)  # ~40 kB JPEG-sized payload, ~56 kB on disk as base64
    sink = _sink(
        "http://127.0.0.1:9", "anj_x", tmp_path / "spool", max_spool_bytes=300_000
    )  # nothing listens
    sink.start()
    try:
        for i in range(6):
            sink.publish(make_event(id=f"e{i}", snapshot_jpeg=snapshot))
        wait_until(lambda: sink.stats().spooled == 6, WAIT_S)
    finally:
        sink.stop()
    stats = sink.stats()
    assert stats.evidence_dropped >= 2 and stats.spool_errors == 0 and stats.evicted == 0
    records = [json.loads(path.read_bytes()) for path in sorted((tmp_path / "spool").glob("*.rec"))]
    assert [r["id"] for r in records] == [f"e{i}" for i in range(6)]  # every alert kept, in order
    with_pictures = [r["snapshot_jpeg_b64"] is not None for r in records]
    assert with_pictures[:2] == [True, True] and with_pictures[-1] is False
