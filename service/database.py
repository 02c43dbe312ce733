"""The database connection every store shares: engine, sessions, and schema migrations (Alembic).

SQLite is the default (a file in the data folder); PostgreSQL is chosen by URL
(``postgresql+psycopg://user:password@host/db``, with the ``anjian[postgres]``
extra installed). On SQLite the database runs in WAL mode (readers never block the
writer; the WAL file is cut back to 16 MiB after a checkpoint), write transactions
start with ``BEGIN IMMEDIATE`` (so they queue on the busy timeout instead of failing
on a lock upgrade), and foreign keys are enforced.

The schema is built and changed only by the Alembic migrations shipped in
``service/migrations`` (run by ``upgrade_database``, at start or by ``anjian db upgrade``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from anjian.cameras.url import mask_credentials
from anjian.service.errors import DatabaseError

__all__ = [
    "Database",
    "check_driver",
    "head_revision",
    "is_schema_current",
    "masked_url",
    "sqlite_url",
    "upgrade_database",
]

logger = logging.getLogger(__name__)

_WRITE_OPTION = "anjian_write"
_SQLITE_POOL = 16
# The WAL is rewound, not shrunk, after a checkpoint: without a limit its file keeps the size of
# the largest transaction ever written (67 MB after one big sensor compaction). 16 MiB is four
# times what it reaches between two auto-checkpoints (1,000 pages of 4 KiB), so ordinary writes
# never truncate and regrow it, and a burst's extra space is given back at the next rewind.
_WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024
_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_POSTGRES_EXTRA = "the postgres extra: pip install -e '.[postgres]'"


def sqlite_url(directory: Path | str) -> str:
    """The default database URL: ``anjian.db`` in the data folder."""
    return f"sqlite:///{Path(directory) / 'anjian.db'}"


def masked_url(database_url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing rather than leaked
        return "<unparsable database URL>"


def _missing_driver(database_url: str, exc: ModuleNotFoundError) -> DatabaseError:
    """The error for a URL whose DBAPI driver is not installed: which driver, and the extra that brings it."""
    driver = exc.name or str(exc)
    how = _POSTGRES_EXTRA if driver.startswith("psycopg") else f"install the {driver} module"
    return DatabaseError(
        f"{masked_url(database_url)}: cannot open the database: its driver {driver} is not installed ({how})"
    )


def check_driver(database_url: str) -> None:
    """Check that this install has the driver ``database_url`` needs (cheap: imports it, connects nowhere).

    Raises:
        DatabaseError: The driver is not installed (for PostgreSQL: the ``postgres`` extra).
    """
    try:
        make_url(database_url).get_dialect().import_dbapi()
    except ModuleNotFoundError as exc:
        raise _missing_driver(database_url, exc) from None
    except Exception:  # noqa: BLE001 - anything else about the URL is for opening it to say
        return


def _alembic_config() -> AlembicConfig:
    """An Alembic config pointing at the migrations inside the installed package."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration shipped with this anjian."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise DatabaseError("no migrations are shipped with this anjian (broken install?)")
    return head


def _is_known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of the migrations shipped with this anjian."""
    try:
        return ScriptDirectory.from_config(_alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _current_revision(engine: Engine) -> str | None:
    """The revision stamped in the database, or ``None`` for an empty one."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_schema_current(engine: Engine) -> bool:
    """Whether the database is at the newest shipped migration."""
    return _current_revision(engine) == head_revision()


