"""The SQLite write-ahead log gives back the space of a big transaction instead of keeping it for ever."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert, text

import anjian.service.database as database_module
from anjian.service.database import Database, sqlite_url
from anjian.service.tables import ReadingRow


def test_every_sqlite_connection_limits_the_wal_file(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path))
    try:
        with database.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_size_limit")).scalar() == 16 * 1024 * 1024
    finally:
        database.close()


def test_the_wal_file_shrinks_after_a_big_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It kept the size of the largest transaction ever written (67 MB after one sensor compaction)."""
    limit = 256 * 1024
    monkeypatch.setattr(database_module, "_WAL_SIZE_LIMIT_BYTES", limit)
    database = Database(sqlite_url(tmp_path))
    wal = tmp_path / "anjian.db-wal"
    rows = [
        {
            "sensor_id": f"s-{i % 100}",
            "at": float(i),
            "value": 1.0,
            "min": 1.0,
            "max": 1.0,
            "count": 1,
            "bucket_s": 0,
        }
        for i in range(100_000)
    ]
    try:
        with database.write() as session:
            session.execute(insert(ReadingRow), rows)
        grown = wal.stat().st_size
        for i in range(3):  # ordinary small writes: the WAL is rewound after the checkpoint
            with database.write() as session:
                session.execute(insert(ReadingRow), [{**rows[0], "at": -1.0 - i}])
        assert grown > 4 * limit, f"the test's transaction should grow the WAL well past {limit} B"
        assert wal.stat().st_size <= limit
    finally:
        database.close()
