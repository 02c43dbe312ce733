"""``anjian bench service``: webhook delivery latency under a burst, and event-ingest throughput, on this machine.

Everything runs on loopback in one process, against a fresh database (a SQLite
file in a temp folder unless a URL is given):

- **Webhook burst**: ``events`` events are stored as fast as the store takes them,
  each announced to one signed subscription whose receiver (a threaded
  ``http.server`` on 127.0.0.1) answers 204. Latency is per delivery, from the
  outbox row's creation to its successful POST. Baseline: a bare signed POST to the
  same receiver, measured in the same run.
- **Ingest**: ``ingest_events`` events (with a 30 kB snapshot) are POSTed one after
  another to ``/ingest/events`` of the real app under uvicorn. Baseline: the same
  events through ``StoreSink`` in-process (no HTTP), measured in the same run.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import uvicorn

from pipeline.event import Behaviour, Event, EventBox, RiskLevel
from pipeline.event_json import event_to_json
from service.app import create_app
from service.config import AnjianConfig, SiteConfig, StorageConfig, WorkshopConfig
from service.database import sqlite_url
from service.escalation import Escalator
from service.evidence import EvidenceStore
from service.records import DeliveryStatus
from service.sink import StoreSink
from service.store import EventStore
from service.subscriptions import SubscriptionSpec
from service.webhooks import WebhookDispatcher, sign_payload

__all__ = ["ServiceBenchReport", "run_service_bench"]

_SNAPSHOT = b"\xff\xd8" + os.urandom(30_000) + b"\xff\xd9"
_SECRET = "bench-secret-0123456789"


@dataclass(frozen=True, slots=True)
class ServiceBenchReport:
    """What ``run_service_bench`` measured; times in seconds."""

    events: int
    workers: int
    claim_batch: int
    database: str
    latency_p50_s: float
    latency_p95_s: float
    latency_max_s: float
    burst_drain_s: float
    one_by_one_p50_s: float
    one_by_one_drain_s: float
    bare_post_p50_s: float
    ingest_events: int
    ingest_per_s: float
    inprocess_per_s: float

    def render(self) -> str:
        """A short human report with the ratios against the baselines."""
        return "\n".join(
            [
                f"anjian bench service  ({self.database}, {os.cpu_count()} CPU(s))",
                (
                    f"webhook burst: {self.events} events, {self.workers} worker(s) claiming {self.claim_batch} at a"
                    f" time, drained in {self.burst_drain_s:.2f} s ({self.events / self.burst_drain_s:.0f} deliveries/s)"
                ),
                (
                    f"  delivery latency p50 {self.latency_p50_s * 1000:.1f} ms, p95 {self.latency_p95_s * 1000:.1f} ms,"
                    f" max {self.latency_max_s * 1000:.1f} ms (enqueue → 2xx)"
                ),
                (
                    f"  baseline: claiming 1 at a time, drained in {self.one_by_one_drain_s:.2f} s, latency p50"
                    f" {self.one_by_one_p50_s * 1000:.1f} ms (batching = {self.one_by_one_p50_s / self.latency_p50_s:.1f}x"
                    " lower p50)"
                ),
                (
                    f"  baseline: one bare signed POST p50 {self.bare_post_p50_s * 1000:.2f} ms"
                    f" (p50 latency = {self.latency_p50_s / self.bare_post_p50_s:.0f}× that, queueing included)"
                ),
                f"ingest: {self.ingest_events} events with 30 kB snapshots over HTTP: {self.ingest_per_s:.0f} events/s",
                (
                    f"  baseline: in-process StoreSink {self.inprocess_per_s:.0f} events/s"
                    f" (HTTP = {self.ingest_per_s / self.inprocess_per_s:.2f}× in-process)"
                ),
            ]
        )


class _Receiver:
    """A loopback webhook receiver answering 204, counting POSTs."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.count += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _event(index: int, *, snapshot: bytes | None, tag: str = "") -> Event:
    """A plausible open-flame event; ``tag`` keeps the ids of separate runs apart."""
    now = time.time()
    return Event(
        id=f"bench{tag}{index:07d}{os.getpid()}",
        revision=1,
        site_id="bench",
        workshop_id="w1",
        camera_id="cam-1",
        behaviour=Behaviour.OPEN_FLAME,
        severity=RiskLevel.RED,
        started_at=now,
        last_seen_at=now,
        confidence=0.9,
        boxes=(EventBox("fire", 0.9, (0.1, 0.2, 0.3, 0.4)),),
        message="bench",
        snapshot_jpeg=snapshot,
    )


def _percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _config(directory: Path, database_url: str | None) -> AnjianConfig:
    return AnjianConfig(
        site=SiteConfig(id="bench", workshops=[WorkshopConfig(id="w1")]),
        storage=StorageConfig(dir=directory, database_url=database_url),
    )


