"""Slow clip fetches hold threads of their own, at most hub.max_clip_fetches: the rest of the hub's API keeps answering."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from anjian.service.config import StorageConfig
from anjian.service.hub.api import create_hub_app
from anjian.service.hub.clips import HubClips
from anjian.service.hub.config import HubConfig, HubSiteConfig, PlantConfig
from anjian.service.hub.store import HubStore
from tests.factories import make_event
from tests.service.conftest import FakeClock
from tests.service.hub.conftest import PlantRecorder
from tests.support.waiting import wait_for

VIEWERS = 50  # more than the 40 threads of the pool the API's other routes share


class SlowUplink:
    """Stands for the hub's BusConnection to a plant on a slow uplink: each fetch holds until released."""

    def __init__(self) -> None:
        self.is_connected = True
        self.release = threading.Event()
        self.sending = 0

    def call(self, work: Any, *, timeout_s: float) -> bytes:
        del work, timeout_s
        self.sending += 1
        self.release.wait(60)
        return b"\x00\x00\x00\x18ftypisom"


def test_slow_clip_fetches_leave_readyz_and_the_overview_answering_and_past_the_cap_get_503(
    tmp_path: Path, clock: FakeClock
) -> None:
    """40 clips over a slow uplink held every thread of the API: /readyz and /api/overview waited for them."""
    config = HubConfig(
        hub=HubSiteConfig(max_clip_fetches=4, clip_fetches_per_plant=2, clip_timeout_s=60),
        storage=StorageConfig(dir=tmp_path / "hub"),
        plants=[PlantConfig(id="lab-3")],
    )
    store = HubStore.from_config(config.storage, clock=clock)
    recorder = PlantRecorder("lab-3", tmp_path / "lab-3.db", clock)
    events = [make_event() for _ in range(VIEWERS + 1)]
    store.apply([recorder.raise_event(e) for e in events])
    recorder.store.close()
    uplink = SlowUplink()
    clips = HubClips(config, uplink)  # type: ignore[arg-type]
    cached = clips.cached("lab-3", events[-1].id)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached clip")
    _info, secret = store.tokens.create("bureau", "viewer", "all")
    headers = {"Authorization": f"Bearer {secret}"}
    answers: list[httpx.Response] = []
    try:
        with TestClient(create_hub_app(config, store, clips=clips, clock=clock)) as client:
            viewers = [
                threading.Thread(
                    target=lambda e=e: answers.append(
                        client.get(f"/api/plants/lab-3/events/{e.id}/clip", headers=headers)
                    )
                )
                for e in events[:VIEWERS]
            ]
            for viewer in viewers:
                viewer.start()
            # 2 clips coming from the plant, 2 requests waiting their turn, the rest refused at once
            assert wait_for(lambda: uplink.sending == 2 and len(answers) == VIEWERS - 4, 30), (
                uplink.sending,
                len(answers),
            )
            others: list[httpx.Response] = []
            asking = threading.Thread(
                target=lambda: others.extend(
                    [
                        client.get("/readyz"),
                        client.get("/api/overview", headers=headers),
                        client.get(f"/api/plants/lab-3/events/{events[-1].id}/clip", headers=headers),
                    ]
                )
            )
            asking.start()
            asking.join(10)
            is_answered = not asking.is_alive()
            uplink.release.set()
            for viewer in [*viewers, asking]:
                viewer.join(60)
    finally:
        uplink.release.set()
        store.close()

    assert is_answered, "the other routes waited for the clip fetches"
    assert [r.status_code for r in others] == [200, 200, 200]
    assert others[2].content == b"cached clip"  # a cached clip needs no fetch: served even at the cap
    refused = [r for r in answers if r.status_code == 503]
    assert len(refused) == VIEWERS - 4 and sorted({r.status_code for r in answers}) == [200, 503]
    assert all(r.headers["Retry-After"] == "10" for r in refused)
    assert "is fetching 4 clips already (hub.max_clip_fetches)" in refused[0].json()["detail"]


def test_a_fetch_slot_comes_back_when_its_clip_is_fetched_or_fails(tmp_path: Path) -> None:
    config = HubConfig(
        hub=HubSiteConfig(max_clip_fetches=1),
        storage=StorageConfig(dir=tmp_path / "hub"),
        plants=[PlantConfig(id="lab-3")],
    )
    uplink = SlowUplink()
    uplink.release.set()
    clips = HubClips(config, uplink)  # type: ignore[arg-type]
    store = HubStore.from_config(config.storage)
    recorder = PlantRecorder("lab-3", tmp_path / "lab-3.db", FakeClock())
    events = [make_event() for _ in range(3)]
    store.apply([recorder.raise_event(e) for e in events])
    recorder.store.close()
    _info, secret = store.tokens.create("bureau", "viewer", "all")
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        with TestClient(create_hub_app(config, store, clips=clips)) as client:
            fetched = [
                client.get(f"/api/plants/lab-3/events/{e.id}/clip", headers=headers) for e in events[:2]
            ]
            uplink.is_connected = False  # a fetch that fails gives its slot back too
            failed = client.get(f"/api/plants/lab-3/events/{events[2].id}/clip", headers=headers)
            uplink.is_connected = True
            again = client.get(f"/api/plants/lab-3/events/{events[2].id}/clip", headers=headers)
    finally:
        store.close()

    assert [r.status_code for r in fetched] == [200, 200]
    assert failed.status_code == 503 and "not connected" in failed.json()["detail"]
    assert again.status_code == 200
