"""A private, throwaway PostgreSQL cluster for the tests: Debian's server binaries, a temp folder, a free port.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is
initialised and started as the ``postgres`` user (``runuser``). Each test gets a
fresh database (``create_database``), dropped afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresCluster", "postgres_bin_dir"]

_SUPERUSER = "postgres"


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl, or ``None``."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    for initdb in reversed(candidates):
        bin_dir = Path(initdb).parent
        if (bin_dir / "pg_ctl").is_file():
            return bin_dir
    return None


class PostgresCluster:
    """initdb + pg_ctl in a temp folder, listening on 127.0.0.1:``port`` only."""

    def __init__(self, bin_dir: Path, port: int) -> None:
        self._bin = bin_dir
        self.port = port
        self._root = Path(tempfile.mkdtemp(prefix="anjian-pg-"))
        self._data = self._root / "data"
        self._log = self._root / "server.log"
        self._is_root = os.geteuid() == 0
        self._counter = 0
        if self._is_root:
            shutil.chown(self._root, user=_SUPERUSER, group=_SUPERUSER)
            os.chmod(self._root, 0o700)

    def _run(self, *args: str) -> None:
        command = [str(self._bin / args[0]), *args[1:]]
        if self._is_root:
            command = ["runuser", "-u", _SUPERUSER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self._log.read_text(errors="replace") if self._log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr or result.stdout}\n{log[-2000:]}")

    def start(self) -> None:
        """Create the cluster and start the server; waits until it accepts connections."""
        self._run("initdb", "-D", str(self._data), "-U", _SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self._root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self._data), "-l", str(self._log), "-o", options, "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        """Stop the server (fast mode) and delete the cluster."""
        try:
            self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def url(self, database: str) -> str:
        """SQLAlchemy URL of one database of this cluster."""
        return f"postgresql+psycopg://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=_SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> tuple[str, str]:
        """A fresh empty database; returns (name, SQLAlchemy URL)."""
        self._counter += 1
        name = f"anjian_test_{self._counter}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name, self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database made by ``create_database`` (closing stray connections)."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
