"""A clip answer is signed with its request: nobody else on the bus can forge its status or replay one clip as another."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from anjian.service.bus import subjects
from anjian.service.bus.clips import (
    CLIP_SHA256_HEADER,
    CLIP_SIZE_HEADER,
    CLIP_STATUS_HEADER,
    NONCE_HEADER,
    ClipResponder,
    answer_signed_text,
    fetch_clip,
)
from anjian.service.bus.errors import ClipError, ClipNotFoundError, ClipTooBigError
from anjian.service.bus.messages import ClipRequest
from anjian.service.bus.signing import SIGNATURE_HEADER, is_signed_by, signature
from tests.support.nats import NatsServer, running_jetstream_server

KEY = "a-key-only-lab-3-and-the-hub-hold"
PLANT = "lab-3"
CLIPS = {
    "evt-a": b"A" * 5000 + b"clip of incident A (a drill)",
    "evt-b": b"B" * 7000 + b"clip of incident B (a real fire)",
}
BROKEN = "evt-broken"  # its clip cannot be read


@dataclass
class _StoredEvent:
    clip_path: str | None


class _Store:
    """Stands for the plant's event store: an incident per clip of ``CLIPS``."""

    def get_event(self, event_id: str) -> _StoredEvent | None:
        return _StoredEvent(f"{event_id}.mp4") if event_id in CLIPS or event_id == BROKEN else None


class _Evidence:
    """Stands for the plant's evidence folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def resolve(self, relative: str) -> Path:
        if relative.startswith(BROKEN):
            raise OSError(f" disk error\n  on  存储/{relative} ")  # a header keeps one line, trimmed
        return self.folder / relative


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """One nats-server: the account the plants' leaf nodes and the hub share."""
    with running_jetstream_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def evidence(tmp_path: Path) -> _Evidence:
    for event_id, clip in CLIPS.items():
        (tmp_path / f"{event_id}.mp4").write_bytes(clip)
    return _Evidence(tmp_path)


Scenario = Callable[[Client, Client, Client], Awaitable[None]]


def _run(url: str, scenario: Scenario) -> None:
    """Run ``scenario(plant, hub, stranger)``: three clients of the shared account (a stranger: another plant)."""

    async def main() -> None:
        clients = [await nats.connect(url) for _ in range(3)]
        try:
            await scenario(*clients)
        finally:
            for client in clients:
                await client.close()

    asyncio.run(main())


async def _subscribe(client: Client, subject: str, cb: Callable[[Msg], Awaitable[None]]) -> Subscription:
    """Subscribe, and return once the server has the subscription.

    ``flush`` is not enough: nats-py writes its PING past the commands still pending, the SUB among them.
    A message the client sends itself after the SUB comes back only once the server has both.
    """
    subscription = await client.subscribe(subject, cb=cb)
    probe = await client.subscribe(client.new_inbox())
    await client.publish(probe.subject, b"")
    await probe.next_msg(timeout=5)
    await probe.unsubscribe()
    return subscription


async def _fetch(
    hub: Client, event_id: str, *, signing_key: str | None = KEY, max_bytes: int = 10**8
) -> bytes:
    return await fetch_clip(
        hub, PLANT, event_id, signing_key=signing_key, part_bytes=65536, max_bytes=max_bytes, timeout_s=5
    )


async def _serve(plant: Client, evidence: _Evidence, key: str | None = KEY) -> Subscription:
    """The plant answering clip requests, as the plant service does."""
    responder = ClipResponder(PLANT, _Store(), evidence, signing_key=key, client=lambda: plant)  # type: ignore[arg-type]
    return await _subscribe(plant, subjects.clip_subject(PLANT), responder.handle)


