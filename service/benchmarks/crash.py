"""``anjian bench service --crash-rounds N``: webhooks POSTed twice after kill -9 of the service.

A real ``anjian serve`` process takes events at a steady rate on ``/ingest/events``
(a client that re-sends whatever was not acknowledged, like the pipeline's HTTP
sink) and announces each to a real loopback receiver, which counts POSTs per
``Idempotency-Key``. The service is killed with SIGKILL at a random moment of each
round and started again on the same database; after the last round it runs until
every acknowledged event was delivered. A key POSTed more than once is a
duplicate: the receiver must deduplicate it (``webhook-id``), and the fewer the
better. An acknowledged event never delivered is a loss (there must be none).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from anjian.pipeline.event import Event
from anjian.pipeline.event_json import event_to_json
from anjian.service.benchmarks.events import bench_event
from anjian.service.benchmarks.ports import free_port
from anjian.service.benchmarks.receiver import WebhookReceiver
from anjian.service.benchmarks.service_process import ServiceProcess, create_token, write_site

__all__ = ["CrashBenchReport", "run_crash_bench"]

_DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class CrashBenchReport:
    """What ``run_crash_bench`` measured.

    Attributes:
        rounds: kill -9 rounds.
        rate_per_s: Events offered per second.
        acknowledged: Events the service acknowledged (each announced once).
        unacknowledged: Events still not acknowledged when the run ended (0 unless it timed out).
        posts: POSTs the receiver got.
        delivered: Distinct idempotency keys received.
        duplicates: POSTs beyond the first of their key.
        lost: Acknowledged events never delivered.
        resend_delay_s: For each duplicate, seconds between its first and second POST.
        before_kill_s: For each duplicate, seconds between its first POST and the kill that
            followed it: how long a success can stay unrecorded (the window a crash re-sends).
        restart_s: Seconds from each start to ``/readyz`` answering.
    """

    rounds: int
    rate_per_s: float
    acknowledged: int
    unacknowledged: int
    posts: int
    delivered: int
    duplicates: int
    lost: int
    resend_delay_s: tuple[float, ...]
    before_kill_s: tuple[float, ...]
    restart_s: tuple[float, ...]

    def render(self) -> str:
        """A short human report."""
        delays = (
            f"; re-sent {statistics.median(self.resend_delay_s):.1f} s (median) after the first POST,"
            f" which came {max(self.before_kill_s) * 1000:.0f} ms or less before the kill"
            if self.resend_delay_s
            else ""
        )
        first = (
            f"kill -9 rounds: {self.rounds}, ingest {self.rate_per_s:.0f} events/s, "
            f"service ready {statistics.median(self.restart_s):.1f} s after each start (median)"
        )
        second = (
            f"  acknowledged {self.acknowledged} events ({self.unacknowledged} never acknowledged), "
            f"receiver got {self.posts} POSTs for {self.delivered} idempotency keys: "
            f"{self.duplicates} duplicate(s){delays}, {self.lost} lost"
        )
        return f"{first}\n{second}"


class _Ingester:
    """Offers events at ``rate_per_s`` and re-sends what was not acknowledged, as the pipeline's sink does."""

    def __init__(self, base_url: str, token: str, rate_per_s: float) -> None:
        self.acknowledged: set[str] = set()
        self._unacknowledged: list[Event] = []
        self._base_url = base_url
        self._token = token
        self._interval_s = 1.0 / rate_per_s
        self._stop = threading.Event()
        self._is_offering = threading.Event()
        self._is_offering.set()
        self._thread = threading.Thread(target=self._run, name="bench-ingest", daemon=True)
        self._count = 0

    def start(self) -> None:
        self._thread.start()

    def stop_offering(self) -> None:
        """Make no new events; keep re-sending the unacknowledged ones."""
        self._is_offering.clear()

    def is_settled(self) -> bool:
        return not self._is_offering.is_set() and not self._unacknowledged

    @property
    def unacknowledged(self) -> int:
        return len(self._unacknowledged)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(
            base_url=self._base_url, headers={"Authorization": f"Bearer {self._token}"}, timeout=10.0
        ) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                if self._is_offering.is_set():
                    self._unacknowledged.append(bench_event(self._count, snapshot=None, tag="crash"))
                    self._count += 1
                for event in list(self._unacknowledged):
                    try:
                        response = client.post("/ingest/events", json=event_to_json(event))
                    except httpx.HTTPError:
                        break  # the service is down: keep it for later, in order
                    if response.status_code != 200:
                        break
                    self._unacknowledged.remove(event)
                    self.acknowledged.add(event.id)
                next_at += self._interval_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic() - 1.0)  # after an outage, do not burst to catch up


def run_crash_bench(
    *,
    rounds: int = 3,
    rate_per_s: float = 20.0,
    min_run_s: float = 3.0,
    max_run_s: float = 8.0,
    seed: int = 1,
) -> CrashBenchReport:
    """Kill the service ``rounds`` times under a steady ingest and count webhooks POSTed twice.

    Args:
        rounds: How many times the service is killed with SIGKILL.
        rate_per_s: Events offered per second.
        min_run_s: Shortest time the service runs before a kill.
        max_run_s: Longest time (the moment is drawn uniformly in between).
        seed: Seed of the kill moments.

    Raises:
        ValueError: A parameter is out of range.
        RuntimeError: The service did not start.
    """
    if rounds < 1 or rate_per_s <= 0 or not 0 < min_run_s <= max_run_s:
        raise ValueError(
            f"expected rounds >= 1, rate_per_s > 0 and 0 < min_run_s <= max_run_s, got {rounds}, "
            f"{rate_per_s}, {min_run_s}, {max_run_s}"
        )
    draw = random.Random(seed)
    receiver = WebhookReceiver()
    with tempfile.TemporaryDirectory(prefix="anjian-crash-bench-") as tmp:
        directory = Path(tmp)
        port = free_port()
        site = write_site(directory, receiver.url)
        service = ServiceProcess(site, port, directory / "service.log")
        token = create_token(site, "pipeline")
        ingester = _Ingester(f"http://127.0.0.1:{port}", token, rate_per_s)
        restarts: list[float] = []
        kills: list[float] = []
        try:
            restarts.append(service.start())
            ingester.start()
            for _ in range(rounds):
                time.sleep(draw.uniform(min_run_s, max_run_s))
                kills.append(time.monotonic())
                service.kill()
                restarts.append(service.start())
            time.sleep(min_run_s)
            ingester.stop_offering()
            deadline = time.monotonic() + _DRAIN_TIMEOUT_S
            while time.monotonic() < deadline and not (
                ingester.is_settled() and ingester.acknowledged <= receiver.delivered_ids()
            ):
                time.sleep(0.1)
        finally:
            ingester.stop()
            service.stop()
            receiver.close()
    posts = receiver.posts_by_key()
    duplicated = [times for times in posts.values() if len(times) > 1]
    delays = tuple(times[1] - times[0] for times in duplicated)
    before_kill = tuple(
        min((k - times[0] for k in kills if k >= times[0]), default=float("nan")) for times in duplicated
    )
    return CrashBenchReport(
        rounds=rounds,
        rate_per_s=rate_per_s,
        acknowledged=len(ingester.acknowledged),
        unacknowledged=ingester.unacknowledged,
        posts=sum(len(times) for times in posts.values()),
        delivered=len(posts),
        duplicates=sum(len(times) - 1 for times in posts.values()),
        lost=len(ingester.acknowledged - receiver.delivered_ids()),
        resend_delay_s=delays,
        before_kill_s=before_kill,
        restart_s=tuple(restarts),
    )
