"""The hub's side of the bus: every plant's messages into the hub's store, supervisors' remarks out.

In. A durable pull consumer (``anjian-hub``, explicit acks) reads the hub's events stream,
which sources every configured plant's stream over the leaf connections. It takes up to
``bus.fetch_batch`` messages, writes them in one transaction (``HubStore.apply``,
idempotent), and only then acks them. A hub killed between the write and the ack gets
the same messages again after ``ack_wait_s`` and writes nothing twice. A message that
is not a plant message, or claims another plant than the stream it came from, is
terminated (logged, never redelivered).

Giving up. Only a message the hub itself cannot store while its database answers (a
poison message) is given up, after ``max_deliveries`` such failures, counted here per
stream sequence. A database that does not answer never gives a message up: the batch is
held back (nak with a delay doubling from ``outage_retry_s`` up to ``outage_retry_max_s``)
until it answers again, however long the outage. Neither those redeliveries nor the holds
of unsigned messages count, so JetStream's own delivery count (``num_delivered``) is not
used for it; the durable consumer has no ``max_deliver`` either (``ensure_durable``), so
the server never drops a message on its own.

Out. A remark is first stored in the hub's database, then published to the hub's
commands stream (``anjian.hub.command.<plant>``, ``Nats-Msg-Id`` = the remark's id) and
marked sent; each plant's commands stream sources its own subject. Remarks not yet taken
by the bus (the hub's nats-server was down) are published again every second.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError

from anjian.pipeline.counters import Counters
from anjian.service.bus import subjects
from anjian.service.bus.connection import BusConnection
from anjian.service.bus.consuming import run_pull_consumer
from anjian.service.bus.messages import BusMessage, SupervisorRemark, parse_plant_message
from anjian.service.bus.signing import SIGNATURE_HEADER, is_signed_by, signature
from anjian.service.bus.streams import SourcedPlant, ensure_hub_streams
from anjian.service.hub.config import HubConfig
from anjian.service.hub.store import HubStore

__all__ = ["HubBus", "HubBusStats"]

logger = logging.getLogger(__name__)

_RETRY_S: Final = 1.0
_OUTAGE_RETRY_S: Final = 2.0
_OUTAGE_RETRY_MAX_S: Final = 60.0
_UNSIGNED_RETRY_S: Final = 30.0
_UNSIGNED_MAX_DELIVERIES: Final = 120  # x 30 s: an hour to fix a wrong key before such a message is given up
_RELAY_INTERVAL_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class HubBusStats:
    """Counters since start: messages received, written batches, terminated messages, remarks published,
    deliveries of messages not signed with their plant's key."""

    received: int = 0
    batches: int = 0
    terminated: int = 0
    remarks_sent: int = 0
    unsigned: int = 0


