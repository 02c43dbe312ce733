"""The storage folder's free space: /readyz refuses below storage.min_free_mb and says why, /metrics shows it,
and the log says so once each way."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from anjian.service.app import create_app
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.storage_space import StorageSpace
from tests.service.conftest import make_config

MB = 1024 * 1024


class FakeDisk:
    """``shutil.disk_usage`` of a 10 GB file system whose free space the test sets."""

    def __init__(self, free_bytes: int) -> None:
        self.free_bytes = free_bytes
        self.total_bytes = 10 * 1024 * MB
        self.error: OSError | None = None

    def __call__(self, path: Path) -> tuple[int, int, int]:
        if self.error is not None:
            raise self.error
        return self.total_bytes, self.total_bytes - self.free_bytes, self.free_bytes


@pytest.fixture
def disk() -> FakeDisk:
    return FakeDisk(free_bytes=2048 * MB)


@pytest.fixture
def parts(tmp_path: Path, disk: FakeDisk) -> Iterator[ServiceParts]:
    parts = build_service_parts(make_config(tmp_path / "data"), disk_usage=disk)  # min_free_mb: 500
    parts.start()
    yield parts
    parts.close()


@pytest.fixture
def client(tmp_path: Path, parts: ServiceParts) -> TestClient:
    return TestClient(create_app(make_config(tmp_path / "data"), parts))


def _free_bytes_gauge(client: TestClient) -> float:
    text = client.get("/metrics").text
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "anjian_storage_free_bytes"]
    return float(family.samples[0].value)


def test_readyz_fails_below_min_free_mb_saying_why_and_the_log_says_so_once_each_way(
    client: TestClient, disk: FakeDisk, caplog: pytest.LogCaptureFixture
) -> None:
    ready = client.get("/readyz")
    with caplog.at_level(logging.INFO, logger="anjian.service.storage_space"):
        disk.free_bytes = 120 * MB
        low = [client.get("/readyz") for _ in range(3)]
        disk.free_bytes = 900 * MB
        again = client.get("/readyz")

    assert ready.status_code == 200 and ready.json()["checks"]["disk_space"] is True
    assert ready.json()["problems"] == []
    assert {response.status_code for response in low} == {503}
    body = low[0].json()
    assert body["is_ready"] is False and body["checks"]["disk_space"] is False
    assert body["checks"]["database"] is True, "the database still answers: only the disk says why"
    (problem,) = body["problems"]
    assert "120 MB free" in problem and "storage.min_free_mb (500 MB)" in problem
    assert again.status_code == 200
    messages = [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "anjian.service.storage_space"
    ]
    assert [level for level, _ in messages] == [logging.WARNING, logging.INFO], "one line when it flips"
    assert "120 MB free" in messages[0][1] and "900 MB free" in messages[1][1]


def test_metrics_show_the_free_bytes_of_the_storage_file_system(client: TestClient, disk: FakeDisk) -> None:
    first = _free_bytes_gauge(client)
    disk.free_bytes = 300 * MB

    assert (first, _free_bytes_gauge(client)) == (2048 * MB, 300 * MB)


def test_readyz_fails_when_the_free_space_cannot_be_read(client: TestClient, disk: FakeDisk) -> None:
    disk.error = OSError(5, "Input/output error")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["problems"] == ["cannot read the free space of storage.dir: Input/output error"]
    assert "anjian_storage_free_bytes" not in client.get("/metrics").text


@pytest.mark.parametrize(
    ("min_free_mb", "free_mb", "is_low"),
    [(500, 499, True), (500, 500, False), (0, 0, False)],
    ids=["below", "at-threshold", "check-off"],
)
def test_storage_is_low_only_below_its_threshold(
    tmp_path: Path, min_free_mb: int, free_mb: int, is_low: bool
) -> None:
    space = StorageSpace(tmp_path, min_free_bytes=min_free_mb * MB, disk_usage=FakeDisk(free_mb * MB))

    assert space.read().is_low is is_low


def test_storage_counts_as_fine_again_only_10_percent_over_the_threshold_so_it_does_not_flap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk = FakeDisk(free_bytes=1000 * MB)
    space = StorageSpace(tmp_path, min_free_bytes=500 * MB, disk_usage=disk)

    with caplog.at_level(logging.INFO, logger="anjian.service.storage_space"):
        readings = []
        for free_mb in (499, 501, 520, 498, 549, 550):
            disk.free_bytes = free_mb * MB
            readings.append(space.read().is_low)

    assert readings == [True, True, True, True, True, False]
    assert len([r for r in caplog.records if r.name == "anjian.service.storage_space"]) == 2
