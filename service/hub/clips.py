"""The hub's clips: fetched from their plant over the bus when first asked for, then served from a cache.

``HubClips.path`` answers with the cached file of an incident's clip, or fetches it
(``anjian.service.bus.clips.fetch_clip``), writes it to ``{storage.dir}/clips/<plant>/<event>.mp4``
atomically and evicts the least recently served clips beyond ``hub.clip_cache_bytes`` (the
one just fetched always stays). Two requests for the same clip at once fetch it once, and at
most ``hub.clip_fetches_per_plant`` clips come from one plant at a time: its uplink also
carries its alerts.

The API awaits ``HubClips.serve``: a cached clip at once, otherwise ``path`` in a thread of its
own, at most ``hub.max_clip_fetches`` at a time (one more is refused with ``HubBusyError``). A
fetch over a slow uplink takes minutes; in the API's shared thread pool (40 threads) 40 of them
froze every other request, ``/readyz`` included.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from anjian.models.atomic import write_atomic
from anjian.service.bus.clips import fetch_clip
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.errors import BusUnavailableError, PlantBusyError
from anjian.service.bus.subjects import check_bus_id
from anjian.service.hub.config import HubConfig

__all__ = ["HubBusyError", "HubClips"]

_SUFFIX: Final = ".mp4"


class HubBusyError(BusUnavailableError):
    """The hub is fetching as many clips as ``hub.max_clip_fetches`` already, from all its plants."""


@dataclass(slots=True)
class _Flight:
    """The fetch of one clip: its lock, how many requests hold or wait for it, and its failure.

    Requests that waited on a fetch that failed get its error at once, instead of each
    fetching again in turn (six viewers of a silent plant's clip waited 3, 6, ... 18 s).
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    waiters: int = 0
    error: Exception | None = None


class HubClips:
    """Clips of the plants' incidents, fetched on demand and cached.

    Args:
        config: The hub config (limits, timeouts, cache size, the plants' signing keys).
        connection: The hub's NATS connection (``HubBus.connection``).
        cache_dir: Where clips are kept; default ``{storage.dir}/clips``.
    """

    def __init__(
        self, config: HubConfig, connection: BusConnection, *, cache_dir: Path | None = None
    ) -> None:
        self._config = config.hub
        self._connection = connection
        self._dir = cache_dir or config.storage.dir / "clips"
        self._keys = {
            p.id: p.signing_key.get_secret_value() for p in config.plants if p.signing_key is not None
        }
        self._locks: dict[tuple[str, str], _Flight] = {}  # one fetch per clip at a time; dropped when idle
        self._plant_turns = {  # at most clip_fetches_per_plant fetches from one plant at a time
            p.id: threading.BoundedSemaphore(config.hub.clip_fetches_per_plant) for p in config.plants
        }
        self._locks_lock = threading.Lock()
        self._evict_lock = threading.Lock()
        self._fetch_slots = threading.BoundedSemaphore(config.hub.max_clip_fetches)  # hub-wide, for serve

    def cached(self, plant_id: str, event_id: str) -> Path:
        """Where the clip of an incident is (or would be) cached.

        Raises:
            ValueError: An id cannot be a file name.
        """
        check_bus_id("plant id", plant_id)
        if (
            not event_id
            or "/" in event_id
            or "\\" in event_id
            or event_id.startswith(".")
            or "\x00" in event_id
        ):
            raise ValueError(f"event id {event_id!r} cannot name a clip")
        return self._dir / plant_id / f"{event_id}{_SUFFIX}"

    async def serve(self, plant_id: str, event_id: str) -> Path:
        """``path`` for an event loop: the cached clip at once, or fetched in a thread of its own.

        The thread is none of the pool the API's other routes share, so a slow plant holds up none of
        them. It counts against ``hub.max_clip_fetches`` until ``path`` returns (waiting for its plant's
        turn included), even when the request that asked is gone.

        Raises:
            HubBusyError: ``hub.max_clip_fetches`` requests are fetching clips already (try again shortly).
            Exception: What ``path`` raises.
        """
        path = self.cached(plant_id, event_id)
        try:
            os.utime(path)  # cached (written whole, atomically): recently served, evicted last
        except FileNotFoundError:
            pass
        else:
            return path
        if not self._fetch_slots.acquire(blocking=False):
            raise HubBusyError(
                f"the hub is fetching {self._config.max_clip_fetches} clips already (hub.max_clip_fetches); "
                "try again shortly"
            )
        done: Future[Path] = Future()
        done.add_done_callback(lambda _: self._fetch_slots.release())
        fetcher = threading.Thread(
            target=self._path_into, args=(done, plant_id, event_id), name=f"hub-clip-{plant_id}", daemon=True
        )
        try:
            fetcher.start()
        except RuntimeError:  # no thread to be had: its slot back
            done.cancel()
            raise
        return await asyncio.wrap_future(done)

    def _path_into(self, done: Future[Path], plant_id: str, event_id: str) -> None:
        """Settle ``done`` with ``path``'s answer (a fetcher thread's work)."""
        if not done.set_running_or_notify_cancel():
            return
        try:
            done.set_result(self.path(plant_id, event_id))
        except Exception as exc:  # noqa: BLE001 - handed to the request that awaits it
            done.set_exception(exc)

    def path(self, plant_id: str, event_id: str) -> Path:
        """The cached clip of an incident, fetched from its plant first when not cached.

        Raises:
            ValueError: An id cannot be a file name.
            BusUnavailableError: The hub is not connected to its nats-server.
            PlantUnreachableError: The plant did not answer (offline, link down).
            ClipNotFoundError: The plant has no clip of that incident.
            ClipTooBigError: The clip is over ``hub.max_clip_bytes``.
            ClipError: The plant failed or sent bytes that do not check out.
        """
        path = self.cached(plant_id, event_id)
        key = (plant_id, event_id)
        with self._locks_lock:
            flight = self._locks.setdefault(key, _Flight())
            flight.waiters += 1
        try:
            with flight.lock:
                if path.exists():
                    os.utime(path)  # recently served: evicted last
                    return path
                if flight.error is not None:  # the fetch this request waited for failed: its answer, at once
                    raise flight.error
                try:
                    clip = self._fetch(plant_id, event_id)
                except Exception as exc:
                    flight.error = exc
                    raise
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, clip, is_fsync=False)  # a cache: lost on a crash, fetched again
        finally:
            with self._locks_lock:
                flight.waiters -= 1
                if flight.waiters == 0:
                    self._locks.pop(key, None)  # the next request fetches afresh
        self._evict(keep=path)
        return path

    def _fetch(self, plant_id: str, event_id: str) -> bytes:
        """Fetch a clip from its plant when a turn of that plant's is free within ``hub.clip_timeout_s``."""
        if not self._connection.is_connected:
            raise BusUnavailableError("the hub is not connected to its nats-server; clips cannot be fetched")
        turns = self._plant_turns.get(plant_id)
        if turns is None:  # no such plant in the config: the plant would not answer either
            return self._fetch_now(plant_id, event_id)
        if not turns.acquire(timeout=self._config.clip_timeout_s):
            raise PlantBusyError(
                f"plant {plant_id!r} is sending {self._config.clip_fetches_per_plant} clips to the hub already; "
                "try again shortly"
            )
        try:
            return self._fetch_now(plant_id, event_id)
        finally:
            turns.release()

    def _fetch_now(self, plant_id: str, event_id: str) -> bytes:
        config = self._config
        parts = math.ceil(config.max_clip_bytes / config.clip_part_bytes) + 1

        async def fetch(_js: object) -> bytes:
            return await fetch_clip(
                self._connection.client(),
                plant_id,
                event_id,
                signing_key=self._keys.get(plant_id),
                part_bytes=config.clip_part_bytes,
                max_bytes=config.max_clip_bytes,
                timeout_s=config.clip_timeout_s,
            )

        return self._connection.call(fetch, timeout_s=config.clip_timeout_s * parts)

    def _evict(self, *, keep: Path) -> None:
        """Delete the least recently served clips while the cache is over ``hub.clip_cache_bytes``."""
        with self._evict_lock:
            files = []
            for path in self._dir.glob(f"*/*{_SUFFIX}"):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                files.append((stat.st_mtime, stat.st_size, path))
            total = sum(size for _, size, _ in files)
            for _, size, path in sorted(files):
                if total <= self._config.clip_cache_bytes:
                    break
                if path != keep:
                    path.unlink(missing_ok=True)
                    total -= size