class HubBus:
    """Consumes every plant's messages into the store and publishes the supervisors' remarks.

    Args:
        config: The hub config (its NATS server, plants, batch size, ack wait).
        store: The hub's store.
        max_deliveries: Tries of a message the database refuses while it answers before the message
            is given up (terminated); tries during an outage or unsigned holds do not count.
        unsigned_retry_s: How often a message not signed with its plant's key comes again.
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
        unsigned_retry_s: float = _UNSIGNED_RETRY_S,
        outage_retry_s: float = _OUTAGE_RETRY_S,
        outage_retry_max_s: float = _OUTAGE_RETRY_MAX_S,
    ) -> None:
        if max_deliveries < 1 or unsigned_retry_s <= 0 or not 0 < outage_retry_s <= outage_retry_max_s:
            raise ValueError(
                "expected max_deliveries >= 1, unsigned_retry_s > 0 and 0 < outage_retry_s <= outage_retry_max_s,"
                f" got {max_deliveries}, {unsigned_retry_s}, {outage_retry_s}, {outage_retry_max_s}"
            )
        self._max_deliveries = max_deliveries
        self._unsigned_retry_s = unsigned_retry_s
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
        self._remarks_due = asyncio.Event()
        self._counters = Counters(HubBusStats())
        self._count = self._counters.add

    def stats(self) -> HubBusStats:
        """The counters as they are now."""
        return self._counters.snapshot()

    def start(self) -> None:
        """Connect (in the background) and start the consumer and the remark relay."""
        self.connection.start()
        self.connection.spawn(self._consume())
        self.connection.spawn(self._relay_remarks())

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
            await ensure_hub_streams(js, plants, retention_days=bus.retention_days)

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
            if not self._is_signed(message):
                await self._hold_unsigned(message)
                continue
            parsed = self._parse(message)
            if parsed is None:
                self._count(terminated=1)
                await message.term()
            else:
                good.append((message, parsed))
        if not good:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._store.apply, [parsed for _, parsed in good])
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
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._store.apply, [parsed])
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

    def _parse(self, message: Msg) -> BusMessage | None:
        """The plant message, or ``None`` (logged) when it is malformed or not the sending plant's."""
        try:
            parsed = parse_plant_message(message.data)
        except ValidationError as exc:
            logger.error(
                "hub: dropping a malformed message on %s: %d error(s): %s",
                message.subject,
                exc.error_count(),
                _reasons(exc),
            )
            return None
        tokens = message.subject.split(".")
        subject_plant = tokens[2] if len(tokens) == 4 and tokens[:2] == ["anjian", "plant"] else None
        if subject_plant != parsed.plant_id or parsed.plant_id not in self._plants:
            logger.error(
                "hub: dropping a message of plant %r on %s (not a configured plant's own subject)",
                parsed.plant_id,
                message.subject,
            )
            return None
        return parsed

    def _is_signed(self, message: Msg) -> bool:
        """Whether the message is signed with the key of the plant whose subject it came on (if it has one)."""
        tokens = message.subject.split(".")
        key = self._keys.get(tokens[2]) if len(tokens) == 4 else None
        return key is None or is_signed_by(key, message.data, message.headers)

    async def _hold_unsigned(self, message: Msg) -> None:
        """An unsigned (or wrongly signed) message: held back, given up after about an hour.

        A wrong key in the hub's or the plant's config must not lose events: they come again
        every ``unsigned_retry_s`` (30 s) for 120 tries, the time to fix it (then the hub takes
        them); a forged message is given up after that.
        """
        self._count(unsigned=1)
        deliveries = message.metadata.num_delivered or 1
        if deliveries == 1 or deliveries % 20 == 0:
            logger.error(
                "hub: message %d on %s is not signed with that plant's signing_key (try %d)",
                message.metadata.sequence.stream,
                message.subject,
                deliveries,
            )
        if deliveries >= _UNSIGNED_MAX_DELIVERIES:
            self._count(terminated=1)
            await message.term()
        else:
            await message.nak(delay=self._unsigned_retry_s)

    # ---------------------------------------------------------------- out

    async def _relay_remarks(self) -> None:
        """Publish the remarks the bus has not taken yet: when one is added, and every second."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._remarks_due.wait(), _RELAY_INTERVAL_S)
            except TimeoutError:
                pass
            self._remarks_due.clear()
            if not self.connection.is_connected:
                continue
            try:
                remarks = await loop.run_in_executor(None, self._store.unsent_remarks)
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


def _sequence(message: Msg) -> tuple[str, int]:
    """The message's place in the hub's stream: (stream, stream sequence)."""
    return message.metadata.stream, message.metadata.sequence.stream


def _reasons(exc: ValidationError, most: int = 3) -> str:
    """The first errors of a refused message, each as ``field: reason`` (never the values sent)."""
    errors = exc.errors(include_input=False, include_url=False)
    reasons = [f"{'.'.join(str(part) for part in e['loc']) or 'message'}: {e['msg']}" for e in errors[:most]]
    return "; ".join(reasons) + ("; ..." if len(errors) > most else "")
