"""Alembic environment of anjian: migrates the connection ``anjian.service.database.upgrade_database`` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from anjian.service.tables import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    """Run the pending migrations on one connection, in one transaction."""
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # `alembic -x url=...` from a shell, for developers writing a migration
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("pass the database URL: alembic -x url=sqlite:///data/anjian.db ...")
    with create_engine(url).connect() as conn:
        _run(conn)
