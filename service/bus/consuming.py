"""The one loop of a durable pull consumer that must outlive server restarts (the hub's and each plant's).

Wait until connected; set up (the streams, ``setup``) and create the durable consumer with
explicit acks; fetch batches and hand each to ``handle``, which acks what it has made durable.
A fault anywhere (a restarted or unreachable server, a timed-out API call) is logged and the
loop starts over from the set-up: the durable consumer resumes where its acks left it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from anjian.service.bus.connection import BusConnection
from anjian.service.bus.streams import ensure_durable

__all__ = ["run_pull_consumer"]

logger = logging.getLogger(__name__)

_RETRY_S = 1.0
_FETCH_WAIT_S = 1.0


async def run_pull_consumer(
    connection: BusConnection,
    *,
    stream: str,
    durable: str,
    batch: int,
    ack_wait_s: float,
    setup: Callable[[JetStreamContext], Awaitable[None]],
    handle: Callable[[list[Msg]], Awaitable[None]],
    on_fault: Callable[[], None] = lambda: None,
    name: str,
) -> None:
    """Consume ``stream`` through the durable ``durable`` until cancelled.

    Args:
        connection: The client's connection.
        stream: The stream to read.
        durable: The durable consumer's name.
        batch: Most messages per fetch.
        ack_wait_s: Redelivery delay of a message not acked.
        setup: Creates what the consumer needs (the streams) before each (re)start.
        handle: Makes a fetched batch durable and acks (or naks) its messages.
        on_fault: Called after a fault, before the loop starts over (forget cached set-up).
        name: Names the consumer in the log.
    """
    while True:
        try:
            if not connection.is_connected:
                await asyncio.sleep(_RETRY_S / 2)
                continue
            js = connection.jetstream()
            await setup(js)
            await ensure_durable(js, stream, durable, ack_wait_s=ack_wait_s)
            subscription = await js.pull_subscribe_bind(durable, stream)
            logger.info("%s: consuming %s", name, stream)
            while True:
                try:
                    messages = await subscription.fetch(batch, timeout=_FETCH_WAIT_S)
                except TimeoutError:  # nats' own and asyncio's: nothing to fetch now
                    continue
                await handle(messages)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the consumer must outlive a server restart
            on_fault()
            logger.warning("%s: %s: %s; retrying", name, type(exc).__name__, exc)
            await asyncio.sleep(_RETRY_S)
