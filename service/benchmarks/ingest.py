"""``anjian bench service``'s ingest part: events/s taken at an offered rate, batched writer vs one write per request.

The service runs in a child process (the real app under uvicorn, on a fresh
SQLite file) so the load generator does not share its interpreter. The load
generator offers events at a fixed rate (open loop: a request is due at its
slot whether or not earlier ones were answered, so a slow service shows as
latency and errors, not as a lower offered rate), each with a 30 kB snapshot,
over up to ``connections`` keep-alive HTTP/1.1 connections. Latency is measured
from each request's slot to its response.

Three paths are measured in the same run:

- **pipeline batches**: the service as shipped, fed as ``anjian.pipeline.http_sink``
  feeds it: a few pipelines (one connection each) POST whatever is due to
  ``/ingest/batch`` (up to 50 revisions) as soon as their previous POST is answered;
- **batched**: the same service, one revision per request to ``/ingest/events``
  (committed by the one writer thread many revisions per transaction, ``anjian.service.sink``);
- **baseline**: the same app with ingest writing each request in its own
  transaction from a pool of 40 threads, the path before the writer.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import socket
import statistics
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Self

from anjian.pipeline.event import Event
from anjian.service.benchmarks.ports import free_port
from anjian.service.benchmarks.processes import process_rss_bytes
from anjian.service.config import AnjianConfig, StorageConfig
from anjian.service.store import EventStore, UpsertResult

__all__ = [
    "BASELINE",
    "BATCHED",
    "PIPELINE_BATCHES",
    "IngestRun",
    "RequestTemplate",
    "ingest_config",
    "measure_ingest",
    "offer",
    "offer_batches",
]

PIPELINE_BATCHES = "pipeline batches"
BATCHED = "batched"
BASELINE = "one write per request"
_THREADPOOL = 40  # FastAPI's default thread pool: how many requests the old path wrote at once
_REQUEST_TIMEOUT_S = 30.0
_READY_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class IngestRun:
    """What one offered rate against one server gave.

    Attributes:
        path: ``batched`` or ``one write per request``.
        offered_per_s: Events offered per second.
        seconds: How long they were offered.
        ok: Requests answered 200.
        achieved_per_s: ``ok`` over the time from the first slot to the last answer.
        latency_p50_s: Median slot-to-answer time of the 200s.
        latency_p95_s: 95th percentile of the same.
        errors: Everything else, by status code or ``timeout`` / ``connection``.
    """

    path: str
    offered_per_s: float
    seconds: float
    ok: int
    achieved_per_s: float
    latency_p50_s: float
    latency_p95_s: float
    errors: dict[str, int] = field(default_factory=dict)

    @classmethod
    def measured(
        cls, rate_per_s: float, seconds: float, latencies: list[float], errors: Counter[str], elapsed_s: float
    ) -> IngestRun:
        """The run of one offered rate (``path`` left for the caller): ``elapsed_s`` from first slot to last answer."""
        ordered = sorted(latencies) or [float("nan")]
        return cls(
            path="",
            offered_per_s=rate_per_s,
            seconds=seconds,
            ok=len(latencies),
            achieved_per_s=len(latencies) / max(elapsed_s, 1e-9),
            latency_p50_s=statistics.median(ordered),
            latency_p95_s=ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            errors=dict(errors),
        )

    def render(self) -> str:
        """One line of the report."""
        errors = sum(self.errors.values())
        detail = f" ({', '.join(f'{k}: {v}' for k, v in sorted(self.errors.items()))})" if errors else ""
        return (
            f"  {self.path:<22} {self.achieved_per_s:6.0f} events/s, p50 {self.latency_p50_s * 1000:7.1f} ms,"
            f" p95 {self.latency_p95_s * 1000:7.1f} ms, {errors} error(s){detail}"
        )


class _OneWritePerRequest:
    """The ingest path before the writer: each request stored in its own transaction, 40 at a time."""

    def __init__(self, store_event: Callable[[Event], UpsertResult]) -> None:
        self._store_event = store_event
        self._pool = ThreadPoolExecutor(_THREADPOOL, thread_name_prefix="baseline-ingest")

    def submit(self, event: Event) -> Future[UpsertResult]:
        return self._pool.submit(self._store_event, event)


def ingest_config(directory: Path) -> AnjianConfig:
    """The bench site: one workshop, one camera (never opened), storage in ``directory``."""
    return AnjianConfig.model_validate(
        {
            "site": {
                "id": "bench",
                "workshops": [{"id": "w1", "cameras": [{"id": "cam-1", "url": "rtsp://127.0.0.1:9/unused"}]}],
            },
            "storage": {"dir": str(directory)},
        }
    )


def _serve(directory: str, port: int, path: str) -> None:
    """Child process: serve the app on ``port`` (``path`` chooses the ingest path) until terminated."""
    import uvicorn

    from anjian.service.app import create_app

    app = create_app(ingest_config(Path(directory)))
    if path == BASELINE:
        baseline = _OneWritePerRequest(app.state.sink.store_event)
        app.state.sink = baseline
    uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, log_level="error")
    ).run()


class _Server:
    """The app in a child process (spawned: a clean interpreter, as ``anjian serve`` would be)."""

    def __init__(self, directory: Path, path: str) -> None:
        self.port = free_port()
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(target=_serve, args=(str(directory), self.port, path), daemon=True)

    def __enter__(self) -> Self:
        self._process.start()
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if not self._process.is_alive():
                    break
                time.sleep(0.1)
        self._process.kill()
        raise RuntimeError("the bench service did not start")

    def __exit__(self, *_exc: object) -> None:
        self._process.terminate()
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()

    @property
    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux), 0 when unknown."""
        return process_rss_bytes(self._process.pid)


