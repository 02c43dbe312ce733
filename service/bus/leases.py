"""Camera leases of a plant's pipeline nodes, in a JetStream key-value bucket on the plant's nats-server.

One bucket per plant (``anjian_leases_<plant id>``), history 1, whose TTL is the lease's:

- ``camera.<camera id>`` holds the lease of a camera: the node running it, the process
  (``instance``: a random id per process, so two processes started under one node name
  tell their leases apart; a lease written before it existed has none) and when it
  renewed (JSON). A node takes a free camera with ``create`` (which fails when the key
  exists) and renews with ``update(last=revision)`` (which fails when someone else wrote
  the key since): compare-and-set, so two live nodes never both hold a camera.
- ``node.<name>`` says a node is alive (``put`` at every round).

A key not renewed within the TTL ages out on the server (its own clock, not the nodes'),
so the lease of a node that died (kill -9, power cut) is free after ``lease_ttl_s`` and
``create`` succeeds for the first live node that tries.

A second bucket, ``anjian_incidents_<plant id>`` (kept a week, not the lease TTL), holds
each camera's open incidents as its node last wrote them (``camera.<camera id>``: the
journal entries of ``anjian.pipeline.incident_journal``), so that the node taking a
camera over carries on with them instead of raising them again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    APIError,
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from anjian.service.bus.subjects import check_bus_id

__all__ = ["Lease", "LeaseBucket", "incident_bucket_name", "lease_bucket_name"]

logger = logging.getLogger(__name__)

_STREAM_NAME_IN_USE = 10058  # JetStream's error code: a stream of that name exists (created meanwhile)
_WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream's error codes: the key was written since that revision
_CREATE_TRIES = 3  # a key that ages out between create's two round trips is asked for again
_INCIDENTS_KEPT_S = 7 * 86_400.0  # a camera's open incidents outlive any outage of its nodes


def lease_bucket_name(plant_id: str) -> str:
    """The key-value bucket holding a plant's camera leases."""
    return f"anjian_leases_{check_bus_id('plant id', plant_id)}"


def incident_bucket_name(plant_id: str) -> str:
    """The key-value bucket holding the open incidents of a plant's cameras, for the node taking one over."""
    return f"anjian_incidents_{check_bus_id('plant id', plant_id)}"


async def _open_bucket(js: JetStreamContext, name: str, *, description: str, ttl_s: float) -> KeyValue:
    """Open a history-1 bucket, creating it, or setting its TTL to ``ttl_s`` when it differs."""
    try:
        kv = await js.key_value(name)
    except BucketNotFoundError:
        try:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=name, description=description, history=1, ttl=ttl_s, storage=StorageType.FILE
                )
            )
        except BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:  # another node created it meanwhile
                raise
            kv = await js.key_value(name)
    status = await kv.status()
    if status.ttl is None or abs(status.ttl - ttl_s) > 1e-3:  # the site's lease_ttl_s changed
        config = status.stream_info.config
        config.max_age = ttl_s
        config.duplicate_window = min(ttl_s, 120.0)
        await js.update_stream(config)
    return kv


@dataclass(frozen=True, slots=True)
class Lease:
    """A camera's lease as stored: who holds it, since which bucket revision, renewed when (epoch s).

    ``instance`` is the process of ``node`` that wrote it (empty: a lease written without one).
    """

    camera_id: str
    node: str
    revision: int
    renewed_at: float
    instance: str = ""


def _camera_key(camera_id: str) -> str:
    return f"camera.{camera_id}"


def _node_key(node: str) -> str:
    return f"node.{node}"


def _value(node: str, renewed_at: float, instance: str = "") -> bytes:
    value: dict[str, str | float] = {"node": node, "renewed_at": round(renewed_at, 3)}
    if instance:
        value["instance"] = instance
    return json.dumps(value).encode()


