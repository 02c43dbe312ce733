"""Fixtures of the service tests: a fake clock, the store over SQLite and over a real PostgreSQL, tokens,
a service's parts with real servers over them, and Debian's headless Chromium under Playwright for the
dashboards."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from anjian.pipeline.config import CameraPipelineConfig
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import AnjianConfig, SiteConfig, StorageConfig, WebhookConfig, WorkshopConfig
from anjian.service.store import EventStore
from anjian.service.tokens import Role
from tests.service.postgres import PostgresCluster, postgres_bin_dir
from tests.service.server import ServerThread
from tests.support.receiver import unused_port

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless Chromium under Playwright (skips where either is missing)."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def expect() -> Any:
    """Playwright's ``expect`` (skips without Playwright)."""
    return pytest.importorskip("playwright.sync_api").expect


class FakeClock:
    """A settable clock returning epoch seconds."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_config(
    data_dir: Path,
    webhooks: list[WebhookConfig] | None = None,
    *,
    database_url: str | None = None,
    camera_ids: Sequence[str] = ("cam-1", "cam-2"),
    timezone: str = "UTC",
    **overrides: object,
) -> AnjianConfig:
    """A one-workshop site in ``timezone`` storing in ``data_dir`` (or ``database_url``), with these cameras
    (never opened).

    Ingest takes events of the site's cameras only: ``make_event`` uses ``cam-1``.
    """
    cameras = [
        CameraPipelineConfig(id=camera_id, url=f"rtsp://127.0.0.1:9/{camera_id}") for camera_id in camera_ids
    ]
    return AnjianConfig(
        site=SiteConfig(
            id="site-1", timezone=timezone, workshops=[WorkshopConfig(id="polishing-1", cameras=cameras)]
        ),
        storage=StorageConfig(dir=data_dir, database_url=database_url),
        webhooks=webhooks or [],
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(tmp_path: Path) -> AnjianConfig:
    """The site of ``make_config`` storing in ``tmp_path / "data"``; a module overrides it for other settings."""
    return make_config(tmp_path / "data")


@pytest.fixture
def app(config: AnjianConfig) -> Iterator[FastAPI]:
    """The service over ``config``; its store is closed after the test."""
    from anjian.service.app import create_app

    app = create_app(config)
    yield app
    app.state.store.close()


@pytest.fixture
def server(app: FastAPI) -> Iterator[ServerThread]:
    """A real server over ``app`` on loopback, stopped after the test."""
    server = ServerThread(app).start()
    yield server
    server.stop()


@pytest.fixture
def parts(config: AnjianConfig) -> Iterator[ServiceParts]:
    """The parts of a service over ``config`` reading no camera, started and owned by the test: they outlive
    a server restart. A module overrides it for another clock or camera health."""
    parts = build_service_parts(config, camera_health=list)
    parts.start()
    yield parts
    parts.close()


@pytest.fixture
def serve(parts: ServiceParts, config: AnjianConfig) -> Iterator[Callable[..., ServerThread]]:
    """``serve(port=None)`` starts a server over ``parts`` (``port``: where a stopped one was); all stop after."""
    from anjian.service.app import create_app

    servers: list[ServerThread] = []

    def start(port: int | None = None) -> ServerThread:
        servers.append(ServerThread(create_app(config, parts), port=port).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One private PostgreSQL server for the session; skipped when Debian's postgresql is not installed."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt install postgresql)"
        )
    cluster = PostgresCluster(bin_dir, unused_port())
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)],
    ids=["sqlite", "postgresql"],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database: a SQLite file, or a database on the private PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'anjian.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name, url = cluster.create_database()
    yield url
    cluster.drop_database(name)


@pytest.fixture
def store(database_url: str, clock: FakeClock) -> Iterator[EventStore]:
    store = EventStore(database_url, clock=clock)
    yield store
    store.close()


def bearer(store: EventStore, role: Role | str, name: str | None = None) -> dict[str, str]:
    """Headers carrying a fresh token of ``role``."""
    _info, secret = store.tokens.create(name or f"{Role(role).value}-user", role)
    return {"Authorization": f"Bearer {secret}"}
