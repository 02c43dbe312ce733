"""Clips on demand: the hub asks a plant for an incident's clip, part by part, over core NATS request/reply.

Snapshots travel with the incidents; clips (megabytes each) stay on the plant's disk until a
supervisor asks for one. The hub then sends ``ClipRequest``s on ``anjian.clip.<plant>``
(core NATS, no stream: it crosses the leaf link like any subject with interest on the other
side), each for one part that fits the servers' ``max_payload`` (1 MiB by default):

1. the first asks from offset 0; the answer carries the clip's size and SHA-256 in its headers;
2. the following ask from where the bytes received end, until the size is reached;
3. the hub checks the SHA-256 of the whole and keeps the clip in its cache.

Every answer carries ``Anjian-Clip-Status``: ``ok``, ``not_found`` (no such incident, or no clip of
it), ``refused`` (a request not signed with the plant's key) or ``error``, with
``Anjian-Clip-Error`` saying why. With a ``signing_key``, requests and the bytes of each answer
are signed both ways (``anjian.service.bus.signing``): only the hub reads a plant's clips, and
the hub takes only bytes that plant signed.

While the plant's service, its nats-server or the leaf link is down, nobody listens on its
subject: the hub's server answers "no responders" at once (``PlantUnreachableError``), or the
request times out on a link that is dying.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Final

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from anjian.service.bus import subjects
from anjian.service.bus.errors import ClipError, ClipNotFoundError, ClipTooBigError, PlantUnreachableError
from anjian.service.bus.messages import ClipRequest
from anjian.service.bus.signing import SIGNATURE_HEADER, is_signed_by, signature
from anjian.service.errors import EvidenceError, EvidenceNotFoundError

if TYPE_CHECKING:
    from anjian.service.evidence import EvidenceStore
    from anjian.service.store import EventStore

__all__ = [
    "CLIP_ERROR_HEADER",
    "CLIP_SHA256_HEADER",
    "CLIP_SIZE_HEADER",
    "CLIP_STATUS_HEADER",
    "ClipResponder",
    "ClipStatus",
    "fetch_clip",
]

logger = logging.getLogger(__name__)

CLIP_STATUS_HEADER: Final = "Anjian-Clip-Status"
CLIP_SIZE_HEADER: Final = "Anjian-Clip-Size"
CLIP_SHA256_HEADER: Final = "Anjian-Clip-Sha256"
CLIP_ERROR_HEADER: Final = "Anjian-Clip-Error"
_HEADROOM: Final = 16 * 1024  # below max_payload: room for the headers of a part


class ClipStatus(StrEnum):
    """How a plant answered a clip request."""

    OK = "ok"
    NOT_FOUND = "not_found"
    REFUSED = "refused"
    ERROR = "error"


def part_limit(client: Client, wanted: int) -> int:
    """The most bytes of a clip one message may carry on ``client``'s server: ``wanted`` or less."""
    return max(1, min(wanted, client.max_payload - _HEADROOM))


class ClipResponder:
    """The plant's side: answers the hub's clip requests from the event store and the evidence folder.

    Args:
        plant_id: The plant (requests for another are refused).
        store: Where an incident's clip path is found.
        evidence: Where its file is read.
        signing_key: The plant's key; with one, unsigned requests are refused and answers signed.
        client: The plant's NATS client, when it is connected.
    """

    def __init__(
        self,
        plant_id: str,
        store: EventStore,
        evidence: EvidenceStore,
        *,
        signing_key: str | None,
        client: Callable[[], Client],
    ) -> None:
        self._plant_id = plant_id
        self._store = store
        self._evidence = evidence
        self._key = signing_key
        self._client = client

    async def handle(self, message: Msg) -> None:
        """Answer one request (the subscription's callback); never raises."""
        if not message.reply:
            return
        try:
            request = ClipRequest.model_validate_json(message.data)
        except ValidationError as exc:
            await self._answer(
                message.reply, ClipStatus.ERROR, f"not a clip request: {exc.error_count()} error(s)"
            )
            return
        if self._key is not None and not is_signed_by(self._key, message.data, message.headers):
            logger.error("plant %s: refusing a clip request not signed with this plant's key", self._plant_id)
            await self._answer(
                message.reply, ClipStatus.REFUSED, "the request is not signed with the plant's key"
            )
            return
        if request.plant_id != self._plant_id:
            await self._answer(message.reply, ClipStatus.REFUSED, f"this is plant {self._plant_id}")
            return
        client = self._client()
        length = part_limit(client, request.length)
        loop = asyncio.get_running_loop()
        try:
            size, digest, data = await loop.run_in_executor(
                None, self.read_part, request.event_id, request.offset, length
            )
        except KeyError as exc:
            await self._answer(message.reply, ClipStatus.NOT_FOUND, str(exc.args[0]))
            return
        except (EvidenceError, OSError) as exc:
            logger.warning("plant %s: clip of %s cannot be read: %s", self._plant_id, request.event_id, exc)
            await self._answer(message.reply, ClipStatus.ERROR, f"the clip cannot be read: {exc}")
            return
        headers = {CLIP_STATUS_HEADER: ClipStatus.OK.value, CLIP_SIZE_HEADER: str(size)}
        if digest is not None:
            headers[CLIP_SHA256_HEADER] = digest
        if self._key is not None:
            headers[SIGNATURE_HEADER] = signature(self._key, data)
        await client.publish(message.reply, data, headers=headers)

    async def _answer(self, reply: str, status: ClipStatus, why: str) -> None:
        try:
            await self._client().publish(
                reply, b"", headers={CLIP_STATUS_HEADER: status.value, CLIP_ERROR_HEADER: why[:500]}
            )
        except Exception as exc:  # noqa: BLE001 - the hub times out instead
            logger.warning("plant %s: cannot answer a clip request: %s", self._plant_id, exc)

    def read_part(self, event_id: str, offset: int, length: int) -> tuple[int, str | None, bytes]:
        """The clip's size, its SHA-256 (hex, only from offset 0) and ``length`` bytes from ``offset``.

        Raises:
            KeyError: No such incident, or it has no clip (the message says which).
            EvidenceError: The file cannot be read.
        """
        event = self._store.get_event(event_id)
        if event is None:
            raise KeyError(f"plant {self._plant_id} has no incident {event_id!r}")
        if event.clip_path is None:
            raise KeyError(f"incident {event_id!r} of plant {self._plant_id} has no clip")
        try:
            path = self._evidence.resolve(event.clip_path)
            with path.open("rb") as file:
                size = path.stat().st_size
                digest = hashlib.file_digest(file, "sha256").hexdigest() if offset == 0 else None
                file.seek(offset)
                data = file.read(length)
        except FileNotFoundError as exc:
            raise KeyError(f"the clip of incident {event_id!r} is gone from plant {self._plant_id}") from exc
        except EvidenceNotFoundError as exc:
            raise KeyError(str(exc)) from exc
        return size, digest, data


