"""The hub's side of the bus: every plant's messages into the hub's store, supervisors' remarks out.

In. A durable pull consumer (``anjian-hub``, explicit acks) reads the hub's events stream,
which sources every configured plant's stream over the leaf connections. It takes up to
``bus.fetch_batch`` messages, writes them in one transaction (``HubStore.apply``,
idempotent, with the time each reached the stream: JetStream's timestamp, the same on a
redelivery, which orders a plant's health reports), and only then acks them. A hub killed
between the write and the ack gets the same messages again after ``ack_wait_s`` and writes
nothing twice. A message that is not a plant message, or claims another plant than the
stream it came from, is terminated (logged, never redelivered). Fields the hub does not know
(a plant upgraded before it) are left out and logged once; the rest of the message is
stored.

Unsigned. A message of a plant with a ``signing_key`` that the key did not sign (a wrong key
in either config, or another leaf node speaking for the plant: they share one account) is
set aside: copied to the hub's ``HUB_UNSIGNED`` stream (``anjian.hub.unsigned.<plant>``,
kept ``bus.retention_days``, a tenth of ``bus.max_stream_bytes`` at most, with the time it
reached the events stream), acked, logged and counted (``HubBusStats.unsigned``). It never
waits in the live consumer, whose 20,000 unacked messages at most would otherwise fill with
them and hold back every plant. At each start the hub looks through the set-aside messages
once and stores those its plants' keys sign now (a hub restarted with its key for the plant
corrected: nothing lost), deleting them from that stream; the others stay until they expire.
Messages a plant signed with a mistyped key of its own are stored only by a hub given that
same key.

Giving up. Only a message the hub itself cannot store while its database answers (a
poison message) is given up, after ``max_deliveries`` such failures, counted here per
stream sequence. A database that does not answer never gives a message up: the batch is
held back (nak with a delay doubling from ``outage_retry_s`` up to ``outage_retry_max_s``)
until it answers again, however long the outage. Those redeliveries do not count, so
JetStream's own delivery count (``num_delivered``) is not used for it; the durable consumer
has no ``max_deliver`` either (``ensure_durable``), so the server never drops a message on
its own.

Out. A remark is first stored in the hub's database, then published to the hub's
commands stream (``anjian.hub.command.<plant>``, ``Nats-Msg-Id`` = the remark's id, kept
``bus.remark_retention_days``) and marked sent; each plant's commands stream sources its own
subject. Remarks not yet taken by the bus (the hub's nats-server was down) are published
again every second, and those their plant has not confirmed (its ``RemarkReceipt`` marks
them delivered) every half of ``bus.remark_retention_days``, so a plant offline longer than
the stream keeps them still gets them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from anjian.pipeline.counters import Counters
from anjian.pipeline.log_throttle import LogThrottle
from anjian.service.bus import subjects
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.consuming import run_pull_consumer
from anjian.service.bus.messages import BusMessage, SupervisorRemark, parse_plant_message
from anjian.service.bus.signing import SIGNATURE_HEADER, is_signed_by, signature
from anjian.service.bus.streams import SourcedPlant, ensure_hub_streams
from anjian.service.bus.subjects import HUB_UNSIGNED_STREAM, unsigned_subject
from anjian.service.hub.config import HubConfig
from anjian.service.hub.store import HubStore

__all__ = ["HubBus", "HubBusStats"]

logger = logging.getLogger(__name__)

_RETRY_S: Final = 1.0
_OUTAGE_RETRY_S: Final = 2.0
_OUTAGE_RETRY_MAX_S: Final = 60.0
_RELAY_INTERVAL_S: Final = 1.0
_UNSIGNED_LOG_INTERVAL_S: Final = 60.0  # a plant's unsigned messages are logged at the first, then this often
_SUBJECT_HEADER: Final = "Anjian-Subject"  # a set-aside message's subject in the plant's stream
_STORED_AT_HEADER: Final = "Anjian-Stored-At"  # when a set-aside message reached the events stream (epoch s)
_PUBLISH_TIMEOUT_S: Final = 5.0
_RELEASE_FETCH_WAIT_S: Final = 1.0
_RELEASE_CONSUMER_IDLE_S: Final = 60.0  # the server deletes the look-through consumer after this idle
_MOST_UNKNOWN_FIELDS: Final = 50  # per plant, unknown fields logged (once each) at most
_DAY_S: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class HubBusStats:
    """Counters since start: messages received, written batches, terminated messages, remarks published,
    messages set aside as not signed with their plant's key, and set-aside messages stored once signed."""

    received: int = 0
    batches: int = 0
    terminated: int = 0
    remarks_sent: int = 0
    unsigned: int = 0
    released: int = 0


