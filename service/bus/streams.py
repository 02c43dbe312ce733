"""Creating (or updating) the JetStream streams and consumers of a plant and of the hub, idempotently.

Each side creates only what lives on its own server: a plant its events and commands
streams, the hub its events stream (sourcing every configured plant), its commands
stream and its stream of messages set aside as not signed by their plant (``HUB_UNSIGNED``).
``ensure_*`` may run at every start and after a server lost its store: a stream
that exists is updated to the wanted config (a new plant becomes a new source).

The hub's commands stream keeps each remark ``remark_retention_days`` (a plant may be shut
down for weeks; the hub publishes a remark its plant has not confirmed again before then). The
hub's events stream keeps each message ``retention_days`` and holds ``max_bytes`` at most,
the oldest going first: normally messages the hub has stored already (the stream is only the
way in; snapshots would otherwise fill the disk long before the days are up). Only a hub
service stopped while more than ``max_bytes`` comes in loses the oldest messages it had not
stored. The streams keep the limits retention they were created with: nats-server 2.9 cannot
change a stream's retention policy by an update (an interest-based one would be a new stream).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    ExternalStream,
    StorageType,
    StreamConfig,
    StreamSource,
)
from nats.js.errors import BadRequestError, NotFoundError

from anjian.service.bus import subjects

__all__ = [
    "PlantStreams",
    "SourcedPlant",
    "ensure_durable",
    "ensure_hub_streams",
    "ensure_plant_streams",
]

logger = logging.getLogger(__name__)

_DAY_S = 86_400.0
_UNLIMITED = -1  # JetStream's max_deliver for "redeliver for ever"
_STREAM_NAME_IN_USE = 10058  # JetStream's error code: a stream of that name exists
_DUPLICATE_WINDOW_S = 3_600.0  # longer than any outbox retry of one publish
_UNSIGNED_SHARE = 10  # the set-aside stream holds at most this fraction of the events stream's bytes


@dataclass(frozen=True)
class SourcedPlant:
    """A plant whose events the hub sources: its id and its nats-server's JetStream domain."""

    plant_id: str
    domain: str


@dataclass(frozen=True)
class PlantStreams:
    """The names of a plant's streams."""

    events: str
    commands: str


async def _put_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it to ``config`` when it exists."""
    if config.name is None:
        raise ValueError("a stream config needs a name")
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:  # created meanwhile, or still being recovered from disk
                raise
    await js.update_stream(config)


async def ensure_plant_streams(
    js: JetStreamContext, plant_id: str, *, hub_domain: str, retention_days: float
) -> PlantStreams:
    """Create a plant's events stream and its commands stream (sourced from the hub's, only this plant's).

    Args:
        js: JetStream of the plant's own server.
        plant_id: The plant.
        hub_domain: JetStream domain of the hub.
        retention_days: How long the events stream keeps messages.
    """
    events = subjects.plant_events_stream(plant_id)
    commands = subjects.plant_commands_stream(plant_id)
    await _put_stream(
        js,
        StreamConfig(
            name=events,
            description=f"what plant {plant_id} tells the hub; sourced by the hub's {subjects.HUB_EVENTS_STREAM}",
            subjects=[subjects.plant_subjects(plant_id)],
            storage=StorageType.FILE,
            max_age=retention_days * _DAY_S,
            duplicate_window=_DUPLICATE_WINDOW_S,
        ),
    )
    await _put_stream(
        js,
        StreamConfig(
            name=commands,
            description=f"supervisors' remarks to plant {plant_id}, sourced from the hub",
            storage=StorageType.FILE,
            max_age=retention_days * _DAY_S,
            sources=[
                StreamSource(
                    name=subjects.HUB_COMMANDS_STREAM,
                    filter_subject=subjects.command_subject(plant_id),
                    external=ExternalStream(api=subjects.api_prefix(hub_domain)),
                )
            ],
        ),
    )
    return PlantStreams(events=events, commands=commands)


async def ensure_hub_streams(
    js: JetStreamContext,
    plants: Iterable[SourcedPlant],
    *,
    retention_days: float,
    max_bytes: int,
    remark_retention_days: float | None = None,
) -> None:
    """Create the hub's events stream sourcing every plant's, its commands stream and its set-aside stream.

    Args:
        js: JetStream of the hub's own server.
        plants: The plants to source (the stream's sources become exactly these).
        retention_days: How long the hub's events and set-aside streams keep messages.
        max_bytes: The most the events stream holds (the oldest messages go first); the
            set-aside stream holds a tenth of it.
        remark_retention_days: How long the commands stream keeps a remark for a plant that is
            offline (remarks are small); ``None``: ``retention_days``.

    Raises:
        ValueError: ``max_bytes`` is below 1.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    commands_days = retention_days if remark_retention_days is None else remark_retention_days
    sources = [
        StreamSource(
            name=subjects.plant_events_stream(plant.plant_id),
            external=ExternalStream(api=subjects.api_prefix(plant.domain)),
        )
        for plant in plants
    ]
    await _put_stream(
        js,
        StreamConfig(
            name=subjects.HUB_EVENTS_STREAM,
            description="every plant's events, sourced from the plants' leaf nodes",
            storage=StorageType.FILE,
            max_age=retention_days * _DAY_S,
            max_bytes=max_bytes,
            discard=DiscardPolicy.OLD,
            duplicate_window=_DUPLICATE_WINDOW_S,
            sources=sources,
        ),
    )
    await _put_stream(
        js,
        StreamConfig(
            name=subjects.HUB_COMMANDS_STREAM,
            description="supervisors' remarks to the plants; each plant sources its own",
            subjects=[subjects.command_subject()],
            storage=StorageType.FILE,
            max_age=commands_days * _DAY_S,
            duplicate_window=_DUPLICATE_WINDOW_S,
        ),
    )
    await _put_stream(
        js,
        StreamConfig(
            name=subjects.HUB_UNSIGNED_STREAM,
            description="plant messages not signed with their plant's key, set aside until a hub that has the "
            "right key starts",
            subjects=[subjects.unsigned_subject()],
            storage=StorageType.FILE,
            max_age=retention_days * _DAY_S,
            max_bytes=max(max_bytes // _UNSIGNED_SHARE, 1),
            discard=DiscardPolicy.OLD,
            duplicate_window=_DUPLICATE_WINDOW_S,
        ),
    )


async def ensure_durable(js: JetStreamContext, stream: str, durable: str, *, ack_wait_s: float) -> None:
    """Create a durable pull consumer with explicit acks on ``stream`` (kept when it exists).

    The consumer has no ``max_deliver``: the server never drops a message however often it
    came again (the consumers decide when to give one up). An existing consumer that caps
    deliveries (made by hand, or by another tool) is updated to no cap.
    """
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait_s,
        max_ack_pending=20_000,
        max_deliver=_UNLIMITED,
    )
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        await js.add_consumer(stream, config)
        return
    existing = info.config
    if existing.max_deliver not in (None, 0, _UNLIMITED):
        logger.warning(
            "consumer %s on %s gave messages up after %d deliveries; updating it to no limit",
            durable,
            stream,
            existing.max_deliver,
        )
        existing.max_deliver = _UNLIMITED
        await js.add_consumer(stream, existing)
