"""The hub's migrations build exactly its ORM tables, on SQLite and PostgreSQL, beside the service's schema,
and set right what older versions stored."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import TextClause, create_engine, inspect, select, text

import anjian.service.hub.schema
from anjian.service.config import StorageConfig
from anjian.service.hub.api import create_hub_app
from anjian.service.hub.config import HubConfig, PlantConfig
from anjian.service.hub.schema import hub_head_revision, upgrade_hub_database
from anjian.service.hub.store import HubStore
from anjian.service.hub.tables import HubAuditRow, HubBase, HubEventRow
from tests.service.conftest import FakeClock


def _hub_tables_only(name: str | None, kind: str, _parent: object) -> bool:
    return kind != "table" or ((name or "").startswith("hub_") and name != "hub_alembic_version")


def _stored_at_revision(database_url: str, revision: str, *rows: TextClause) -> None:
    """Migrate a fresh database to ``revision`` and store ``rows`` there, as an older hub left them."""
    config = AlembicConfig()
    config.set_main_option(
        "script_location", str(Path(anjian.service.hub.schema.__file__).parent / "migrations")
    )
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            for row in rows:
                conn.execute(row)
    finally:
        engine.dispose()


def test_hub_migrations_build_exactly_the_hub_tables(database_url: str) -> None:
    store = HubStore(database_url)
    try:
        engine = store.database.engine
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": _hub_tables_only}
            )
            diff = compare_metadata(context, HubBase.metadata)
            version = conn.execute(text("SELECT version_num FROM hub_alembic_version")).scalar_one()
        assert diff == [], "the hub's ORM and its migrations disagree: write a hub migration"
        assert version == hub_head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"hub_events", "hub_audit", "hub_cameras", "hub_plants", "hub_tokens"} <= tables
        assert "alembic_version" in tables  # the service's history, kept apart
        assert upgrade_hub_database(engine) == hub_head_revision()  # at the head: nothing to do
    finally:
        store.close()


def test_reported_times_no_date_can_hold_are_set_right_by_the_upgrade(
    database_url: str, tmp_path: Path
) -> None:
    # Stored before the bus bounded its times, since=1e15 made /api/cameras answer 500 for every token.
    _stored_at_revision(
        database_url,
        "h0004",
        text(
            "INSERT INTO hub_cameras (plant_id, camera_id, name, state, since, fps, reconnects, "
            "last_error, reported_at) VALUES ('lab-9', 'cam-x', NULL, 'online', 1e15, 5.0, 0, NULL, 1.8e9)"
        ),
        text(
            "INSERT INTO hub_sensors (plant_id, sensor_id, workshop_id, quantity, unit, source, state, "
            "is_source_connected, last_reading_at, last_value, open_kinds, reported_at) VALUES ('lab-9', "
            "'nh3-1', 'w', 'ammonia', 'ppm', 'http', 'ok', NULL, 1e15, 1.0, '[]', 1.8e9)"
        ),
    )

    store = HubStore(database_url)
    try:
        hub = HubConfig(storage=StorageConfig(dir=tmp_path), plants=[PlantConfig(id="lab-9")])
        _info, secret = store.tokens.create("bureau", "viewer", "all")
        headers = {"Authorization": f"Bearer {secret}"}
        with TestClient(create_hub_app(hub, store)) as client:
            cameras = client.get("/api/cameras", headers=headers)
            sensors = client.get("/api/sensors", headers=headers)
    finally:
        store.close()
    assert (cameras.status_code, sensors.status_code) == (200, 200)
    assert cameras.json()[0]["since"] == cameras.json()[0]["reported_at"]  # its report's time instead
    assert sensors.json()[0]["last_reading_at"] is None


def test_the_upgrade_keys_each_plant_line_by_its_audit_id_and_bounds_each_raise_by_its_message(
    database_url: str, clock: FakeClock
) -> None:
    # Lines stored before: a plant audit id handed out again (a restored plant) must find them, and an
    # incident raised before a plant's clock was set back must still be overdue in time.
    audit_lines = [
        text(
            "INSERT INTO hub_audit (plant_id, event_id, key, at, actor, action, note, is_from_hub) "
            "VALUES ('lab-3', 'e-1', :key, 1000.0, 'someone', 'acknowledge', '', :is_from_hub)"
        ).bindparams(key=key, is_from_hub=is_from_hub)
        for key, is_from_hub in (("raise", False), ("a17", False), ("r" + "0" * 32, True))
    ]
    _stored_at_revision(
        database_url,
        "h0005",
        text(
            "INSERT INTO hub_events (plant_id, event_id, version, revision, workshop_id, camera_id, "
            "behaviour, severity, state, started_at, created_at, message, event, snapshot_bytes, "
            "sent_at, received_at) VALUES ('lab-3', 'e-1', 2, 1, 'w', 'cam-1', 'open_flame', 'red', "
            "'raised', 1000.0, 1000.0, 'fire', '{}', 0, 1010.0, 1012.5)"
        ),
        *audit_lines,
    )

    store = HubStore(database_url, clock=clock)
    try:
        with store.database.read() as session:
            lines = {row.key: (row.plant_audit_id, row.epoch) for row in session.scalars(select(HubAuditRow))}
            row = session.get(HubEventRow, ("lab-3", "e-1"))
            assert row is not None
            raised = (row.raised_by_at, row.epoch)
    finally:
        store.close()
    assert lines == {"raise": (None, 0), "a17": (17, 0), "r" + "0" * 32: (None, 0)}
    assert raised == (1002.5, 0)  # created_at + (received_at - sent_at)