class HubBus:
    """Consumes every plant's messages into the store and publishes the supervisors' remarks.

    Args:
        config: The hub config (its NATS server, plants, batch size, ack wait).
        store: The hub's store.
        max_deliveries: Tries of a message the database refuses while it answers before the message
            is given up (terminated); tries during an outage do not count.
        outage_retry_s: First delay before messages come again while the database does not answer.
        outage_retry_max_s: Longest such delay (it doubles through an outage up to this).

    Raises:
        ValueError: A count below 1 or a delay not above 0 (or a longest delay below the first).
    """

    def __init__(
        self,
        config: HubConfig,
        store: HubStore,
        *,
        max_deliveries: int = 20,
        outage_retry_s: float = _OUTAGE_RETRY_S,
        outage_retry_max_s: float = _OUTAGE_RETRY_MAX_S,
    ) -> None:
        if max_deliveries < 1 or not 0 < outage_retry_s <= outage_retry_max_s:
            raise ValueError(
                "expected max_deliveries >= 1 and 0 < outage_retry_s <= outage_retry_max_s,"
                f" got {max_deliveries}, {outage_retry_s}, {outage_retry_max_s}"
            )
        self._max_deliveries = max_deliveries
        self._outage_retry_s = outage_retry_s
        self._outage_retry_max_s = outage_retry_max_s
        self._outage_naks = 0  # batches held back since the database last answered (the delay grows)
        # (stream, stream sequence): failures of that message while the database answered
        self._failures: dict[tuple[str, int], int] = {}
        self._config = config
        self._store = store
        self._plants = {plant.id for plant in config.plants}
        self._keys = {
            plant.id: plant.signing_key.get_secret_value()
            for plant in config.plants
            if plant.signing_key is not None
        }
        self.connection = BusConnection(config.bus.url, name="anjian-hub")
        self._unsigned: dict[str, int] = defaultdict(int)  # plant: messages set aside since start
        self._unsigned_log = LogThrottle(_UNSIGNED_LOG_INTERVAL_S)  # a line per plant
        self._unknown_fields: dict[str, set[str]] = defaultdict(set)  # plant: unknown fields logged
        self._is_set_up = False  # the hub's streams exist (the look through set-aside messages waits)
        self._writing = asyncio.Lock()  # one write at a time: the live consumer's, or the look-through's
        self._remarks_due = asyncio.Event()
        self._counters = Counters(HubBusStats())
        self._count = self._counters.add

    def stats(self) -> HubBusStats:
        """The counters as they are now."""
        return self._counters.snapshot()

    def start(self) -> None:
        """Connect (in the background) and start the consumer, the remark relay and the look through
        the messages set aside as unsigned."""
        self.connection.start()
        self.connection.spawn(self._consume())
        self.connection.spawn(self._relay_remarks())
        if self._keys:
            self.connection.spawn(self._release_signed())

    def stop(self) -> None:
        """Stop the consumer and the relay and close the connection; safe to call twice."""
        self.connection.stop()

    def remark_added(self) -> None:
        """Publish pending remarks now (the API calls it after storing one); thread-safe."""
        self.connection.call_soon(self._remarks_due.set)

    # ----------------------------------------------------------------- in

    async def _consume(self) -> None:
        """Fetch, store, ack, forever; after any fault (a server restart) set up again and resume."""
        bus = self._config.bus
        plants = [SourcedPlant(plant.id, plant.jetstream_domain) for plant in self._config.plants]

        async def setup(js: JetStreamContext) -> None:
            await ensure_hub_streams(
                js,
                plants,
                retention_days=bus.retention_days,
                max_bytes=bus.max_stream_bytes,
                remark_retention_days=bus.remark_retention_days,
            )
            self._is_set_up = True

        await run_pull_consumer(
            self.connection,
            stream=subjects.HUB_EVENTS_STREAM,
            durable=subjects.HUB_CONSUMER,
            batch=bus.fetch_batch,
            ack_wait_s=bus.ack_wait_s,
            setup=setup,
            handle=self._handle,
            name=f"hub ({len(plants)} plant(s))",
        )

    async def _handle(self, messages: list[Msg]) -> None:
        """Store a fetched batch in one transaction, then ack it; nak it when the database fails."""
        self._count(received=len(messages))
        good: list[tuple[Msg, BusMessage]] = []
        for message in messages:
            if not self._is_signed(message.subject, message.data, message.headers):
                await self._set_aside(message)
                continue
            parsed = self._parse(message.subject, message.data)
            if parsed is None:
                self._count(terminated=1)
                await message.term()
            else:
                good.append((message, parsed))
        if not good:
            return
        try:
            await self._apply([parsed for _, parsed in good], [_stored_at(message) for message, _ in good])
        except Exception as exc:  # noqa: BLE001 - an outage, or one message the database refuses
            if not await self._is_database_up():
                delay_s = self._outage_delay_s()
                logger.warning(
                    "hub: the database is down (%s); %d message(s) come again in %.0fs",
                    exc,
                    len(good),
                    delay_s,
                )
                for message, _ in good:
                    await message.nak(delay=delay_s)
                return
            self._outage_naks = 0
            logger.warning("hub: cannot store a batch of %d message(s) (%s); one by one", len(good), exc)
            for message, parsed in good:
                await self._store_alone(message, parsed)
            return
        self._outage_naks = 0
        for message, _ in good:
            self._failures.pop(_sequence(message), None)
            await message.ack()
        self._count(batches=1)

    async def _apply(self, messages: list[BusMessage], stored_at: list[float]) -> None:
        """Write messages (with when each reached the stream) in one transaction (``HubStore.apply``) in a
        worker thread, one write at a time."""
        apply = functools.partial(self._store.apply, messages, stored_at=stored_at)
        async with self._writing:
            await asyncio.get_running_loop().run_in_executor(None, apply)

    def _outage_delay_s(self) -> float:
        """The delay of the next hold-back through a database outage: doubling, up to ``outage_retry_max_s``."""
        exponent = min(self._outage_naks, 30)
        self._outage_naks += 1
        return min(self._outage_retry_s * 2.0**exponent, self._outage_retry_max_s)

    async def _is_database_up(self) -> bool:
        """Whether the database answers (a failed batch is then the fault of a message in it)."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._store.ping)
        except Exception:  # noqa: BLE001 - any failure: down
            return False
        return True

    async def _store_alone(self, message: Msg, parsed: BusMessage) -> None:
        """Store one message in its own transaction: ack it, or nak it, or give up on it after many tries.

        So one message the database refuses (a poison message) does not hold back the ones
        fetched with it; after ``max_deliveries`` failures it is terminated and logged with its
        stream sequence (it stays in the hub's stream for an operator to look at). Only
        failures while the database answers count (``_failures``, not JetStream's delivery
        count, which also counts outage redeliveries and unsigned holds): through an outage
        nothing is given up.
        """
        try:
            await self._apply([parsed], [_stored_at(message)])
        except Exception as exc:  # noqa: BLE001 - the message comes again, or is given up
            if not await self._is_database_up():
                await message.nak(delay=self._outage_delay_s())
                return
            self._outage_naks = 0
            sequence = _sequence(message)
            failures = self._failures.get(sequence, 0) + 1
            if failures >= self._max_deliveries:
                self._failures.pop(sequence, None)
                logger.error(
                    "hub: giving up on message %d of %s (plant %s) after %d failed tries: %s",
                    sequence[1],
                    sequence[0],
                    parsed.plant_id,
                    failures,
                    exc,
                )
                self._count(terminated=1)
                await message.term()
            else:
                self._failures[sequence] = failures
                await message.nak(delay=_RETRY_S)
            return
        self._outage_naks = 0
        self._failures.pop(_sequence(message), None)
        await message.ack()

    def _parse(self, subject: str, data: bytes) -> BusMessage | None:
        """The plant message, or ``None`` (logged) when it is malformed or not the sending plant's.

        Fields this hub does not know are left out, and logged once per plant and field.
        """
        try:
            parsed, unknown = parse_plant_message(data)
        except ValueError as exc:  # a ValidationError, or a time no date can hold
            logger.error("hub: dropping a malformed message on %s: %s", subject, _reasons(exc))
            return None
        if _subject_plant(subject) != parsed.plant_id or parsed.plant_id not in self._plants:
            logger.error(
                "hub: dropping a message of plant %r on %s (not a configured plant's own subject)",
                parsed.plant_id,
                subject,
            )
            return None
        logged = self._unknown_fields[parsed.plant_id]
        new = [name for name in unknown if name not in logged][: max(0, _MOST_UNKNOWN_FIELDS - len(logged))]
        if new:
            logged.update(new)
            logger.warning(
                "hub: plant %s sends field(s) this hub does not know (%s): stored without them; "
                "upgrade the hub to keep them",
                parsed.plant_id,
                ", ".join(new),
            )
        return parsed

    def _is_signed(self, subject: str, data: bytes, headers: dict[str, str] | None) -> bool:
        """Whether the message is signed with the key of the plant whose subject it came on (if it has one)."""
        plant_id = _subject_plant(subject)
        key = None if plant_id is None else self._keys.get(plant_id)
        return key is None or is_signed_by(key, data, headers)

    async def _set_aside(self, message: Msg) -> None:
        """An unsigned (or wrongly signed) message: copied to ``HUB_UNSIGNED``, then acked; logged and counted.

        So it never waits in the live consumer. A hub started with the key that signed it
        stores it then (``_release_signed``). When the copy fails (the hub's nats-server is
        in trouble) the message comes again after ``outage_retry_s``.
        """
        plant_id = _subject_plant(message.subject) or "unknown"  # a plant's: only those have keys
        stream, sequence = _sequence(message)
        headers = {
            _SUBJECT_HEADER: message.subject,
            _STORED_AT_HEADER: repr(_stored_at(message)),
            "Nats-Msg-Id": f"{stream}:{sequence}",
        }
        signed = (message.headers or {}).get(SIGNATURE_HEADER)
        if signed is not None:  # only the signature: other headers could set conditions on the publish
            headers[SIGNATURE_HEADER] = signed
        try:
            await self.connection.jetstream().publish(
                unsigned_subject(plant_id), message.data, timeout=_PUBLISH_TIMEOUT_S, headers=headers
            )
        except Exception as exc:  # noqa: BLE001 - it comes again
            logger.warning(
                "hub: cannot set aside unsigned message %d of %s (%s: %s); it comes again",
                sequence,
                stream,
                type(exc).__name__,
                exc,
            )
            await message.nak(delay=self._outage_retry_s)
            return
        await message.ack()
        self._count(unsigned=1)
        self._unsigned[plant_id] += 1
        if self._unsigned_log.admit(plant_id) is not None:
            logger.error(
                "hub: %d message(s) on %s since start not signed with plant %s's signing_key, set aside in %s "
                "(kept %g days; a hub started with the key that signed them stores them)",
                self._unsigned[plant_id],
                message.subject,
                plant_id,
                HUB_UNSIGNED_STREAM,
                self._config.bus.retention_days,
            )

    async def _release_signed(self) -> None:
        """Once after start: store the set-aside messages that the plants' keys sign now.

        A fault (the hub's nats-server, a database outage) starts the look-through over after
        a delay doubling from ``outage_retry_s`` up to ``outage_retry_max_s``; what was stored
        before it is not stored twice (idempotent writes), only looked at again.
        """
        faults = 0
        while True:
            if not (self.connection.is_connected and self._is_set_up):
                await asyncio.sleep(_RETRY_S)
                continue
            try:
                stored, left = await self._look_through_set_aside(self.connection.jetstream())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database or the server: tried again
                delay_s = min(self._outage_retry_s * 2.0 ** min(faults, 30), self._outage_retry_max_s)
                faults += 1
                logger.warning(
                    "hub: cannot look through the messages set aside as unsigned (%s: %s); again in %.0fs",
                    type(exc).__name__,
                    exc,
                    delay_s,
                )
                await asyncio.sleep(delay_s)
                continue
            if stored or left:
                logger.info(
                    "hub: %d message(s) set aside as unsigned are signed now and stored; %d stay set aside "
                    "in %s until they expire",
                    stored,
                    left,
                    HUB_UNSIGNED_STREAM,
                )
            return

    async def _look_through_set_aside(self, js: JetStreamContext) -> tuple[int, int]:
        """Store, then delete, each set-aside message its plant's key signs now; returns (stored, left).

        A message the database refuses ``max_deliveries`` times while it answers stays set
        aside (logged), like one still unsigned; a signed one that is malformed is deleted (it
        can never be stored).

        Raises:
            Exception: The server failed, or the database does not answer.
        """
        subscription = await js.pull_subscribe(
            unsigned_subject(),
            stream=HUB_UNSIGNED_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                inactive_threshold=_RELEASE_CONSUMER_IDLE_S,
            ),
        )
        stored = left = 0
        try:
            is_done = False
            while not is_done:
                try:
                    messages = await subscription.fetch(
                        self._config.bus.fetch_batch, timeout=_RELEASE_FETCH_WAIT_S
                    )
                except TimeoutError:  # nothing more
                    break
                is_done = messages[-1].metadata.num_pending == 0
                signed: dict[int, tuple[BusMessage, float]] = {}
                for message in messages:
                    subject = (message.headers or {}).get(_SUBJECT_HEADER, "")
                    plant_id = _subject_plant(subject)
                    key = None if plant_id is None else self._keys.get(plant_id)
                    sequence = message.metadata.sequence.stream
                    if (
                        key is None
                        or message.subject != unsigned_subject(plant_id)
                        or not is_signed_by(key, message.data, message.headers)
                    ):
                        left += 1
                    elif (parsed := self._parse(subject, message.data)) is None:
                        self._count(terminated=1)
                        await js.delete_msg(HUB_UNSIGNED_STREAM, sequence)
                    else:
                        signed[sequence] = (parsed, _set_aside_stored_at(message))
                written = await self._store_released(signed)
                left += len(signed) - len(written)
                stored += len(written)
                self._count(released=len(written))
                for sequence in written:
                    await js.delete_msg(HUB_UNSIGNED_STREAM, sequence)
        finally:
            await subscription.unsubscribe()
        return stored, left

    async def _store_released(self, messages: dict[int, tuple[BusMessage, float]]) -> list[int]:
        """Store set-aside messages (by their sequence there, with when each reached the events stream):
        in one transaction, else one by one.

        Returns:
            The sequences of those stored; one the database refuses while it answers is left out.

        Raises:
            Exception: The database does not answer.
        """
        if not messages:
            return []
        try:
            await self._apply([m for m, _ in messages.values()], [at for _, at in messages.values()])
            return list(messages)
        except Exception:
            if not await self._is_database_up():
                raise
        return [
            sequence
            for sequence, (message, stored_at) in messages.items()
            if await self._store_released_alone(message, stored_at)
        ]

    async def _store_released_alone(self, message: BusMessage, stored_at: float) -> bool:
        """Store one set-aside message, tried ``max_deliveries`` times while the database answers; whether stored.

        Raises:
            Exception: The database does not answer.
        """
        for tries in range(1, self._max_deliveries + 1):
            try:
                await self._apply([message], [stored_at])
                return True
            except Exception as exc:
                if not await self._is_database_up():
                    raise
                if tries == self._max_deliveries:
                    logger.error(
                        "hub: cannot store a set-aside message of plant %s after %d tries: %s; it stays set aside",
                        message.plant_id,
                        tries,
                        exc,
                    )
                    return False
            await asyncio.sleep(_RETRY_S)
        return False

    # ---------------------------------------------------------------- out

    async def _relay_remarks(self) -> None:
        """Publish the remarks the bus has not taken yet: when one is added, and every second; those their
        plant has not confirmed again every half of ``bus.remark_retention_days``."""
        loop = asyncio.get_running_loop()
        due = functools.partial(
            self._store.unsent_remarks, resend_after_s=self._config.bus.remark_retention_days * _DAY_S / 2
        )
        while True:
            try:
                await asyncio.wait_for(self._remarks_due.wait(), _RELAY_INTERVAL_S)
            except TimeoutError:
                pass
            self._remarks_due.clear()
            if not self.connection.is_connected:
                continue
            try:
                remarks = await loop.run_in_executor(None, due)
                for remark in remarks:
                    await self._publish_remark(remark)
                    await loop.run_in_executor(None, self._store.mark_sent, remark)
                    self._count(remarks_sent=1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried on the next round
                logger.warning("hub: cannot publish remarks yet: %s: %s", type(exc).__name__, exc)

    async def _publish_remark(self, remark: SupervisorRemark) -> None:
        js = self.connection.jetstream()
        data = remark.model_dump_json().encode()
        headers = {"Nats-Msg-Id": remark.id}
        key = self._keys.get(remark.plant_id)
        if key is not None:
            headers[SIGNATURE_HEADER] = signature(key, data)
        await js.publish(subjects.command_subject(remark.plant_id), data, timeout=5.0, headers=headers)


def _subject_plant(subject: str) -> str | None:
    """The plant of a plant's subject (``anjian.plant.<plant>.<kind>``), else ``None``."""
    tokens = subject.split(".")
    return tokens[2] if len(tokens) == 4 and tokens[:2] == ["anjian", "plant"] else None


def _sequence(message: Msg) -> tuple[str, int]:
    """The message's place in the hub's stream: (stream, stream sequence)."""
    return message.metadata.stream, message.metadata.sequence.stream


def _stored_at(message: Msg) -> float:
    """When the message reached the hub's stream: JetStream's timestamp (the hub server's clock), epoch seconds."""
    return message.metadata.timestamp.timestamp()


def _set_aside_stored_at(message: Msg) -> float:
    """When a set-aside message reached the events stream (its header), at the latest when it was set aside.

    The header is not signed (any leaf node may publish there): a time after the set-aside
    one, or none, is not believed.
    """
    set_aside_at = _stored_at(message)
    try:
        stored_at = float((message.headers or {})[_STORED_AT_HEADER])
    except (KeyError, ValueError):  # set aside by a hub before this version
        return set_aside_at
    return min(stored_at, set_aside_at) if math.isfinite(stored_at) else set_aside_at


def _reasons(exc: ValueError, most: int = 3) -> str:
    """Why a message was refused: its first errors, each as ``field: reason`` (never the values sent)."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    errors = exc.errors(include_input=False, include_url=False)
    reasons = [f"{'.'.join(str(part) for part in e['loc']) or 'message'}: {e['msg']}" for e in errors[:most]]
    return f"{exc.error_count()} error(s): " + "; ".join(reasons) + ("; ..." if len(errors) > most else "")