def _webhook_burst(
    directory: Path, database_url: str | None, events: int, workers: int, claim_batch: int
) -> tuple[list[float], float, float]:
    """Latencies of a burst of deliveries, the drain time, and the bare-POST baseline p50.

    Runs may share one database: each uses its own receiver, subscription and event ids.
    """
    receiver = _Receiver()
    directory.mkdir(parents=True, exist_ok=True)
    store = EventStore(database_url or sqlite_url(directory))
    tag = f"b{claim_batch}x"
    try:
        with httpx.Client() as client:
            bare: list[float] = []
            for _ in range(50):
                body = b'{"bench":true}'
                headers = {"X-Anjian-Signature": sign_payload(_SECRET, body, int(time.time()))}
                started = time.perf_counter()
                client.post(receiver.url, content=body, headers=headers)
                bare.append(time.perf_counter() - started)
        subscription = store.subscriptions.create(SubscriptionSpec(url=receiver.url, secret=_SECRET))
        delivered_before = store.outbox.count(DeliveryStatus.DELIVERED)
        dispatcher = WebhookDispatcher(store, workers=workers, claim_batch=claim_batch)
        dispatcher.start()
        started = time.perf_counter()
        for index in range(events):
            store.upsert_event(_event(index, snapshot=None, tag=tag))
            dispatcher.wake()
        while store.outbox.count(DeliveryStatus.DELIVERED) < delivered_before + events:
            time.sleep(0.02)
        drain_s = time.perf_counter() - started
        dispatcher.stop()
        store.subscriptions.deactivate(subscription.id)
        latencies = [
            (d.delivered_at or 0.0) - d.created_at
            for d in store.outbox.list(status=DeliveryStatus.DELIVERED, limit=delivered_before + events + 10)
            if d.event_id.startswith(f"bench{tag}")
        ]
        return latencies, drain_s, statistics.median(bare)
    finally:
        store.close()
        receiver.close()


def _ingest(directory: Path, database_url: str | None, count: int) -> tuple[float, float]:
    """Events per second over HTTP, and in-process through StoreSink."""
    config = _config(directory / "http", database_url)
    store = EventStore.from_config(config.storage)
    dispatcher = WebhookDispatcher(store)
    app = create_app(config, store=store, dispatcher=dispatcher, escalator=Escalator(store, config.sla))
    token = store.tokens.create("bench", "pipeline")[1]
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        bodies = [event_to_json(_event(i, snapshot=_SNAPSHOT)) for i in range(count)]
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as client:
            started = time.perf_counter()
            for body in bodies:
                client.post("/ingest/events", json=body).raise_for_status()
            http_per_s = count / (time.perf_counter() - started)
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()

    local = EventStore.from_config(StorageConfig(dir=directory / "local", database_url=None))
    try:
        sink = StoreSink(local, EvidenceStore(directory / "local"))
        events = [_event(count + i, snapshot=_SNAPSHOT) for i in range(count)]
        started = time.perf_counter()
        for event in events:
            sink.store_event(event)
        local_per_s = count / (time.perf_counter() - started)
    finally:
        local.close()
    return http_per_s, local_per_s


def _free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_service_bench(
    *,
    events: int = 1000,
    ingest_events: int = 1000,
    workers: int = 4,
    claim_batch: int = 64,
    database_url: str | None = None,
) -> ServiceBenchReport:
    """Run both measurements and return the figures.

    Args:
        events: Events in the webhook burst.
        ingest_events: Events POSTed to the ingest endpoint.
        workers: Webhook worker threads.
        claim_batch: Deliveries a worker claims at once (the burst is also run claiming one at a time).
        database_url: Database to use instead of a temp SQLite file (it must be empty).
    """
    if events < 1 or ingest_events < 1:
        raise ValueError(f"events and ingest_events must be >= 1, got {events} and {ingest_events}")
    with tempfile.TemporaryDirectory(prefix="anjian-bench-") as tmp:
        directory = Path(tmp)
        latencies, drain_s, bare_s = _webhook_burst(
            directory / "burst", database_url, events, workers, claim_batch
        )
        one_by_one, one_by_one_drain_s, _ = _webhook_burst(directory / "burst", database_url, events, workers, 1)
        http_per_s, local_per_s = _ingest(directory, None, ingest_events)
    return ServiceBenchReport(
        events=events,
        workers=workers,
        claim_batch=claim_batch,
        database="PostgreSQL" if database_url and database_url.startswith("postgresql") else "SQLite (WAL)",
        latency_p50_s=_percentile(latencies, 0.50),
        latency_p95_s=_percentile(latencies, 0.95),
        latency_max_s=max(latencies),
        burst_drain_s=drain_s,
        one_by_one_p50_s=_percentile(one_by_one, 0.50),
        one_by_one_drain_s=one_by_one_drain_s,
        bare_post_p50_s=bare_s,
        ingest_events=ingest_events,
        ingest_per_s=http_per_s,
        inprocess_per_s=local_per_s,
    )