def _reason(exc: SQLAlchemyError) -> str:
    """The database's own reason in one line, credentials masked (SQLAlchemy appends SQL and a help link)."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return mask_credentials(lines[0] if lines else type(cause).__name__)


def upgrade_database(engine: Engine) -> str:
    """Apply every pending migration; a database already at the head is left alone.

    Args:
        engine: The database.

    Returns:
        The revision the database is at afterwards.

    Raises:
        DatabaseError: The database holds anjian tables that no migration made
            (an anjian older than migrations created it), or a migration failed.
    """
    head = head_revision()
    current = _current_revision(engine)
    if current == head:
        return head
    if current is not None and not _is_known_revision(current):
        raise DatabaseError(
            f"{masked_url(str(engine.url))} is at schema {current}, newer than this anjian knows (its newest is "
            f"{head}): run the anjian that wrote it, or a newer one"
        )
    if current is None and inspect(engine).has_table("events"):
        raise DatabaseError(
            f"{masked_url(str(engine.url))} holds anjian tables but no migration stamp: it was made by an "
            "anjian before 0.2; move it aside and start again"
        )
    logger.info("migrating the database from %s to %s", current or "empty", head)
    migrate_database(engine, "head")
    return head


def downgrade_database(engine: Engine, revision: str) -> str:
    """Take the database back to ``revision``, an older shipped schema, for the older anjian that knows it.

    The way back after an upgrade (an older anjian refuses a schema newer than it knows):
    what the newer migrations added (columns, indexes) is dropped, the rest is kept.

    Returns:
        The revision it was at before.

    Raises:
        DatabaseError: ``revision`` is not a shipped migration, or not older than the current one.
    """
    current = _current_revision(engine)
    if not _is_known_revision(revision):
        raise DatabaseError(
            f"no schema revision {revision!r} ships with this anjian (its newest is {head_revision()})"
        )
    if current is None or not _is_below(revision, current):
        raise DatabaseError(f"{masked_url(str(engine.url))} is at schema {current}: {revision} is not older")
    logger.info("migrating the database down from %s to %s", current, revision)
    migrate_database(engine, revision)
    return current


def migrate_database(engine: Engine, revision: str) -> None:
    """Migrate to ``revision`` (up, or down for a revision below the current one), in one transaction.

    On SQLite, foreign keys are off while it runs: Alembic alters a SQLite table by copying it
    and dropping the old one, and with foreign keys on that drop deletes every row that refers
    to it (``ON DELETE CASCADE``): a migration touching ``events`` emptied every audit trail and
    webhook delivery, without an error. Before committing, ``PRAGMA foreign_key_check`` must
    find no row left dangling, or nothing is committed.

    Raises:
        DatabaseError: A migration failed, or left rows referring to nothing (rolled back).
    """
    config = _alembic_config()
    is_sqlite = engine.dialect.name == "sqlite"
    target = masked_url(str(engine.url))
    try:
        with engine.connect() as conn:
            if is_sqlite:  # before the transaction: inside one the pragma is ignored
                _pragma(conn, "PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    config.attributes["connection"] = conn
                    current = MigrationContext.configure(conn).get_current_revision()
                    if revision != "head" and current is not None and _is_below(revision, current):
                        command.downgrade(config, revision)
                    else:
                        command.upgrade(config, revision)
                    dangling = (
                        conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() if is_sqlite else []
                    )
                    if dangling:
                        raise DatabaseError(
                            f"migrating {target} to {revision} would leave {len(dangling)} row(s) referring to "
                            f"nothing (first: table {dangling[0][0]}, row {dangling[0][1]}): nothing was changed"
                        )
            finally:
                if is_sqlite:
                    _pragma(conn, "PRAGMA foreign_keys=ON")
    except DatabaseError:
        raise
    except Exception as exc:
        raise DatabaseError(f"migrating {target} to {revision} failed: {exc}") from exc


def _pragma(conn: Any, statement: str) -> None:
    """Run a SQLite pragma on the connection outside any transaction (the driver is in autocommit)."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def _is_below(revision: str, current: str) -> bool:
    """Whether ``revision`` comes before ``current`` in the shipped migrations."""
    script = ScriptDirectory.from_config(_alembic_config())
    return any(
        step.revision == revision
        for step in script.iterate_revisions(current, "base")
        if step.revision != current
    )