class RequestTemplate:
    """The bytes of ingest requests, with a fresh event id per event (pre-encoded: the generator stays cheap)."""

    _ID = "0" * 32

    def __init__(self, port: int, token: str, snapshot: bytes) -> None:
        now = time.time()
        snapshot_b64 = base64.b64encode(snapshot).decode()
        self._body = (
            f'{{"schema_version":1,"id":"{self._ID}","revision":1,"site_id":"bench","workshop_id":"w1",'
            f'"camera_id":"cam-1","behaviour":"open_flame","severity":"red","started_at":{now!r},'
            f'"last_seen_at":{now!r},"ended_at":null,"confidence":0.9,"boxes":[{{"class_name":"fire",'
            '"confidence":0.9,"xyxy_norm":[0.1,0.2,0.3,0.4]}],"zone_id":null,"model_version":"bench",'
            f'"message":"bench","snapshot_jpeg_b64":"{snapshot_b64}","clip_mp4_b64":null,"track_id":null}}'
        ).encode()
        self._head = (
            f"HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._count = 0
        self._prefix = f"{os.getpid():08x}{int(now):08x}"

    def _event(self) -> bytes:
        self._count += 1
        event_id = f"{self._prefix}{self._count:016x}".encode()
        return self._body.replace(self._ID.encode(), event_id, 1)

    def _request(self, path: bytes, body: bytes) -> bytes:
        return b"POST " + path + b" " + self._head + str(len(body)).encode() + b"\r\n\r\n" + body

    def next(self) -> bytes:
        """A ``POST /ingest/events`` request of one new event."""
        return self._request(b"/ingest/events", self._event())

    def batch(self, size: int) -> bytes:
        """A ``POST /ingest/batch`` request of ``size`` new events."""
        body = b'{"events":[' + b",".join(self._event() for _ in range(size)) + b"]}"
        return self._request(b"/ingest/batch", body)


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response; returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def offer(
    port: int, template: RequestTemplate, rate_per_s: float, seconds: float, connections: int
) -> IngestRun:
    """Offer ``rate_per_s`` requests a second for ``seconds`` and collect the answers."""
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    opened = 0
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    last_answer = 0.0

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        nonlocal opened
        if idle.empty() and opened < connections:
            opened += 1
            return await asyncio.open_connection("127.0.0.1", port)
        return await idle.get()

    async def one(slot: float) -> None:
        nonlocal last_answer, opened
        reader, writer = await connection()
        try:
            writer.write(template.next())
            status = await asyncio.wait_for(_read_response(reader), _REQUEST_TIMEOUT_S)
        except TimeoutError:
            errors["timeout"] += 1
            writer.close()
            opened -= 1
            return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors["connection"] += 1
            writer.close()
            opened -= 1
            return
        now = time.perf_counter()
        last_answer = max(last_answer, now)
        if status == 200:
            latencies.append(now - slot)
        else:
            errors[str(status)] += 1
        idle.put_nowait((reader, writer))

    total = max(1, round(rate_per_s * seconds))
    started = time.perf_counter()
    tasks = []
    for index in range(total):
        slot = started + index / rate_per_s
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(slot)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    return IngestRun.measured(rate_per_s, seconds, latencies, errors, last_answer - started)


async def offer_batches(
    port: int,
    template: RequestTemplate,
    rate_per_s: float,
    seconds: float,
    *,
    senders: int = 4,
    batch_size: int = 50,
) -> IngestRun:
    """Offer ``rate_per_s`` events a second as ``senders`` pipelines would: each POSTs what is due, in batches.

    Events fall due at fixed slots (open loop) and are dealt round-robin to the
    senders; a sender takes every event due to it (up to ``batch_size``) as soon as
    its previous POST is answered, like ``anjian.pipeline.http_sink``. Latency is per event,
    from its slot to the answer of the batch that carried it.
    """
    queues: list[asyncio.Queue[float | None]] = [asyncio.Queue() for _ in range(senders)]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    last_answer = 0.0

    async def sender(due: asyncio.Queue[float | None]) -> None:
        nonlocal last_answer
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        is_done = False
        try:
            while not is_done:
                slots: list[float] = []
                first = await due.get()
                if first is None:
                    return
                slots.append(first)
                while len(slots) < batch_size and not due.empty():
                    slot = due.get_nowait()
                    if slot is None:
                        is_done = True
                        break
                    slots.append(slot)
                try:
                    writer.write(template.batch(len(slots)))
                    status = await asyncio.wait_for(_read_response(reader), _REQUEST_TIMEOUT_S)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors["timeout" if isinstance(exc, TimeoutError) else "connection"] += len(slots)
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                now = time.perf_counter()
                last_answer = max(last_answer, now)
                if status == 200:
                    latencies.extend(now - slot for slot in slots)
                else:
                    errors[str(status)] += len(slots)
        finally:
            writer.close()

    tasks = [asyncio.create_task(sender(due)) for due in queues]
    total = max(1, round(rate_per_s * seconds))
    started = time.perf_counter()
    for index in range(total):
        slot = started + index / rate_per_s
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queues[index % senders].put_nowait(slot)
    for due in queues:
        due.put_nowait(None)
    await asyncio.gather(*tasks)
    return IngestRun.measured(rate_per_s, seconds, latencies, errors, last_answer - started)


def measure_ingest(
    directory: Path,
    *,
    rates_per_s: tuple[float, ...] = (200.0, 500.0),
    seconds: float = 10.0,
    snapshot: bytes,
    connections: int = 64,
    warmup_s: float = 2.0,
) -> list[IngestRun]:
    """Offer each rate as pipeline batches and one per request to the shipped service, then to the baseline.

    Args:
        directory: An empty folder for the two servers' data.
        rates_per_s: Offered rates, in order, against each path.
        seconds: How long each rate is offered.
        snapshot: The JPEG bytes every event carries.
        connections: Most keep-alive connections the one-per-request generator opens.
        warmup_s: Seconds offered at the lowest rate before measuring (not reported).

    Returns:
        One run per (path, rate): pipeline batches, batched, baseline.
    """
    runs: list[IngestRun] = []
    for path in (BATCHED, BASELINE):
        data = directory / ("batched" if path == BATCHED else "baseline")
        store = EventStore.from_config(StorageConfig(dir=data))
        token = store.tokens.create("bench", "pipeline")[1]
        store.close()
        with _Server(data, path) as server:
            template = RequestTemplate(server.port, token, snapshot)
            asyncio.run(offer(server.port, template, min(rates_per_s), warmup_s, connections))
            for rate in rates_per_s:
                if path == BATCHED:
                    run = asyncio.run(offer_batches(server.port, template, rate, seconds))
                    runs.append(replace(run, path=PIPELINE_BATCHES))
                run = asyncio.run(offer(server.port, template, rate, seconds, connections))
                runs.append(replace(run, path=path))
    return runs
