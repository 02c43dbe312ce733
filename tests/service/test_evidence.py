"""EvidenceStore: atomic snapshot files under the data folder, and no way out of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.service.errors import EvidenceNotFoundError, EvidencePathError
from anjian.service.evidence import EvidenceStore
from tests.factories import make_jpeg


@pytest.fixture
def evidence(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore(tmp_path / "data")


def test_save_snapshot_writes_file_at_documented_path_and_returns_relative_path(
    tmp_path: Path, evidence: EvidenceStore
) -> None:
    jpeg = make_jpeg()

    relpath = evidence.save_snapshot("cam-1", "abc123", jpeg)

    assert relpath == "evidence/cam-1/abc123/snapshot.jpg"
    assert (tmp_path / "data" / "evidence" / "cam-1" / "abc123" / "snapshot.jpg").read_bytes() == jpeg
    assert evidence.read(relpath) == jpeg


def test_save_snapshot_replaces_earlier_one_and_leaves_no_temporary_files(evidence: EvidenceStore) -> None:
    evidence.save_snapshot("cam-1", "abc123", make_jpeg(bgr=(0, 0, 255)))
    newer = make_jpeg(bgr=(255, 0, 0))

    relpath = evidence.save_snapshot("cam-1", "abc123", newer)

    assert evidence.read(relpath) == newer
    assert [p.name for p in evidence.resolve(relpath).parent.iterdir()] == ["snapshot.jpg"]


@pytest.mark.parametrize(
    ("camera_id", "event_id"),
    [
        ("..", "abc"),
        ("cam-1", ".."),
        ("../cam", "abc"),
        ("cam-1", "a/b"),
        ("cam\\1", "abc"),
        ("", "abc"),
        ("cam-1", ".hidden"),
        ("cam-1", "a\x00b"),
    ],
    ids=[
        "dotdot-camera",
        "dotdot-event",
        "parent-camera",
        "slash-event",
        "backslash",
        "empty",
        "dotfile",
        "nul",
    ],
)
def test_save_snapshot_rejects_ids_that_are_not_one_safe_path_component(
    evidence: EvidenceStore, camera_id: str, event_id: str
) -> None:
    with pytest.raises(EvidencePathError, match="must match"):
        evidence.save_snapshot(camera_id, event_id, make_jpeg())


@pytest.mark.parametrize(
    "relpath",
    [
        "../anjian.db",
        "evidence/../anjian.db",
        "/etc/passwd",
        "evidence/cam/../../x.jpg",
        "anjian.db",
        "evidence\\..\\x",
        "",
    ],
    ids=["parent", "dotdot-inside", "absolute", "deep-dotdot", "outside-evidence", "backslash", "empty"],
)
def test_resolve_rejects_paths_outside_the_evidence_folder(evidence: EvidenceStore, relpath: str) -> None:
    with pytest.raises(EvidencePathError):
        evidence.resolve(relpath)


def test_resolve_rejects_symlink_leading_out_of_the_evidence_folder(
    tmp_path: Path, evidence: EvidenceStore
) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "snapshot.jpg").write_bytes(b"secret")
    (tmp_path / "data" / "evidence").mkdir(parents=True)
    (tmp_path / "data" / "evidence" / "cam-1").symlink_to(outside)

    with pytest.raises(EvidencePathError, match="outside the evidence folder"):
        evidence.read("evidence/cam-1/snapshot.jpg")


def test_save_snapshot_rejects_bytes_that_are_not_jpeg(evidence: EvidenceStore) -> None:
    with pytest.raises(ValueError, match="expected JPEG bytes"):
        evidence.save_snapshot("cam-1", "abc", b"\x89PNG\r\n")


def test_read_missing_file_raises_not_found(evidence: EvidenceStore) -> None:
    with pytest.raises(EvidenceNotFoundError, match="does not exist"):
        evidence.read("evidence/cam-1/abc/snapshot.jpg")