async def fetch_clip(
    client: Client,
    plant_id: str,
    event_id: str,
    *,
    signing_key: str | None,
    part_bytes: int,
    max_bytes: int,
    timeout_s: float,
) -> bytes:
    """Fetch an incident's whole clip from its plant (the hub's side; see the module docstring).

    Args:
        client: The hub's NATS client.
        plant_id: The plant.
        event_id: The incident.
        signing_key: The plant's key: requests are signed, answers checked; ``None``: none.
        part_bytes: Bytes asked per request (lowered to what the server's ``max_payload`` carries).
        max_bytes: A larger clip is refused after its first part.
        timeout_s: How long each part may take.

    Raises:
        PlantUnreachableError: Nobody answers for the plant (offline, link down), or a part timed out.
        ClipNotFoundError: The plant has no clip of that incident.
        ClipTooBigError: The clip is larger than ``max_bytes``.
        ClipError: The plant refused or failed, an answer was not signed, or the bytes do not match.
    """
    part_bytes = part_limit(client, part_bytes)
    parts: list[bytes] = []
    received = 0
    size: int | None = None
    digest = ""
    while size is None or received < size:
        request = ClipRequest(plant_id=plant_id, event_id=event_id, offset=received, length=part_bytes)
        data = request.model_dump_json().encode()
        headers = {} if signing_key is None else {SIGNATURE_HEADER: signature(signing_key, data)}
        try:
            answer = await client.request(
                subjects.clip_subject(plant_id), data, timeout=timeout_s, headers=headers
            )
        except nats.errors.NoRespondersError as exc:
            raise PlantUnreachableError(
                f"plant {plant_id} is not reachable: its service, its nats-server or its link to the hub is down"
            ) from exc
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            raise PlantUnreachableError(
                f"plant {plant_id} did not answer within {timeout_s:g} s (offline, or its link is down)"
            ) from exc
        meta = answer.headers or {}
        status = meta.get(CLIP_STATUS_HEADER)
        if status == ClipStatus.NOT_FOUND:
            raise ClipNotFoundError(meta.get(CLIP_ERROR_HEADER, f"plant {plant_id} has no such clip"))
        if status != ClipStatus.OK:
            raise ClipError(
                f"plant {plant_id} answered {status}: {meta.get(CLIP_ERROR_HEADER, 'no reason given')}"
            )
        if signing_key is not None and not is_signed_by(signing_key, answer.data, meta):
            raise ClipError(f"a part of the clip is not signed with plant {plant_id}'s key")
        part_size = int(meta.get(CLIP_SIZE_HEADER, "-1"))
        if size is None:
            size, digest = part_size, meta.get(CLIP_SHA256_HEADER, "")
            if size > max_bytes:
                raise ClipTooBigError(
                    f"the clip is {size / 1e6:.1f} MB, over the hub's limit of {max_bytes / 1e6:.1f} MB "
                    "(hub.max_clip_bytes)"
                )
        elif part_size != size:
            raise ClipError(f"the clip changed on plant {plant_id} while it was fetched; ask again")
        if not answer.data and received < size:
            raise ClipError(f"plant {plant_id} sent an empty part at byte {received} of {size}")
        parts.append(answer.data)
        received += len(answer.data)
    clip = b"".join(parts)
    if len(clip) != size or hashlib.sha256(clip).hexdigest() != digest:
        raise ClipError(f"the clip from plant {plant_id} does not match its SHA-256; ask again")
    return clip
