"""The one atomic file write: whole new content or the old file, never half, and no temporary left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anjian.models.atomic import TEMPORARY_PREFIX, write_atomic


@pytest.mark.parametrize("is_fsync", [True, False], ids=["fsync", "no-fsync"])
def test_write_atomic_creates_then_replaces_the_file(tmp_path: Path, is_fsync: bool) -> None:
    path = tmp_path / "promoted"
    write_atomic(path, b"1\n", is_fsync=is_fsync)
    write_atomic(path, "2 — 二\n", is_fsync=is_fsync)
    assert path.read_text(encoding="utf-8") == "2 — 二\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["promoted"]


def test_a_failed_rename_leaves_the_old_content_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snapshot.jpg"
    path.write_bytes(b"old")
    seen: list[str] = []

    def failing_replace(src: str, dst: Path) -> None:
        seen.append(Path(src).name)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot.jpg"]
    assert seen[0].startswith(TEMPORARY_PREFIX) and seen[0].endswith(".jpg")  # a sibling, skipped by readers


def test_write_atomic_into_a_missing_folder_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "meta.json", "{}")
