"""``anjian bench service --soak S``: the memory of a running service under a steady load, then idle.

A real ``anjian serve`` process (child of this one) takes events with 30 kB
snapshots at a steady rate on ``/ingest/events`` for ``seconds``, announces each to
a loopback webhook receiver, and feeds a live-feed (``/stream``) client, as a site
does all day. Nobody acknowledges the alerts, and the site's red deadline is 30 s,
so SLA escalation (and its webhooks) runs from the warm-up on. Its resident memory (RSS, from ``/proc``) is sampled every
``sample_s``: after the warm-up, during the load, at the end, and after
``idle_s`` without load. A leak shows as RSS that keeps growing after the
warm-up; memory that is used but given back shows as the idle figure falling
back.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from anjian.service.benchmarks.events import SNAPSHOT_JPEG
from anjian.service.benchmarks.ingest import RequestTemplate, offer
from anjian.service.benchmarks.ports import free_port
from anjian.service.benchmarks.processes import process_rss_bytes
from anjian.service.benchmarks.receiver import WebhookReceiver
from anjian.service.benchmarks.service_process import ServiceProcess, create_token, write_site

__all__ = ["SoakReport", "run_soak_bench"]

_MB = 1024 * 1024
_SLA = {"red_s": 30.0, "check_interval_s": 5.0}  # escalation runs during the warm-up too


@dataclass(frozen=True, slots=True)
class SoakReport:
    """What ``run_soak_bench`` measured.

    Attributes:
        rate_per_s: Events offered per second.
        seconds: Length of the load.
        events_ok: Events the service acknowledged.
        errors: Events refused or failed.
        webhooks: Webhook POSTs the receiver got.
        live_messages: Live-feed messages the client got.
        warmup_s: Seconds of load before the reference sample.
        rss_mb: ``(seconds since the load began, RSS in MB)`` samples.
        idle_rss_mb: RSS after ``idle_s`` without load.
    """

    rate_per_s: float
    seconds: float
    events_ok: int
    errors: int
    webhooks: int
    live_messages: int
    warmup_s: float
    rss_mb: tuple[tuple[float, float], ...]
    idle_rss_mb: float

    @property
    def after_warmup_mb(self) -> float:
        """RSS at the first sample at or after the warm-up."""
        return next(mb for t, mb in self.rss_mb if t >= self.warmup_s)

    @property
    def end_mb(self) -> float:
        """RSS at the end of the load."""
        return self.rss_mb[-1][1]

    @property
    def growth_mb_per_hour(self) -> float:
        """Least-squares slope of RSS after the warm-up, in MB per hour."""
        points = [(t, mb) for t, mb in self.rss_mb if t >= self.warmup_s]
        if len(points) < 2:
            return 0.0
        mean_t = statistics.fmean(t for t, _ in points)
        mean_mb = statistics.fmean(mb for _, mb in points)
        spread = sum((t - mean_t) ** 2 for t, _ in points)
        slope = sum((t - mean_t) * (mb - mean_mb) for t, mb in points) / spread if spread else 0.0
        return slope * 3600

    def render(self) -> str:
        """A short human report."""
        samples = " ".join(f"{mb:.0f}" for _, mb in self.rss_mb)
        load = (
            f"soak: {self.rate_per_s:.0f} events/s for {self.seconds:.0f} s (30 kB snapshots), each announced by"
            f" webhook and on the live feed: {self.events_ok} events, {self.errors} error(s),"
            f" {self.webhooks} webhooks, {self.live_messages} live-feed messages"
        )
        memory = (
            f"  service RSS after {self.warmup_s:.0f} s warm-up {self.after_warmup_mb:.0f} MB, at the end"
            f" {self.end_mb:.0f} MB ({self.end_mb - self.after_warmup_mb:+.0f} MB,"
            f" trend {self.growth_mb_per_hour:+.0f} MB/h), after idle {self.idle_rss_mb:.0f} MB"
        )
        return f"{load}\n{memory}\n  RSS samples (MB): {samples}"


class _LiveFeedClient:
    """Reads ``/stream`` in a thread and counts the messages, as a dashboard would."""

    def __init__(self, base_url: str, token: str) -> None:
        self.messages = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(base_url, token), name="bench-live", daemon=True
        )
        self._thread.start()

    def _run(self, base_url: str, token: str) -> None:
        while not self._stop.is_set():
            try:
                with httpx.stream(
                    "GET", f"{base_url}/stream", headers={"Authorization": f"Bearer {token}"}, timeout=30
                ) as response:
                    for line in response.iter_lines():
                        if line.startswith("event: "):
                            self.messages += 1
                        if self._stop.is_set():
                            return
            except httpx.HTTPError:
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def run_soak_bench(
    *,
    seconds: float = 600.0,
    rate_per_s: float = 30.0,
    warmup_s: float = 60.0,
    sample_s: float = 30.0,
    idle_s: float = 60.0,
) -> SoakReport:
    """Load a real service for ``seconds`` and sample its RSS.

    Args:
        seconds: Length of the load.
        rate_per_s: Events offered per second.
        warmup_s: Load before the reference sample (caches, pools and arenas fill up).
        sample_s: Time between samples.
        idle_s: Quiet time after the load before the last sample.

    Raises:
        ValueError: A parameter is out of range.
        RuntimeError: The service did not start.
    """
    if not 0 < warmup_s < seconds or rate_per_s <= 0 or sample_s <= 0 or idle_s < 0:
        raise ValueError(
            "expected 0 < warmup_s < seconds, rate_per_s > 0, sample_s > 0 and idle_s >= 0, got "
            f"{warmup_s}, {seconds}, {rate_per_s}, {sample_s} and {idle_s}"
        )
    receiver = WebhookReceiver()
    with tempfile.TemporaryDirectory(prefix="anjian-soak-") as tmp:
        directory = Path(tmp)
        port = free_port()
        site = write_site(directory, receiver.url, sla=_SLA)
        service = ServiceProcess(site, port, directory / "service.log")
        pipeline = create_token(site, "pipeline")
        viewer = create_token(site, "viewer")
        live: _LiveFeedClient | None = None
        samples: list[tuple[float, float]] = []
        ok = errors = 0
        try:
            service.start()
            pid = service.process.pid if service.process is not None else None
            live = _LiveFeedClient(f"http://127.0.0.1:{port}", viewer)
            template = RequestTemplate(port, pipeline, SNAPSHOT_JPEG)
            started = time.monotonic()
            for index in range(math.ceil(seconds / sample_s)):
                chunk = asyncio.run(
                    offer(port, template, rate_per_s, min(sample_s, seconds - index * sample_s), 16)
                )
                ok += chunk.ok
                errors += sum(chunk.errors.values())
                samples.append((time.monotonic() - started, process_rss_bytes(pid) / _MB))
            time.sleep(idle_s)
            idle_mb = process_rss_bytes(pid) / _MB
        finally:
            if live is not None:
                live.stop()
            service.stop()
            receiver.close()
    return SoakReport(
        rate_per_s=rate_per_s,
        seconds=seconds,
        events_ok=ok,
        errors=errors,
        webhooks=len(receiver.requests),
        live_messages=live.messages if live is not None else 0,
        warmup_s=warmup_s,
        rss_mb=tuple(samples),
        idle_rss_mb=idle_mb,
    )