class Database:
    """An engine and its sessions, shared by the stores of one process; thread-safe.

    Args:
        database_url: SQLAlchemy URL.
        busy_timeout_s: How long a SQLite write waits for another writer.
        is_auto_migrate: Apply pending migrations now; otherwise refuse a
            database that is not at the head revision.

    Raises:
        DatabaseError: The URL's driver is not installed (PostgreSQL: the ``postgres`` extra), the
            schema is behind and ``is_auto_migrate`` is off, or migrating failed.
    """

    def __init__(
        self, database_url: str, *, busy_timeout_s: float = 5.0, is_auto_migrate: bool = True
    ) -> None:
        if busy_timeout_s <= 0:
            raise ValueError(f"busy_timeout_s must be > 0, got {busy_timeout_s}")
        try:
            self._open(database_url, busy_timeout_s, is_auto_migrate=is_auto_migrate)
        except (
            SQLAlchemyError
        ) as exc:  # a bad URL, an unknown driver, a server down, a file that is no database
            raise DatabaseError(
                f"{masked_url(database_url)}: cannot open the database: {_reason(exc)}"
            ) from None

    def _open(self, database_url: str, busy_timeout_s: float, *, is_auto_migrate: bool) -> None:
        """Create the engine and bring the schema to the head (or check it is there)."""
        self._engine = self._make_engine(database_url, busy_timeout_s)
        self._read_sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            self._engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )
        if is_auto_migrate:
            upgrade_database(self._engine)
        else:
            current, head = _current_revision(self._engine), head_revision()
            if current != head:
                raise DatabaseError(
                    f"{masked_url(database_url)} is at schema {current or 'empty'}, this anjian needs {head}: "
                    "run `anjian db upgrade`"
                )

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine."""
        return self._engine

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is SQLite."""
        return self._engine.dialect.name == "sqlite"

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def ping(self) -> None:
        """Run a trivial query; raises ``sqlalchemy.exc.SQLAlchemyError`` when the database is unusable."""
        with self.read() as session:
            session.execute(text("SELECT 1"))

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a read transaction (``BEGIN`` on SQLite: a consistent WAL snapshot)."""
        with self._read_sessions() as session, session.begin():
            yield session

    def on_write_commit(self, callback: Callable[[Session], None]) -> None:
        """Call ``callback(session)`` after each write transaction commits (SQLAlchemy's ``after_commit``).

        The callback runs in the committing thread, after the data is durable; it must not
        use the session for more SQL. ``Outbox`` uses it to tell the webhook workers about
        deliveries a commit made due.
        """
        event.listen(self._write_sessions, "after_commit", callback)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on exit."""
        with self._write_sessions() as session, session.begin():
            yield session

    @staticmethod
    def _make_engine(database_url: str, busy_timeout_s: float) -> Engine:
        """Create the engine; on SQLite: WAL (size limited), busy timeout, foreign keys, explicit BEGINs."""
        if not database_url.startswith("sqlite"):
            try:
                return create_engine(database_url, pool_pre_ping=True)
            except ModuleNotFoundError as exc:  # the dialect imports its driver here (psycopg)
                raise _missing_driver(database_url, exc) from None
        is_memory = database_url in {"sqlite://", "sqlite:///:memory:"} or "mode=memory" in database_url
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
            # One shared connection for an in-memory database, else each connection sees its own.
            # A file keeps enough connections for the request thread pool (40), so a busy
            # service reuses them instead of opening (and setting up) one per request.
            **({"poolclass": StaticPool} if is_memory else {"pool_size": _SQLITE_POOL, "max_overflow": 32}),
        )
        busy_timeout_ms = int(busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                if not is_memory:
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
                    cursor.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT_BYTES}")
                cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
                cursor.execute("PRAGMA foreign_keys=ON")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            is_write = bool(conn.get_execution_options().get(_WRITE_OPTION))
            conn.exec_driver_sql("BEGIN IMMEDIATE" if is_write else "BEGIN")

        return engine
