"""Alembic migrations: they build exactly the ORM's schema on SQLite and PostgreSQL, run once, and guard the start."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from anjian.service.database import (
    Database,
    head_revision,
    is_schema_current,
    migrate_database,
    upgrade_database,
)
from anjian.service.errors import DatabaseError
from anjian.service.store import EventStore
from anjian.service.tables import Base
from tests.factories import make_event


def test_migrations_build_exactly_the_orm_schema(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == [], "the ORM and the migrations disagree: write a migration"
        assert is_schema_current(database.engine)
        assert set(inspect(database.engine).get_table_names()) >= {
            "events",
            "event_audit",
            "webhook_subscriptions",
            "webhook_deliveries",
            "api_tokens",
            "alembic_version",
        }
    finally:
        database.close()


def test_upgrading_a_current_database_changes_nothing(database_url: str) -> None:
    Database(database_url).close()
    engine = create_engine(database_url)
    try:
        assert upgrade_database(engine) == head_revision()
    finally:
        engine.dispose()


def test_without_auto_migrate_an_empty_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="anjian db upgrade"):
        Database(f"sqlite:///{tmp_path / 'x.db'}", is_auto_migrate=False)


def test_database_made_before_migrations_is_refused_not_clobbered(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE events (id VARCHAR(64) PRIMARY KEY)"))
    engine.dispose()

    with pytest.raises(DatabaseError, match="no migration stamp"):
        Database(url)


def test_migrations_ship_inside_the_package() -> None:
    import anjian.service.migrations

    folder = Path(anjian.service.migrations.__file__).parent
    assert (folder / "env.py").is_file()
    assert list((folder / "versions").glob("0001_*.py"))


def test_an_event_stored_before_track_id_existed_survives_the_upgrade_without_one(database_url: str) -> None:
    import anjian.service.migrations

    config = AlembicConfig()
    config.set_main_option("script_location", str(Path(anjian.service.migrations.__file__).parent))
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(
                text(
                    "INSERT INTO events (id, revision, site_id, workshop_id, camera_id, behaviour, severity, "
                    "detected_severity, state, started_at, last_seen_at, confidence, model_version, message, "
                    "boxes, escalations, state_changed_at, version, created_at, updated_at) VALUES ('old-1', 1, "
                    "'site-1', 'polishing-1', 'cam-1', 'smoking', 'orange', 'orange', 'raised', 1.0, 2.0, 0.5, "
                    "'', '', '[]', 0, 3.0, 1, 3.0, 3.0)"
                )
            )
    finally:
        engine.dispose()

    store = EventStore(database_url)
    try:
        old = store.get_event("old-1")
        store.upsert_event(make_event(id="new-1", track_id=2**40 + 9))  # BIGINT on PostgreSQL
        new = store.get_event("new-1")
    finally:
        store.close()

    assert old is not None and old.track_id is None and old.behaviour == "smoking"
    assert new is not None and new.track_id == 2**40 + 9


def test_migrating_down_and_up_keeps_every_audit_line_of_a_populated_database(database_url: str) -> None:
    """Alembic copies a SQLite table to alter it; with foreign keys on, dropping the old events table deleted
    every audit line and webhook delivery (ON DELETE CASCADE), silently: 0005's downgrade copies events."""
    store = EventStore(database_url)
    try:
        for i in range(3):
            event = make_event(id=f"e-{i}")
            store.upsert_event(event)
            store.transition(event.id, "acknowledge", actor="operator")
    finally:
        store.close()
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            before = conn.execute(text("SELECT COUNT(*) FROM event_audit")).scalar_one()
        migrate_database(database.engine, "0004")  # 0006 and 0005 undone: events copied on SQLite
        migrate_database(database.engine, "head")
        with database.engine.connect() as conn:
            after = conn.execute(text("SELECT COUNT(*) FROM event_audit")).scalar_one()
            events = conn.execute(text("SELECT COUNT(*) FROM events")).scalar_one()
    finally:
        database.close()
    assert before >= 3 and (events, after) == (3, before)
