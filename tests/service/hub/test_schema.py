"""The hub's migrations build exactly its ORM tables, on SQLite and PostgreSQL, beside the service's schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from anjian.service.hub.schema import hub_head_revision, upgrade_hub_database
from anjian.service.hub.store import HubStore
from anjian.service.hub.tables import HubBase


def _hub_tables_only(name: str | None, kind: str, _parent: object) -> bool:
    return kind != "table" or ((name or "").startswith("hub_") and name != "hub_alembic_version")


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
