"""``anjian bench service``: webhook delivery latency under a burst, and event-ingest throughput, on this machine.

Everything runs on loopback in one process, against a fresh database (a SQLite
file in a temp folder unless a URL is given):

- **Webhook burst**: ``events`` events are stored as fast as the store takes them,
  each announced to one signed subscription whose receiver (a threaded
  ``http.server`` on 127.0.0.1) answers 204. Latency is per delivery, from the
  outbox row's creation to its successful POST. Baseline: a bare signed POST to the
  same receiver, measured in the same run.
- **Ingest**: events with a 30 kB snapshot offered at fixed rates to
  ``/ingest/events`` of the real app in a child process (``anjian.service.benchmarks.ingest``):
  events/s achieved, p50/p95 latency and errors, for the shipped service fed as
  pipelines feed it (``/ingest/batch``) and one event per request, and, as the
  baseline, the one-transaction-per-request path, in the same run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from anjian.service.benchmarks.events import SNAPSHOT_JPEG, bench_event
from anjian.service.benchmarks.ingest import BASELINE, BATCHED, PIPELINE_BATCHES, IngestRun, measure_ingest
from anjian.service.benchmarks.receiver import WebhookReceiver
from anjian.service.database import sqlite_url
from anjian.service.records import DeliveryStatus
from anjian.service.store import EventStore
from anjian.service.subscriptions import SubscriptionSpec
from anjian.service.webhooks import WebhookDispatcher, sign_payload

__all__ = ["ServiceBenchReport", "run_service_bench"]

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
    ingest: tuple[IngestRun, ...]

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
            ]
            + _render_ingest(self.ingest)
        )


def _render_ingest(runs: tuple[IngestRun, ...]) -> list[str]:
    """The ingest lines: per offered rate, pipeline batches, one per request and the baseline, and their ratios."""
    lines = []
    for rate in sorted({run.offered_per_s for run in runs}):
        at_rate = {run.path: run for run in runs if run.offered_per_s == rate}
        pipeline, batched, baseline = (at_rate.get(p) for p in (PIPELINE_BATCHES, BATCHED, BASELINE))
        seconds = next(iter(at_rate.values())).seconds
        lines.append(f"ingest: {rate:.0f} events/s offered for {seconds:.0f} s, each with a 30 kB snapshot")
        lines += [run.render() for run in (pipeline, batched, baseline) if run is not None]
        if baseline is not None and baseline.achieved_per_s > 0:
            for run in (pipeline, batched):
                if run is not None:
                    lines.append(
                        f"  {run.path} = {run.achieved_per_s / baseline.achieved_per_s:.1f}x the baseline's events/s"
                    )
    return lines


def _percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _webhook_burst(
    directory: Path, database_url: str | None, events: int, workers: int, claim_batch: int
) -> tuple[list[float], float, float]:
    """Latencies of a burst of deliveries, the drain time, and the bare-POST baseline p50.

    Runs may share one database: each uses its own receiver, subscription and event ids.
    """
    receiver = WebhookReceiver()
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
            store.upsert_event(bench_event(index, snapshot=None, tag=tag))  # the outbox wakes the dispatcher
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


def run_service_bench(
    *,
    events: int = 1000,
    workers: int = 4,
    claim_batch: int = 64,
    database_url: str | None = None,
    ingest_rates_per_s: tuple[float, ...] = (200.0, 500.0),
    ingest_seconds: float = 10.0,
) -> ServiceBenchReport:
    """Run both measurements and return the figures.

    Args:
        events: Events in the webhook burst.
        workers: Webhook worker threads.
        claim_batch: Deliveries a worker claims at once (the burst is also run claiming one at a time).
        database_url: Database of the burst instead of a temp SQLite file (it must be empty);
            ingest always runs on SQLite, the default storage.
        ingest_rates_per_s: Rates offered to ``/ingest/events``, each for ``ingest_seconds``.
        ingest_seconds: How long each rate is offered.
    """
    if events < 1 or not ingest_rates_per_s or min(ingest_rates_per_s) <= 0 or ingest_seconds <= 0:
        raise ValueError(
            "expected events >= 1, ingest rates > 0 and ingest_seconds > 0, got "
            f"{events}, {ingest_rates_per_s} and {ingest_seconds}"
        )
    with tempfile.TemporaryDirectory(prefix="anjian-bench-") as tmp:
        directory = Path(tmp)
        latencies, drain_s, bare_s = _webhook_burst(
            directory / "burst", database_url, events, workers, claim_batch
        )
        one_by_one, one_by_one_drain_s, _ = _webhook_burst(
            directory / "burst", database_url, events, workers, 1
        )
        ingest = measure_ingest(
            directory / "ingest",
            rates_per_s=ingest_rates_per_s,
            seconds=ingest_seconds,
            snapshot=SNAPSHOT_JPEG,
        )
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
        ingest=tuple(ingest),
    )
