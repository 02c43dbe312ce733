"""Clips on demand: the hub asks the plant for an incident's clip over real nats-servers, in parts, and caches it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from anjian.pipeline.event import Event
from anjian.service.composition import ServiceParts
from anjian.service.hub.api import create_hub_app
from anjian.service.hub.clips import HubClips
from anjian.service.hub.config import HubConfig, HubSiteConfig
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import HubStore
from tests.factories import make_event
from tests.service.bus.conftest import PLANT, SIGNING_KEY, hub_config
from tests.support.nats import NatsTopology
from tests.support.waiting import wait_for

CLIP = b"\x00\x00\x00\x18ftypisom" + os.urandom(2_500_000)  # over nats-server's 1 MiB max_payload: 5 parts


@pytest.fixture
def hub_api(
    tmp_path: Path, topology: NatsTopology, hub: tuple[HubStore, HubBus]
) -> Iterator[tuple[TestClient, HubStore, HubConfig]]:
    """The hub's API serving clips through the hub fixture's bus, with a 3 MB limit."""
    store, bus = hub
    config = hub_config(tmp_path / "hub", topology.hub.url).model_copy(
        update={"hub": HubSiteConfig(max_clip_bytes=3_000_000, clip_timeout_s=5.0)}
    )
    clips = HubClips(config, bus.connection, cache_dir=tmp_path / "clip-cache")
    with TestClient(create_hub_app(config, store, clips=clips)) as client:
        yield client, store, config


def _headers(store: HubStore, scope: str = "all") -> dict[str, str]:
    return {"Authorization": f"Bearer {store.tokens.create('bureau', 'viewer', scope)[1]}"}


def _published_with_clip(plant: ServiceParts, store: HubStore, clip: bytes, *others: Event) -> Event:
    """Publish an incident carrying ``clip`` (then ``others``); wait until the hub holds them all and the
    plant has stored the clip."""
    event = make_event(clip_mp4=clip)
    for each in (event, *others):
        plant.sink.publish(each)
    assert wait_for(lambda: store.count_events(PLANT) == 1 + len(others), 30)
    assert wait_for(lambda: (stored := plant.store.get_event(event.id)) is not None and stored.clip_path, 30)
    return event


def test_a_clip_comes_from_the_plant_in_parts_is_cached_and_served_after_the_plant_goes_offline(
    plant: ServiceParts, hub_api: tuple[TestClient, HubStore, HubConfig], tmp_path: Path
) -> None:
    client, store, _config = hub_api
    bare = make_event(camera_id="cam-2")
    event = _published_with_clip(plant, store, CLIP, bare)
    headers = _headers(store)
    path = f"/api/plants/{PLANT}/events/{event.id}/clip"

    first = client.get(path, headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "video/mp4" and first.content == CLIP
    assert client.get(path, headers={**headers, "Range": "bytes=4-11"}).content == b"ftypisom"
    detail = client.get(f"/api/plants/{PLANT}/events/{event.id}", headers=headers).json()
    assert detail["clip_url"] == path

    missing = client.get(f"/api/plants/{PLANT}/events/{bare.id}/clip", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"incident '{bare.id}' of plant {PLANT} has no clip"
    other_plant = client.get(path, headers=_headers(store, "plant:elsewhere"))
    assert other_plant.status_code == 404

    plant.close()  # the plant's service is gone: nobody answers for it
    again = client.get(path, headers=headers)
    assert again.status_code == 200 and again.content == CLIP  # from the hub's cache
    offline = client.get(f"/api/plants/{PLANT}/events/{bare.id}/clip", headers=headers)
    assert offline.status_code == 504
    # no responders, or, while the leaf link still carries the gone plant's interest, no answer in time
    reasons = (f"plant {PLANT} is not reachable", f"plant {PLANT} did not answer within")
    assert offline.json()["detail"].startswith(reasons), offline.json()


def test_a_clip_over_the_hubs_limit_is_refused(
    plant: ServiceParts, hub_api: tuple[TestClient, HubStore, HubConfig]
) -> None:
    client, store, _config = hub_api
    event = _published_with_clip(plant, store, CLIP + os.urandom(1_000_000))

    response = client.get(f"/api/plants/{PLANT}/events/{event.id}/clip", headers=_headers(store))

    assert response.status_code == 413
    assert (
        response.json()["detail"] == "the clip is 3.5 MB, over the hub's limit of 3.0 MB (hub.max_clip_bytes)"
    )


def test_with_signing_keys_only_the_hub_holding_the_plants_key_gets_its_clips(
    tmp_path: Path,
    topology: NatsTopology,
    signed: tuple[ServiceParts, HubStore, HubBus],
) -> None:
    plant, store, bus = signed
    event = _published_with_clip(plant, store, CLIP[:300_000])
    path = f"/api/plants/{PLANT}/events/{event.id}/clip"
    keyed = hub_config(tmp_path / "hub", topology.hub.url, signing_key=SIGNING_KEY)
    keyless = hub_config(tmp_path / "hub", topology.hub.url)

    for config, cache, status in ((keyless, "a", 502), (keyed, "b", 200)):
        clips = HubClips(config, bus.connection, cache_dir=tmp_path / cache)
        with TestClient(create_hub_app(config, store, clips=clips)) as client:
            response = client.get(path, headers=_headers(store))
        assert response.status_code == status, response.text
        if status == 502:
            assert response.json()["detail"] == (
                f"plant {PLANT} answered refused: the request is not signed with the plant's key"
            )
    assert response.content == CLIP[:300_000]


def test_clips_are_answered_again_after_the_plants_nats_server_restarts(
    plant: ServiceParts, topology: NatsTopology, hub_api: tuple[TestClient, HubStore, HubConfig]
) -> None:
    client, store, _config = hub_api
    event = _published_with_clip(plant, store, CLIP[:200_000])

    server = topology.plants[PLANT]
    server.stop()
    server.start()  # the plant's client reconnects and subscribes again; the leaf link comes back
    path, headers = f"/api/plants/{PLANT}/events/{event.id}/clip", _headers(store)
    assert wait_for(lambda: client.get(path, headers=headers).status_code == 200, 30)
    assert client.get(path, headers=headers).content == CLIP[:200_000]