class LeaseBucket:
    """The leases of one plant, over its key-value bucket (async: run on the bus connection's loop).

    Args:
        kv: The leases' bucket (from ``LeaseBucket.ensure``).
        incidents: The cameras' open incidents' bucket.
        clock: Epoch seconds written into a lease (shown to people, never compared).

    Example:
        >>> bucket = await LeaseBucket.ensure(js, "plant-1", ttl_s=15)
        >>> lease = await bucket.acquire("cam-1", "line-a")
        >>> lease = await bucket.renew(lease)  # None: it was lost
    """

    def __init__(self, kv: KeyValue, incidents: KeyValue, *, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        # camera id -> the revision of its lease last warned of unreadable (one entry per camera)
        self._unreadable_warned: dict[str, int] = {}
        self._incidents = incidents
        self._clock = clock

    @classmethod
    async def ensure(cls, js: JetStreamContext, plant_id: str, *, ttl_s: float) -> LeaseBucket:
        """Open the plant's lease and incident buckets, creating them (or setting the leases' TTL) as needed.

        Raises:
            ValueError: ``plant_id`` cannot be part of a bucket name.
            nats.errors.Error: The server refused or did not answer.
        """
        leases = await _open_bucket(
            js,
            lease_bucket_name(plant_id),
            description=f"camera leases of plant {plant_id}'s pipeline nodes",
            ttl_s=ttl_s,
        )
        incidents = await _open_bucket(
            js,
            incident_bucket_name(plant_id),
            description=f"open incidents of plant {plant_id}'s cameras, for the node taking one over",
            ttl_s=_INCIDENTS_KEPT_S,
        )
        return cls(leases, incidents)

    @classmethod
    async def existing(cls, js: JetStreamContext, plant_id: str) -> LeaseBucket | None:
        """Open the plant's buckets as they are, to read them: nothing created, no setting changed.

        ``ensure`` sets the leases' TTL to the caller's ``lease_ttl_s``: a reader with an older
        site YAML (``anjian nodes``) re-timed the running nodes' leases.

        Returns:
            The buckets, or ``None`` when no node has created them yet.

        Raises:
            nats.errors.Error: The server refused or did not answer.
        """
        try:
            leases = await js.key_value(lease_bucket_name(plant_id))
            incidents = await js.key_value(incident_bucket_name(plant_id))
        except BucketNotFoundError:
            return None
        return cls(leases, incidents)

    async def ttl_s(self) -> float | None:
        """The leases' TTL the server applies now (another node, started with another ``lease_ttl_s``, may
        have set it); ``None`` when the bucket has none."""
        status = await self._kv.status()
        return status.ttl

    async def leases(self, camera_ids: Iterable[str]) -> dict[str, Lease]:
        """The live leases of these cameras (a camera without one is missing)."""
        found: dict[str, Lease] = {}
        for camera_id in camera_ids:
            try:
                entry = await self._kv.get(_camera_key(camera_id))
            except KeyNotFoundError:  # never taken, released, or aged out
                continue
            if entry.value is None or entry.revision is None:
                continue
            try:
                data = json.loads(entry.value)
                found[camera_id] = Lease(
                    camera_id,
                    str(data["node"]),
                    entry.revision,
                    float(data["renewed_at"]),
                    str(data.get("instance", "")),  # none in a lease written before instances existed
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # Held by someone this process cannot read (damaged, or another format): left out, the
                # camera is not taken (``acquire`` finds the key held) until the writer renews it in a
                # form this reads or it ages out; one unreadable camera must not fail every round.
                self._warn_unreadable(camera_id, entry.revision, exc)
        return found

    def _warn_unreadable(self, camera_id: str, revision: int, exc: Exception) -> None:
        """Log an unreadable lease once per revision (rounds come every few seconds)."""
        if self._unreadable_warned.get(camera_id) == revision:
            return
        self._unreadable_warned[camera_id] = revision
        logger.warning(
            "the lease of camera %s (revision %d) is unreadable (%s: %s); no node takes it until it is "
            "renewed readably or ages out",
            camera_id,
            revision,
            type(exc).__name__,
            exc,
        )

    async def alive_nodes(self, names: Iterable[str]) -> set[str]:
        """Which of these nodes announced themselves within the lease TTL."""
        alive: set[str] = set()
        for name in names:
            try:
                await self._kv.get(_node_key(name))
            except KeyNotFoundError:
                continue
            alive.add(name)
        return alive

    async def announce(self, node: str) -> None:
        """Say ``node`` is alive (until the TTL passes without another announcement)."""
        await self._kv.put(_node_key(node), _value(node, self._clock()))

    async def withdraw(self, node: str) -> None:
        """Say ``node`` is gone (a graceful stop), so no one waits for it to take its cameras."""
        await self._kv.delete(_node_key(node))

    async def acquire(self, camera_id: str, node: str, instance: str = "") -> Lease | None:
        """Take the lease of a camera no one holds, for ``node``'s process ``instance``.

        Returns ``None`` when someone holds it (another node won the race).
        """
        for _ in range(_CREATE_TRIES):
            now = self._clock()
            try:
                revision = await self._kv.create(_camera_key(camera_id), _value(node, now, instance))
            except KeyWrongLastSequenceError:
                return None
            except KeyNotFoundError:
                # The client's create found the key held, then read it to tell a deleted key from a
                # live one, and by then it had aged out on the server: it is free now, so ask again.
                continue
            return Lease(camera_id, node, revision, now, instance)
        return None

    async def renew(self, lease: Lease) -> Lease | None:
        """Extend a lease held since ``lease.revision``; ``None`` when it was lost (expired and taken, or released).

        It is written with ``lease.instance``: a process takes over the lease another process of
        its node wrote at that revision by passing the lease with its own instance.
        """
        now = self._clock()
        try:
            revision = await self._kv.update(
                _camera_key(lease.camera_id), _value(lease.node, now, lease.instance), last=lease.revision
            )
        except KeyWrongLastSequenceError:
            return None
        return Lease(lease.camera_id, lease.node, revision, now, lease.instance)

    async def release(self, lease: Lease) -> bool:
        """Give a lease up (it must still be ``lease.revision``); whether it was still held."""
        try:
            await self._kv.delete(_camera_key(lease.camera_id), last=lease.revision)
        except APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                return False
            raise
        return True

    async def save_incidents(self, camera_id: str, incidents: bytes) -> None:
        """Keep the camera's open incidents (JSON) for whichever node runs it next."""
        await self._incidents.put(_camera_key(camera_id), incidents)

    async def load_incidents(self, camera_ids: Iterable[str]) -> dict[str, bytes]:
        """The open incidents last saved for these cameras (a camera never saved is missing)."""
        found: dict[str, bytes] = {}
        for camera_id in camera_ids:
            try:
                entry = await self._incidents.get(_camera_key(camera_id))
            except KeyNotFoundError:
                continue
            if entry.value is not None:
                found[camera_id] = entry.value
        return found
