"""An ``EventSink`` that POSTs events to a remote alert service, spooling them on disk while it is away.

``publish`` only puts the event on an in-memory queue (it never blocks the frame
path; a full queue drops the event and counts it). A spooler thread moves queued
events into a ``DiskSpool`` as they come (so they survive a restart of this process,
even while a POST hangs), and a sender thread delivers the spool's oldest records, in order, to ``POST {base_url}/ingest/batch``
(up to ``batch_size`` at once: a backlog after an outage, or a site with many
cameras, costs one request per batch, not per revision) or, for a lone record or a
service without the batch route, ``POST {base_url}/ingest/events``:

- 2xx: delivered, removed from the spool;
- 422 or 413 (the service refuses the event itself, or its size): moved to
  ``rejected/`` in the spool, logged, and the next one goes;
- anything else (connection refused, timeout, 5xx, 401/403 with a bad token): kept,
  retried after a backoff doubling from ``backoff_base_s`` up to ``backoff_max_s``.

A batch the service refuses (422 or 413: one bad revision refuses the whole batch)
is sent again one record at a time, so only the bad record is set aside.

The service deduplicates by event id and revision, so a record sent twice (the
process died after the POST and before removing it) is harmless.

The spool is bounded (``max_spool_bytes``, ``storage.max_spool_mb``: bytes as the disk
holds them, the folder's entries included; ``rejected/`` keeps at most a quarter of it
again). Once it holds half of it, revisions are spooled without their snapshot and clip
(``evidence_dropped``): the alerts outlast the pictures. At the bound, the oldest waiting
revisions are dropped to make room for the new one (``evicted``; an ERROR names the cap and
how to raise it, then one line a minute with the count). Why the oldest, not the newest: the
service has then been away for a day or more (1 GiB is ~250,000 revisions without pictures,
each taking a 4 KiB block), and each revision carries its whole alert (the service keeps the
highest), so an incident that still goes on keeps its newer revisions: what goes is its first
picture and the revisions of incidents that ended long ago. Refusing new revisions instead
would lose every incident that starts from then on (a fire now) and the end of every one
that goes on, for the rest of the outage: the control room must see what happens now when the
link comes back. A disk that refuses writes loses each revision that comes (``spool_errors``),
logged with its traceback once, then once a minute with the count, and once when writing works
again. A revision that alone takes more than the whole cap cannot be spooled at all (``too_large``,
not ``spool_errors``: the disk is fine): an ERROR names it, its size and the setting, then one
line a minute with the count.

``report_health`` POSTs the pipeline's camera health (``HealthReportWire``) to
``POST {base_url}/ingest/health`` through the same client, once: a report that does not
get through is not retried, the next one replaces it (the caller sends one every few
seconds). A service without the route (404) is told nothing more.

Example:
    >>> sink = HttpEventSink("http://alerts.local:8000", token, Path("data/spool"))
    >>> sink.start()
    >>> runner = PipelineRunner(site_id, assignments, detector, sink)
    ...
    >>> sink.stop()
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from anjian.cameras.backoff import backoff_delay_s
from anjian.cameras.url import mask_url, network_url_problem
from anjian.pipeline.counters import Counters
from anjian.pipeline.event import Event
from anjian.pipeline.event_wire import EventWire
from anjian.pipeline.health_wire import HealthReportWire
from anjian.pipeline.log_throttle import LogThrottle
from anjian.pipeline.spool import DiskSpool, RecordTooLargeError

__all__ = ["HttpEventSink", "HttpSinkStats"]

logger = logging.getLogger(__name__)

_INGEST_PATH = "/ingest/events"
_BATCH_PATH = "/ingest/batch"
_HEALTH_PATH = "/ingest/health"
_BATCH_MAX_BYTES = 8 * 1024 * 1024  # well under the service's 64 MiB ingest body limit
_ERROR_BODY_CHARS = 300
_FAILURE_LOG_INTERVAL_S = 60.0  # a failure that goes on is logged again this often, with the attempts between
_MB = 1024 * 1024
DEFAULT_MAX_SPOOL_BYTES = 1024 * _MB
"""Most bytes the spool takes on disk: past half of it revisions are kept without their snapshot and clip,
at it the oldest are dropped (with pictures about a week of a busy site's alerts; then ~250,000 more
revisions, each taking a 4 KiB block)."""
_EVIDENCE_SHARE = 0.5  # share of max_spool_bytes the spool may hold before revisions go without pictures
_REJECTED_SHARE = 0.25  # rejected/ keeps at most this share of max_spool_bytes again
_MIN_REJECTED_BYTES = _MB
_CAP_SETTING = "storage.max_spool_mb"
_JSON = {"Content-Type": "application/json"}
_HEALTH_ROUTE_RETRY_S = (
    300.0  # a service without /ingest/health is asked again this often (it may be upgraded)
)
_NO_HEALTH_ROUTE = "the service has no /ingest/health route (an older anjian); camera health is not reported"


@dataclass(frozen=True, slots=True)
class HttpSinkStats:
    """Counters of an ``HttpEventSink`` since it was created.

    Attributes:
        published: Events handed to ``publish``.
        dropped: Events lost because the in-memory queue was full.
        spooled: Events written to the disk spool.
        delivered: Events the service accepted (including duplicates it ignored).
        rejected: Events the service refused for good (moved to ``rejected/``).
        failed_attempts: POSTs that failed and will be retried.
        spool_errors: Events lost because the spool could not be written (a full or read-only disk).
        evidence_dropped: Events spooled without their snapshot and clip because the spool held
            half of ``max_spool_bytes`` (the service was away long): the alert still goes.
        evicted: Spooled revisions dropped, oldest first, to keep the spool within
            ``max_spool_bytes``: lost. Those being sent are passed over (they arrive).
        too_large: Events lost because one alone takes more than ``max_spool_bytes``
            (``storage.max_spool_mb``) without its pictures; not in ``spool_errors``: the disk is fine.
    """

    published: int = 0
    dropped: int = 0
    spooled: int = 0
    delivered: int = 0
    rejected: int = 0
    failed_attempts: int = 0
    spool_errors: int = 0
    evidence_dropped: int = 0
    evicted: int = 0
    too_large: int = 0


class HttpEventSink:
    """Implements ``anjian.pipeline.sink.EventSink`` by POSTing events to the alert service, with a disk spool.

    Args:
        base_url: The service root, e.g. ``"http://127.0.0.1:8000"``.
        token: A ``pipeline``-role API token.
        spool_dir: Where undelivered events wait; records left by an earlier
            process are delivered first.
        transport: httpx transport (inject ``httpx.MockTransport`` in unit tests).
        queue_size: Events held in memory before ``publish`` starts dropping.
        timeout_s: Per-request timeout.
        backoff_base_s: Wait after the first failed POST, doubled after each.
        backoff_max_s: Longest wait between POSTs while the service is away.
        is_fsync: Flush spool records to disk (turn off only in tests).
        batch_size: Most records per ``POST /ingest/batch`` (1: one request per record).
        max_spool_bytes: Most bytes the spool takes on disk (``rejected/`` a quarter of it again): past
            half of it revisions are spooled without their snapshot and clip (``evidence_dropped``), at it
            the oldest are dropped (``evicted``): a service away for days must not fill the disk the
            incident journal and the evidence share.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        spool_dir: Path | str,
        *,
        transport: httpx.BaseTransport | None = None,
        queue_size: int = 10_000,
        timeout_s: float = 10.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        is_fsync: bool = True,
        batch_size: int = 50,
        max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
    ) -> None:
        # a port past 65535 or a host with a space spooled every event, unsent, for good
        problem = network_url_problem(base_url, ("http", "https"), what="the alert service")
        if problem is not None:
            raise ValueError(f"base_url must be an http(s) URL, got {mask_url(base_url)!r}: {problem}")
        if not token:
            raise ValueError("a pipeline token is required")
        if max_spool_bytes < 1:
            raise ValueError(f"max_spool_bytes must be >= 1, got {max_spool_bytes}")
        if not 1 <= batch_size <= 200:
            raise ValueError(f"batch_size must be 1-200 (the service takes at most 200), got {batch_size}")
        if queue_size < 1 or timeout_s <= 0 or backoff_base_s <= 0 or backoff_max_s < backoff_base_s:
            raise ValueError(
                "expected queue_size >= 1, timeout_s > 0 and 0 < backoff_base_s <= backoff_max_s, got "
                f"{queue_size}, {timeout_s}, {backoff_base_s}, {backoff_max_s}"
            )
        self._url = base_url.rstrip("/") + _INGEST_PATH
        self._batch_url = base_url.rstrip("/") + _BATCH_PATH
        self._health_url = base_url.rstrip("/") + _HEALTH_PATH
        self._health_problem: str | None = None  # the last report's failure, logged once until it changes
        self._health_route_retry_at = 0.0  # monotonic: when a service without /ingest/health is asked again
        self._failure: str | None = None  # the kind of the last logged ingest failure; None: delivering
        self._failure_log = LogThrottle(_FAILURE_LOG_INTERVAL_S)
        self._batch_size = batch_size
        self._max_spool_bytes = max_spool_bytes
        self._max_evidence_bytes = int(max_spool_bytes * _EVIDENCE_SHARE)
        self._is_spool_full = False
        self._spool_log = LogThrottle(_FAILURE_LOG_INTERVAL_S)  # revisions lost: disk refused, or evicted
        self._lost_since_write = 0  # revisions the disk refused since the last one written
        self._spool = DiskSpool(
            spool_dir,
            is_fsync=is_fsync,
            max_bytes=max_spool_bytes,
            max_rejected_bytes=max(_MIN_REJECTED_BYTES, int(max_spool_bytes * _REJECTED_SHARE)),
        )
        self._evicted_seen = (
            0  # the spool's count last read; one opened under a lower cap dropped some already
        )
        self._evicted_logged = 0  # evicted when the last line about it was logged
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=queue_size)
        self._client = httpx.Client(
            transport=transport, timeout=timeout_s, headers={"Authorization": f"Bearer {token}"}
        )
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._spooler: threading.Thread | None = None
        self._spooled = threading.Event()  # set by the spooler when the spool gained a record
        self._counters = Counters(HttpSinkStats())

    @property
    def spool(self) -> DiskSpool:
        """The disk spool (for health reporting and tests)."""
        return self._spool

    def stats(self) -> HttpSinkStats:
        """A copy of the counters."""
        return self._counters.snapshot()

    def publish(self, event: Event) -> None:
        """Queue one event revision for delivery; never blocks and never raises."""
        self._counters.add(published=1)
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._counters.add(dropped=1)
            logger.error(
                "%s: ingest queue full (%d); dropping revision %d of event %s",
                event.camera_id,
                self._queue.maxsize,
                event.revision,
                event.id,
            )

    def start(self) -> None:
        """Start the spooler and the sender threads.

        Raises:
            RuntimeError: It runs already, or was stopped (create a new sink).
        """
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError("an HttpEventSink starts once")
        self._spooler = threading.Thread(target=self._spool_loop, name="anjian-http-spool", daemon=True)
        self._thread = threading.Thread(target=self._run, name="anjian-http-sink", daemon=True)
        self._spooler.start()
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Spool whatever is queued, stop the sender (after the POST in flight) and close the client.

        Undelivered events stay in the spool for the next start. Safe to call twice.
        """
        self._stop.set()
        if self._spooler is not None:
            self._spooler.join(timeout_s)
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning("ingest sender did not stop within %.1fs", timeout_s)
                self._spool_queued()  # what came meanwhile is on disk for the next start
                return
        self._spool_queued()
        self._client.close()

    def report_health(self, report: HealthReportWire) -> bool:
        """POST the health of the pipeline's cameras to the service now; one try, never raises.

        A failure is logged when it differs from the previous one (not every few seconds
        while the service is away), and its end once. After a 404 (a service without the
        route) nothing more is sent.

        Returns:
            ``True`` when the service took the report.
        """
        if self._health_problem == _NO_HEALTH_ROUTE and time.monotonic() < self._health_route_retry_at:
            return False  # an older service: asked again now and then (it may have been upgraded since)
        body = report.model_dump_json().encode()
        try:
            response = self._client.post(self._health_url, content=body, headers=_JSON)
        except httpx.HTTPError as exc:
            self._health_failed(f"service unreachable at {self._health_url}: {exc}")
            return False
        if response.status_code == httpx.codes.NOT_FOUND:
            self._health_failed(_NO_HEALTH_ROUTE)
            self._health_route_retry_at = time.monotonic() + _HEALTH_ROUTE_RETRY_S
            return False
        if not response.is_success:
            excerpt = response.text[:_ERROR_BODY_CHARS]
            self._health_failed(f"HTTP {response.status_code} from {self._health_url}: {excerpt}")
            return False
        if self._health_problem is not None:
            logger.info("camera health: the service takes the reports again")
            self._health_problem = None
        return True

    def _health_failed(self, problem: str) -> None:
        """Log a failed health report unless the previous one failed the same way."""
        if problem != self._health_problem:
            logger.warning("camera health: %s", problem)
            self._health_problem = problem

    def flush(self, timeout_s: float) -> bool:
        """Wait until every published event was delivered (or rejected).

        Returns:
            ``True`` when nothing is left, ``False`` when ``timeout_s`` ran out first.
        """
        deadline = time.monotonic() + timeout_s
        with self._idle:
            return self._idle.wait_for(
                lambda: self._in_memory() == 0 and len(self._spool) == 0,
                max(0.0, deadline - time.monotonic()),
            )

    def _in_memory(self) -> int:
        """Events published but not yet on disk (queued, or in the spooler's hands)."""
        stats = self.stats()
        return stats.published - stats.dropped - stats.spooled - stats.spool_errors - stats.too_large

    # ---------------------------------------------------------------- sender

    def _spool_loop(self) -> None:
        """Spooler loop: move each queued event to the disk spool as it comes, whatever the sender is doing."""
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._spool_one(event)
                self._spool_queued()
            except (
                Exception
            ):  # the spooler must outlive whatever one write raises (its OSErrors are counted there)
                logger.exception("event sink: spooling failed")
            self._spooled.set()

    def _run(self) -> None:
        """Sender loop: deliver the spool's oldest records, back off while the service is away."""
        failures = 0
        while not self._stop.is_set():
            self._spooled.clear()
            try:
                records = self._spool.peek_many(self._batch_size, _BATCH_MAX_BYTES)
                if not records:
                    with self._idle:
                        self._idle.notify_all()
                    self._spooled.wait(0.2)
                    continue
                if self._deliver(records):
                    failures = 0
                    continue
            except Exception:  # a full disk, a read error on the spool: the sender must outlive it
                logger.exception("event sink: sending from the spool failed; trying again after a pause")
            failures += 1
            self._stop.wait(backoff_delay_s(failures, base_s=self._backoff_base_s, max_s=self._backoff_max_s))

    def _spool_queued(self) -> None:
        """Move every queued event to the disk spool, in order."""
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return
            self._spool_one(event)

    def _spool_one(self, event: Event) -> None:
        """Serialise one event into the spool; a failing disk loses it (counted, logged once a minute)."""
        try:
            data = _encode(event)
            if event.snapshot_jpeg or event.clip_mp4:
                is_full = self._spool.size_bytes + len(data) > self._max_evidence_bytes
                if is_full != self._is_spool_full:
                    self._is_spool_full = is_full
                    logger.log(
                        logging.WARNING if is_full else logging.INFO,
                        "event spool %s: %s half its %.1f MB cap (%s): revisions are spooled %s their snapshots "
                        "and clips",
                        self._spool.directory,
                        "reached" if is_full else "back under",
                        self._max_spool_bytes / _MB,
                        _CAP_SETTING,
                        "without" if is_full else "with",
                    )
                if is_full:
                    # The service has been away long: keep the alerts coming, not a disk filling with pictures.
                    data = _encode(replace(event, snapshot_jpeg=None, clip_mp4=None))
                    self._counters.add(evidence_dropped=1)
            try:
                self._spool.append(data)
            except RecordTooLargeError:  # not the disk: it neither stops nor starts "writing"
                self._counters.add(too_large=1)
                self._too_large(event, len(data))
                return
        except Exception as exc:  # noqa: BLE001 - a full disk, an event that cannot be serialised: lost, counted
            self._counters.add(spool_errors=1)
            self._spool_failed(event, exc)
            return
        self._counters.add(spooled=1)
        if self._lost_since_write:
            logger.info(
                "event spool: writing again; %d revision(s) were lost meanwhile", self._lost_since_write
            )
            self._lost_since_write = 0
            self._spool_log.forget("write")
        self._note_evicted()

    def _spool_failed(self, event: Event, error: Exception) -> None:
        """Log a revision the spool could not take: the first with its traceback, then once a minute with the count."""
        self._lost_since_write += 1
        admitted = self._spool_log.admit("write")
        if admitted is None:
            return
        if admitted.is_first:
            logger.error(
                "%s: cannot spool revision %d of event %s; it is lost (a full or read-only disk loses "
                "every revision until it takes writes again)",
                event.camera_id,
                event.revision,
                event.id,
                exc_info=error,
            )
        else:
            logger.error(
                "event spool %s: still cannot write; %d revision(s) lost since the last line, %d since "
                "writing stopped (last: %s)",
                self._spool.directory,
                admitted.held_back + 1,
                self._lost_since_write,
                error,
            )

    def _too_large(self, event: Event, size: int) -> None:
        """Log a revision larger than the whole spool cap: the first at once, then once a minute with the count."""
        admitted = self._spool_log.admit("too large")
        if admitted is None:
            return
        logger.error(
            "%s: revision %d of event %s takes %d bytes, more than the whole %.2f MB spool cap (%s); it is "
            "lost%s. Raise %s",
            event.camera_id,
            event.revision,
            event.id,
            size,
            self._max_spool_bytes / _MB,
            _CAP_SETTING,
            f" ({admitted.held_back} more too large since the last line)" if admitted.held_back else "",
            _CAP_SETTING,
        )

    def _note_evicted(self) -> None:
        """Count and log (once a minute) revisions the spool dropped to stay within its cap."""
        evicted = self._spool.evicted
        dropped, self._evicted_seen = evicted - self._evicted_seen, evicted
        if dropped <= 0:
            return
        self._counters.add(evicted=dropped)
        if self._spool_log.admit("evicted") is None:
            return
        total = self.stats().evicted
        logger.error(
            "event spool %s is at its %.1f MB cap (%s): %d of the oldest undelivered revisions dropped to keep "
            "the newest (%d in all); the service has been away long: bring it back, or raise %s",
            self._spool.directory,
            self._max_spool_bytes / _MB,
            _CAP_SETTING,
            total - self._evicted_logged,
            total,
            _CAP_SETTING,
        )
        self._evicted_logged = total

    def _deliver(self, records: list[tuple[int, bytes]]) -> bool:
        """Deliver the oldest records, as one batch where it can; ``True`` when all left the spool."""
        if len(records) > 1:
            verdict = self._send_batch(records)
            if verdict is not None:
                return verdict
        return all(self._send(seq, data) for seq, data in records)  # stops at the first failure

    def _post(self, url: str, body: bytes) -> httpx.Response | None:
        """POST JSON; ``None`` (counted as a failed attempt, logged) when the service cannot be reached."""
        try:
            return self._client.post(url, content=body, headers=_JSON)
        except httpx.HTTPError as exc:
            self._failed("unreachable", f"service unreachable at {url}: {exc}")
            return None

    def _failed(self, kind: str, why: str) -> None:
        """Count a failed attempt (the records stay spooled and are retried after a backoff).

        Logged when its kind differs from the last one logged, else once a minute with the number
        of attempts in between: a service away for days wrote a line every backoff (2,880 a day).
        """
        self._counters.add(failed_attempts=1)
        admitted = self._failure_log.admit(is_news=kind != self._failure)
        if admitted is None:
            return
        between = (
            f" ({admitted.held_back} failed attempt(s) since the last line)" if admitted.held_back else ""
        )
        logger.warning("ingest: %s; %d event(s) spooled%s", why, len(self._spool), between)
        self._failure = kind

    def _delivering(self) -> None:
        """Log, once, that the service takes events again after failed attempts."""
        if self._failure is not None:
            logger.info("ingest: the service takes events again; %d event(s) spooled", len(self._spool))
            self._failure = None
            self._failure_log.forget()

    def _send_batch(self, records: list[tuple[int, bytes]]) -> bool | None:
        """POST records as one batch: ``True`` delivered, ``False`` retry later, ``None`` send them one by one."""
        response = self._post(
            self._batch_url, b'{"events":[' + b",".join(data for _, data in records) + b"]}"
        )
        if response is None:
            return False
        if response.is_success:
            for seq, _ in records:
                self._spool.remove(seq)
            self._counters.add(delivered=len(records))
            self._delivering()
            return True
        excerpt = response.text[:_ERROR_BODY_CHARS]
        if response.status_code in (httpx.codes.NOT_FOUND, httpx.codes.METHOD_NOT_ALLOWED):
            logger.info(
                "ingest: %s has no batch route (an older service); sending one event per request", self._url
            )
            self._batch_size = 1
            return None
        if response.status_code in (httpx.codes.UNPROCESSABLE_ENTITY, httpx.codes.REQUEST_ENTITY_TOO_LARGE):
            logger.warning(
                "ingest: the service refused a batch of %d (%s); sending them one by one",
                len(records),
                excerpt,
            )
            return None
        self._failed(
            f"HTTP {response.status_code}", f"HTTP {response.status_code} from {self._batch_url}: {excerpt}"
        )
        return False

    def _send(self, seq: int, data: bytes) -> bool:
        """POST one record; ``True`` when it left the spool (delivered or rejected)."""
        response = self._post(self._url, data)
        if response is None:
            return False
        if response.is_success:
            self._spool.remove(seq)
            self._counters.add(delivered=1)
            self._delivering()
            return True
        excerpt = response.text[:_ERROR_BODY_CHARS]
        if response.status_code in (httpx.codes.UNPROCESSABLE_ENTITY, httpx.codes.REQUEST_ENTITY_TOO_LARGE):
            where = self._spool.reject(seq, f"HTTP {response.status_code}: {excerpt}")
            self._counters.add(rejected=1)
            logger.error(
                "ingest: the service refused a spooled event (%s); %s",
                excerpt,
                "it had been dropped from the full spool" if where is None else f"moved to {where}",
            )
            return True
        self._failed(
            f"HTTP {response.status_code}", f"HTTP {response.status_code} from {self._url}: {excerpt}"
        )
        return False


def _encode(event: Event) -> bytes:
    """The spool record of one revision: its wire form as compact JSON."""
    return json.dumps(EventWire.from_event(event).model_dump(mode="json"), separators=(",", ":")).encode()
