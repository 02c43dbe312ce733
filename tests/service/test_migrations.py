"""Alembic migrations: they build exactly the ORM's schema on SQLite and PostgreSQL, run once, and guard the start."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from anjian.service.database import Database, head_revision, is_schema_current, upgrade_database
from anjian.service.errors import DatabaseError
from anjian.service.tables import Base


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
