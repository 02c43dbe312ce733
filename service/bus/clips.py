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
``Anjian-Clip-Error`` saying why. Each request carries a fresh random ``Anjian-Clip-Nonce``, which
the answer echoes.

With a ``signing_key`` (``anjian.service.bus.signing``), the hub signs each request and the plant
refuses one not signed with its key; the plant signs each answer, whatever its status, over
``answer_signed_text``: the plant id, the incident, the offset asked, the part's length, the
clip's size and SHA-256, the status, the error text and the request's nonce, then the bytes. The hub holding that plant's key checks the signature before it acts on the answer at all,
so it takes only an answer the plant made for this very request: nobody else on the bus can make
it take a forged ``not_found``, one clip's bytes as another's, or an answer to an earlier request.
An answer without the nonce (a plant older than the hub, which signs the bytes only) is refused,
with an error log line naming the plant, while the hub holds its key; without a key both sides
work as before, and a plant answers a request without a nonce (a hub older than it) the old way.

Signing gives no confidentiality. Every leaf node shares the hub's NATS account, and answers
travel on the hub's ``_INBOX.*`` subjects of that account (requests on ``anjian.clip.<plant>``):
any machine on the bus, another plant included, can read a clip while the hub fetches it. Only
an account of its own per plant would keep one plant's clips from the others. A client on the bus
can also answer a request before the plant does: the fetch then fails (the hub refuses the
answer), but the hub never takes its bytes or its status.

While the plant's service, its nats-server or the leaf link is down, nobody listens on its
subject: the hub's server answers "no responders" at once (``PlantUnreachableError``), or the
request times out on a link that is dying.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
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
    "NONCE_HEADER",
    "ClipResponder",
    "ClipStatus",
    "answer_signed_text",
    "fetch_clip",
]

logger = logging.getLogger(__name__)

CLIP_STATUS_HEADER: Final = "Anjian-Clip-Status"
CLIP_SIZE_HEADER: Final = "Anjian-Clip-Size"
CLIP_SHA256_HEADER: Final = "Anjian-Clip-Sha256"
CLIP_ERROR_HEADER: Final = "Anjian-Clip-Error"
NONCE_HEADER: Final = "Anjian-Clip-Nonce"
_NONCE: Final = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_ANSWER_FORM: Final = "anjian-clip-answer/2"
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


def answer_signed_text(
    plant_id: str, event_id: str, offset: int, nonce: str, headers: Mapping[str, str], data: bytes
) -> bytes:
    """What the signature of a clip answer covers: the request it answers, its headers and its bytes.

    One JSON array (no line break inside) of the form's name, ``plant_id``, ``event_id``,
    ``offset``, the length of ``data``, the size, SHA-256, status and error headers as sent
    (``""`` when absent) and ``nonce``; then a line break and ``data``. It starts with ``[``, so it
    is never the body of another message signed with the same key (JSON objects).

    Args:
        plant_id: The plant that answers.
        event_id: The incident asked for (``""`` when the request could not be read).
        offset: The byte of the clip the part starts at.
        nonce: The request's ``Anjian-Clip-Nonce``.
        headers: The answer's headers (its signature aside).
        data: The answer's bytes (empty unless ``ok``).

    Example:
        >>> answer_signed_text("lab-3", "e1", 0, "n" * 32, {"Anjian-Clip-Status": "not_found"}, b"")[:38]
        b'["anjian-clip-answer/2","lab-3","e1",0'
    """
    fields = [
        _ANSWER_FORM,
        plant_id,
        event_id,
        offset,
        len(data),
        headers.get(CLIP_SIZE_HEADER, ""),
        headers.get(CLIP_SHA256_HEADER, ""),
        headers.get(CLIP_STATUS_HEADER, ""),
        headers.get(CLIP_ERROR_HEADER, ""),
        nonce,
    ]
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n" + data


def _nonce_of(headers: Mapping[str, str] | None) -> str | None:
    """The request's nonce, or ``None`` without a well-formed one (a hub older than this plant)."""
    nonce = (headers or {}).get(NONCE_HEADER, "")
    return nonce if _NONCE.fullmatch(nonce) else None


