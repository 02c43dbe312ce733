"""The hub's clip cache: one fetch per clip, the least recently served evicted past its size, ids checked."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from anjian.service.bus.errors import BusUnavailableError, PlantBusyError, PlantUnreachableError
from anjian.service.config import StorageConfig
from anjian.service.hub.clips import HubClips
from anjian.service.hub.config import HubConfig, HubSiteConfig, PlantConfig
from tests.support.waiting import wait_for


class FakeConnection:
    """Stands for the hub's BusConnection: each fetch answers the next clip, and is counted."""

    def __init__(self, is_connected: bool = True) -> None:
        self.is_connected = is_connected
        self.fetches = 0

    def call(self, work: Any, *, timeout_s: float) -> bytes:
        del work, timeout_s
        self.fetches += 1
        return bytes([self.fetches]) * 100_000


def _clips(tmp_path: Path, connection: FakeConnection, cache_bytes: int) -> HubClips:
    config = HubConfig(
        hub=HubSiteConfig(clip_cache_bytes=cache_bytes),
        storage=StorageConfig(dir=tmp_path),
        plants=[PlantConfig(id="lab-3")],
    )
    return HubClips(config, connection)  # type: ignore[arg-type]


def test_a_clip_is_fetched_once_and_the_least_recently_served_go_past_the_cache_size(tmp_path: Path) -> None:
    connection = FakeConnection()
    clips = _clips(tmp_path, connection, cache_bytes=250_000)

    first = clips.path("lab-3", "e1")
    assert clips.path("lab-3", "e1") == first and connection.fetches == 1  # served from the cache
    os.utime(first, (1, 1))  # served long ago
    second = clips.path("lab-3", "e2")
    third = clips.path("lab-3", "e3")  # 300 kB cached: the least recently served (e1) goes

    assert not first.exists() and second.exists() and third.exists()
    assert third.read_bytes() == bytes([3]) * 100_000
    assert clips.path("lab-3", "e1").read_bytes() == bytes([4]) * 100_000  # fetched again


def test_the_clip_just_fetched_stays_even_over_a_zero_cache(tmp_path: Path) -> None:
    clips = _clips(tmp_path, FakeConnection(), cache_bytes=0)
    first = clips.path("lab-3", "e1")
    second = clips.path("lab-3", "e2")
    assert second.exists() and not first.exists()


@pytest.mark.parametrize(
    ("plant_id", "event_id"),
    [("lab-3", "../x"), ("lab-3", ".hidden"), ("lab.3", "e1"), ("lab-3", "a\\b")],
    ids=["parent", "dot", "dotted-plant", "backslash"],
)
def test_an_id_that_cannot_name_a_file_is_refused(tmp_path: Path, plant_id: str, event_id: str) -> None:
    with pytest.raises(ValueError, match="cannot"):
        _clips(tmp_path, FakeConnection(), cache_bytes=1000).path(plant_id, event_id)


def test_without_the_hubs_nats_connection_nothing_is_fetched(tmp_path: Path) -> None:
    with pytest.raises(BusUnavailableError, match="not connected to its nats-server"):
        _clips(tmp_path, FakeConnection(is_connected=False), cache_bytes=1000).path("lab-3", "e1")


class SilentPlant(FakeConnection):
    """A plant that never answers: each fetch blocks until released, then times out."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def call(self, work: Any, *, timeout_s: float) -> bytes:
        del work, timeout_s
        self.fetches += 1
        self.release.wait(30)
        raise PlantUnreachableError("plant lab-3 did not answer")


def test_requests_waiting_on_a_fetch_that_fails_get_its_answer_not_a_timeout_each(tmp_path: Path) -> None:
    """Six viewers of a silent plant's clip waited one timeout each, in turn (3, 6, ... 18 s); now one fetch answers all."""
    plant = SilentPlant()
    clips = _clips(tmp_path, plant, cache_bytes=1_000_000)
    errors: list[BaseException] = []

    def view() -> None:
        try:
            clips.path("lab-3", "e1")
        except PlantUnreachableError as exc:
            errors.append(exc)

    viewers = [threading.Thread(target=view) for _ in range(6)]
    for viewer in viewers:
        viewer.start()
    assert wait_for(lambda: plant.fetches == 1, 10)
    plant.release.set()
    for viewer in viewers:
        viewer.join(30)
    assert len(errors) == 6 and plant.fetches == 1
    assert clips._locks == {}  # nothing left behind per clip asked for (it grew by one a failure)


def test_a_cached_clip_leaves_no_lock_behind(tmp_path: Path) -> None:
    clips = _clips(tmp_path, FakeConnection(), cache_bytes=1_000_000)
    for _ in range(3):
        clips.path("lab-3", "e1")
    assert clips._locks == {}


class SlowPlant(FakeConnection):
    """A plant on a slow uplink: each fetch holds until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.sending = 0

    def call(self, work: Any, *, timeout_s: float) -> bytes:
        self.sending += 1
        self.release.wait(60)
        return super().call(work, timeout_s=timeout_s)


def test_at_most_clip_fetches_per_plant_clips_come_from_one_plant_at_a_time(tmp_path: Path) -> None:
    plant = SlowPlant()
    config = HubConfig(
        hub=HubSiteConfig(clip_fetches_per_plant=2, clip_timeout_s=0.2),
        storage=StorageConfig(dir=tmp_path),
        plants=[PlantConfig(id="lab-3")],
    )
    clips = HubClips(config, plant)  # type: ignore[arg-type]
    fetched: list[Path] = []
    viewers = [
        threading.Thread(target=lambda e=e: fetched.append(clips.path("lab-3", e))) for e in ("e1", "e2")
    ]
    for viewer in viewers:
        viewer.start()
    assert wait_for(lambda: plant.sending == 2, 10)

    with pytest.raises(
        PlantBusyError, match="'lab-3' is sending 2 clips"
    ):  # a third waits its turn, then 503
        clips.path("lab-3", "e3")
    plant.release.set()
    for viewer in viewers:
        viewer.join(30)
    assert len(fetched) == 2
    assert clips.path("lab-3", "e3").exists()  # its turn came
