"""The hub's schema is built and upgraded by its own Alembic migrations (``service/hub/migrations``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from anjian.service.database import masked_url
from anjian.service.errors import DatabaseError

__all__ = ["hub_head_revision", "upgrade_hub_database"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_VERSION_TABLE = "hub_alembic_version"


def _config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def hub_head_revision() -> str:
    """The newest hub migration shipped with this anjian."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise DatabaseError("no hub migrations are shipped with this anjian (broken install?)")
    return head


def upgrade_hub_database(engine: Engine) -> str:
    """Apply every pending hub migration; a database at the head is left alone.

    Returns:
        The hub revision the database is at afterwards.

    Raises:
        DatabaseError: A migration failed.
    """
    head = hub_head_revision()
    with engine.connect() as conn:
        current = MigrationContext.configure(
            conn, opts={"version_table": _VERSION_TABLE}
        ).get_current_revision()
    if current == head:
        return head
    config = _config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except Exception as exc:
        raise DatabaseError(
            f"migrating the hub's tables in {masked_url(str(engine.url))} failed: {exc}"
        ) from exc
    return head