@pytest.mark.parametrize(
    ("captured", "asked"),
    [("evt-a", "evt-b"), ("evt-b", "evt-b")],
    ids=["another-incidents-clip", "an-answer-to-an-earlier-request"],
)
def test_a_signed_answer_read_off_the_bus_and_replayed_to_the_hub_is_refused(
    server: NatsServer, evidence: _Evidence, captured: str, asked: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another plant read lab-3's signed clip of evt-a off _INBOX.> and the hub took it as evt-b's."""

    async def scenario(plant: Client, hub: Client, stranger: Client) -> None:
        sniffed: list[Msg] = []

        async def sniff(message: Msg) -> None:
            if (message.headers or {}).get(CLIP_STATUS_HEADER) == "ok":
                sniffed.append(message)

        await _subscribe(stranger, "_INBOX.>", sniff)  # answers travel on the shared account: readable
        subscription = await _serve(plant, evidence)
        assert await _fetch(hub, captured) == CLIPS[captured]
        await subscription.unsubscribe()  # lab-3's uplink drops
        for _ in range(500):  # the stranger's copy may come after the hub's
            if sniffed:
                break
            await asyncio.sleep(0.01)
        replayed = sniffed[0]

        async def replay(message: Msg) -> None:
            assert message.reply
            await stranger.publish(message.reply, replayed.data, headers=dict(replayed.headers or {}))

        await _subscribe(stranger, subjects.clip_subject(PLANT), replay)
        with pytest.raises(ClipError, match=f"not signed with plant {PLANT}'s key for this request"):
            await _fetch(hub, asked)

    _run(server.url, scenario)
    assert f"plant {PLANT}: refusing a clip answer for {asked} at byte 0 (ok)" in caplog.text


@pytest.mark.parametrize(
    "forged",
    [
        {CLIP_STATUS_HEADER: "not_found", "Anjian-Clip-Error": "no clip"},
        {CLIP_STATUS_HEADER: "not_found", "Anjian-Clip-Error": "no clip", NONCE_HEADER: "echo"},
        {CLIP_STATUS_HEADER: "ok", CLIP_SIZE_HEADER: str(10**12), NONCE_HEADER: "echo"},
        {CLIP_STATUS_HEADER: "error", NONCE_HEADER: "echo", SIGNATURE_HEADER: signature(KEY, b"")},
    ],
    ids=["not-found", "not-found-echoing-the-nonce", "too-big", "error-with-an-old-form-signature"],
)
def test_a_status_no_plant_signed_is_not_acted_on_while_the_hub_holds_the_key(
    server: NatsServer, forged: dict[str, str]
) -> None:
    """An unsigned forged not_found made the hub answer 404; now no answer counts until its signature checks out."""

    async def scenario(_plant: Client, hub: Client, stranger: Client) -> None:
        async def forge(message: Msg) -> None:
            assert message.reply
            headers = dict(forged)
            if NONCE_HEADER in headers:
                headers[NONCE_HEADER] = (message.headers or {})[NONCE_HEADER]
            await stranger.publish(message.reply, b"", headers=headers)

        await _subscribe(stranger, subjects.clip_subject(PLANT), forge)
        with pytest.raises(ClipError) as caught:
            await _fetch(hub, "evt-b")
        assert (
            type(caught.value) is ClipError
        )  # not ClipNotFoundError nor ClipTooBigError: neither 404 nor 413
        assert "old form" in str(caught.value) or "not signed" in str(caught.value)

    _run(server.url, scenario)


def test_the_plants_own_answers_of_every_status_are_taken_with_the_key(
    server: NatsServer, evidence: _Evidence
) -> None:
    async def scenario(plant: Client, hub: Client, _stranger: Client) -> None:
        await _serve(plant, evidence)
        assert await _fetch(hub, "evt-b") == CLIPS["evt-b"]
        with pytest.raises(ClipNotFoundError, match=f"plant {PLANT} has no incident 'evt-x'"):
            await _fetch(hub, "evt-x")
        with pytest.raises(ClipTooBigError):
            await _fetch(hub, "evt-b", max_bytes=100)
        with pytest.raises(
            ClipError, match=f"answered error: the clip cannot be read: disk error on 存储/{BROKEN}.mp4$"
        ):
            await _fetch(hub, BROKEN)

    _run(server.url, scenario)


async def _answer_as_an_old_plant(plant: Client, evidence: _Evidence) -> None:
    """A plant older than the hub: it ignores the nonce and signs the bytes alone."""

    async def handle(message: Msg) -> None:
        request = ClipRequest.model_validate_json(message.data)
        clip = evidence.resolve(f"{request.event_id}.mp4").read_bytes()
        data = clip[request.offset : request.offset + request.length]
        headers = {
            CLIP_STATUS_HEADER: "ok",
            CLIP_SIZE_HEADER: str(len(clip)),
            SIGNATURE_HEADER: signature(KEY, data),
        }
        if request.offset == 0:
            headers[CLIP_SHA256_HEADER] = hashlib.sha256(clip).hexdigest()
        assert message.reply
        await plant.publish(message.reply, data, headers=headers)

    await _subscribe(plant, subjects.clip_subject(PLANT), handle)


def test_an_old_plants_answer_is_refused_with_a_log_line_only_while_the_hub_holds_its_key(
    server: NatsServer, evidence: _Evidence, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(plant: Client, hub: Client, _stranger: Client) -> None:
        await _answer_as_an_old_plant(plant, evidence)
        assert await _fetch(hub, "evt-a", signing_key=None) == CLIPS["evt-a"]  # no key: as before
        with pytest.raises(ClipError, match=f"plant {PLANT} answered in the old form.*upgrade the plant"):
            await _fetch(hub, "evt-a")

    _run(server.url, scenario)
    assert (
        f"plant {PLANT}: refusing a clip answer (ok) of the old form, without {NONCE_HEADER}" in caplog.text
    )


def test_a_plant_answers_a_hub_that_sends_no_nonce_as_before(server: NatsServer, evidence: _Evidence) -> None:
    """A hub older than the plant checks the bytes' signature alone: a plant upgraded first keeps sending clips."""

    async def scenario(plant: Client, hub: Client, _stranger: Client) -> None:
        await _serve(plant, evidence)
        data = (
            ClipRequest(plant_id=PLANT, event_id="evt-a", offset=0, length=65536).model_dump_json().encode()
        )
        answer = await hub.request(
            subjects.clip_subject(PLANT), data, timeout=5, headers={SIGNATURE_HEADER: signature(KEY, data)}
        )
        assert answer.headers is not None and answer.headers[CLIP_STATUS_HEADER] == "ok"
        assert NONCE_HEADER not in answer.headers
        assert answer.data == CLIPS["evt-a"] and is_signed_by(KEY, answer.data, answer.headers)

    _run(server.url, scenario)


def test_a_plant_without_a_key_and_a_hub_without_one_exchange_clips_as_before(
    server: NatsServer, evidence: _Evidence
) -> None:
    async def scenario(plant: Client, hub: Client, _stranger: Client) -> None:
        await _serve(plant, evidence, key=None)
        assert await _fetch(hub, "evt-a", signing_key=None) == CLIPS["evt-a"]
        with pytest.raises(ClipNotFoundError):
            await _fetch(hub, "evt-x", signing_key=None)

    _run(server.url, scenario)


_BASE = {CLIP_STATUS_HEADER: "ok", CLIP_SIZE_HEADER: "12", CLIP_SHA256_HEADER: "ab"}


@pytest.mark.parametrize(
    ("plant_id", "event_id", "offset", "nonce", "headers", "data"),
    [
        ("lab-4", "e1", 0, "n" * 32, _BASE, b"bytes"),
        ("lab-3", "e2", 0, "n" * 32, _BASE, b"bytes"),
        ("lab-3", "e1", 5, "n" * 32, _BASE, b"bytes"),
        ("lab-3", "e1", 0, "m" * 32, _BASE, b"bytes"),
        ("lab-3", "e1", 0, "n" * 32, {**_BASE, CLIP_STATUS_HEADER: "not_found"}, b"bytes"),
        ("lab-3", "e1", 0, "n" * 32, {**_BASE, CLIP_SIZE_HEADER: "13"}, b"bytes"),
        ("lab-3", "e1", 0, "n" * 32, {**_BASE, CLIP_SHA256_HEADER: "cd"}, b"bytes"),
        ("lab-3", "e1", 0, "n" * 32, {**_BASE, "Anjian-Clip-Error": "why"}, b"bytes"),
        ("lab-3", "e1", 0, "n" * 32, _BASE, b"other"),
    ],
    ids=["plant", "event", "offset", "nonce", "status", "size", "sha256", "error", "bytes"],
)
def test_the_signed_text_of_an_answer_changes_with_each_thing_it_binds(
    plant_id: str, event_id: str, offset: int, nonce: str, headers: dict[str, str], data: bytes
) -> None:
    base = answer_signed_text("lab-3", "e1", 0, "n" * 32, _BASE, b"bytes")
    assert answer_signed_text(plant_id, event_id, offset, nonce, headers, data) != base
    assert base.startswith(b"[")  # never the body of another message signed with the key (JSON objects)