class ClipResponder:
    """The plant's side: answers the hub's clip requests from the event store and the evidence folder.

    Args:
        plant_id: The plant (requests for another are refused).
        store: Where an incident's clip path is found.
        evidence: Where its file is read.
        signing_key: The plant's key; with one, unsigned requests are refused and every answer to a
            request with a nonce is signed over ``answer_signed_text`` (to one without, the bytes of
            an ``ok`` alone, as a hub older than this plant checks them).
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
        reply, nonce = message.reply, _nonce_of(message.headers)
        try:
            request = ClipRequest.model_validate_json(message.data)
        except ValidationError as exc:
            await self._answer(
                reply, nonce, None, ClipStatus.ERROR, f"not a clip request: {exc.error_count()} error(s)"
            )
            return
        if self._key is not None and not is_signed_by(self._key, message.data, message.headers):
            logger.error("plant %s: refusing a clip request not signed with this plant's key", self._plant_id)
            await self._answer(
                reply, nonce, request, ClipStatus.REFUSED, "the request is not signed with the plant's key"
            )
            return
        if request.plant_id != self._plant_id:
            await self._answer(reply, nonce, request, ClipStatus.REFUSED, f"this is plant {self._plant_id}")
            return
        length = part_limit(self._client(), request.length)
        loop = asyncio.get_running_loop()
        try:
            size, digest, data = await loop.run_in_executor(
                None, self.read_part, request.event_id, request.offset, length
            )
        except KeyError as exc:
            await self._answer(reply, nonce, request, ClipStatus.NOT_FOUND, str(exc.args[0]))
            return
        except (EvidenceError, OSError) as exc:
            logger.warning("plant %s: clip of %s cannot be read: %s", self._plant_id, request.event_id, exc)
            await self._answer(reply, nonce, request, ClipStatus.ERROR, f"the clip cannot be read: {exc}")
            return
        headers = {CLIP_STATUS_HEADER: ClipStatus.OK.value, CLIP_SIZE_HEADER: str(size)}
        if digest is not None:
            headers[CLIP_SHA256_HEADER] = digest
        await self._send(reply, nonce, request, headers, data)

    async def _answer(
        self, reply: str, nonce: str | None, request: ClipRequest | None, status: ClipStatus, why: str
    ) -> None:
        """Answer with a status other than ``ok`` and why (on one line, trimmed: as the hub reads it back)."""
        headers = {CLIP_STATUS_HEADER: status.value, CLIP_ERROR_HEADER: " ".join(why.split())[:500].rstrip()}
        await self._send(reply, nonce, request, headers, b"")

    async def _send(
        self, reply: str, nonce: str | None, request: ClipRequest | None, headers: dict[str, str], data: bytes
    ) -> None:
        """Publish an answer, echoing the request's nonce and signed when the plant has a key."""
        if nonce is not None:
            headers[NONCE_HEADER] = nonce
            if self._key is not None:
                event_id, offset = ("", 0) if request is None else (request.event_id, request.offset)
                text = answer_signed_text(self._plant_id, event_id, offset, nonce, headers, data)
                headers[SIGNATURE_HEADER] = signature(self._key, text)
        elif self._key is not None and headers[CLIP_STATUS_HEADER] == ClipStatus.OK:
            headers[SIGNATURE_HEADER] = signature(self._key, data)  # what a hub older than this plant checks
        try:
            await self._client().publish(reply, data, headers=headers)
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
        signing_key: The plant's key: requests are signed, and each answer is checked against
            ``answer_signed_text`` before its status is read; ``None``: neither.
        part_bytes: Bytes asked per request (lowered to what the server's ``max_payload`` carries).
        max_bytes: A larger clip is refused after its first part.
        timeout_s: How long each part may take.

    Raises:
        PlantUnreachableError: Nobody answers for the plant (offline, link down), or a part timed out.
        ClipNotFoundError: The plant has no clip of that incident.
        ClipTooBigError: The clip is larger than ``max_bytes``.
        ClipError: The plant refused or failed, an answer was not signed for its request (or was of
            the old form) while ``signing_key`` is set, or the bytes do not match.
    """
    part_bytes = part_limit(client, part_bytes)
    parts: list[bytes] = []
    received = 0
    size: int | None = None
    digest = ""
    while size is None or received < size:
        request = ClipRequest(plant_id=plant_id, event_id=event_id, offset=received, length=part_bytes)
        data = request.model_dump_json().encode()
        nonce = secrets.token_hex(16)  # a fresh one per part: an answer to an earlier request is refused
        headers = {NONCE_HEADER: nonce}
        if signing_key is not None:
            headers[SIGNATURE_HEADER] = signature(signing_key, data)
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
        if signing_key is not None:
            _check_answer(signing_key, request, nonce, meta, answer.data)
        status = meta.get(CLIP_STATUS_HEADER)
        if status == ClipStatus.NOT_FOUND:
            raise ClipNotFoundError(meta.get(CLIP_ERROR_HEADER, f"plant {plant_id} has no such clip"))
        if status != ClipStatus.OK:
            raise ClipError(
                f"plant {plant_id} answered {status}: {meta.get(CLIP_ERROR_HEADER, 'no reason given')}"
            )
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


def _check_answer(key: str, request: ClipRequest, nonce: str, meta: Mapping[str, str], data: bytes) -> None:
    """Raise ``ClipError`` unless the plant holding ``key`` signed this answer to this very request."""
    plant_id, event_id = request.plant_id, request.event_id
    claim = meta.get(CLIP_STATUS_HEADER, "no status")
    if CLIP_ERROR_HEADER in meta:
        claim = f"{claim}: {meta[CLIP_ERROR_HEADER][:200]}"
    if NONCE_HEADER not in meta:
        logger.error(
            "plant %s: refusing a clip answer (%s) of the old form, without %s: the hub holds the plant's "
            "signing key and takes only answers signed with their request; upgrade the plant's anjian",
            plant_id,
            claim,
            NONCE_HEADER,
        )
        raise ClipError(
            f"plant {plant_id} answered in the old form, which the hub does not take with a signing key for it "
            "(upgrade the plant)"
        )
    text = answer_signed_text(plant_id, event_id, request.offset, nonce, meta, data)
    if meta.get(NONCE_HEADER) != nonce or not is_signed_by(key, text, meta):
        logger.error(
            "plant %s: refusing a clip answer for %s at byte %d (%s) not signed with the plant's key for "
            "this request: the keys differ, or another client on the bus answered",
            plant_id,
            event_id,
            request.offset,
            claim,
        )
        raise ClipError(
            f"an answer for the clip of {event_id} is not signed with plant {plant_id}'s key for this request "
            "(the keys differ, or another client on the bus answered); ask again"
        )
