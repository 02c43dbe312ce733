"""The one atomic file write: whole new content or the old file, never half, and no temporary left behind."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from anjian.models.atomic import TEMPORARY_PREFIX, write_atomic
from anjian.models.registry import register_version


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


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_file_gets_the_umasks_mode_and_a_replaced_one_keeps_its_own(
    tmp_path: Path, umask_022: None
) -> None:
    """tempfile's 0600 made the registry's pointer unreadable by a service running as another user."""
    fresh, kept = tmp_path / "promoted", tmp_path / "private"
    write_atomic(fresh, "2\n")
    kept.write_text("1\n")
    kept.chmod(0o640)
    write_atomic(kept, "2\n")

    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_a_registered_version_is_readable_by_others_under_an_ordinary_umask(
    tmp_path: Path, umask_022: None
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    version = register_version("det", model, {}, "# det\n", root=tmp_path / "registry")

    assert stat.S_IMODE(version.directory.stat().st_mode) == 0o755
    assert stat.S_IMODE((version.directory / "model.onnx").stat().st_mode) == 0o644
