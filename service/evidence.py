"""Evidence files: the snapshot JPEG and the clip MP4 of each event, kept on disk next to the database."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from anjian.models.atomic import TEMPORARY_PREFIX, write_atomic
from anjian.pipeline.event_wire import jpeg_problem, mp4_problem
from anjian.service.errors import EvidenceError, EvidenceNotFoundError, EvidencePathError

__all__ = ["EvidenceCensus", "EvidenceStore"]

logger = logging.getLogger(__name__)

_EVIDENCE_DIR = "evidence"
_SNAPSHOT_NAME = "snapshot.jpg"
_CLIP_NAME = "clip.mp4"
# The id pattern of the site config (cameras, zones), which event ids (hex uuids) also match.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class EvidenceCensus:
    """What ``EvidenceStore.census`` found in the evidence folder.

    Attributes:
        total_bytes: Size of the evidence files kept (the temporaries it removed not included).
        files: Number of evidence files kept.
        removed_temporaries: Temporary files a crash left (``.tmp-*``) that it deleted.
        removed_bytes: Their size.
    """

    total_bytes: int
    files: int
    removed_temporaries: int
    removed_bytes: int


def _check_id(kind: str, value: str) -> str:
    """Return ``value`` if it is safe as one path component, else raise ``EvidencePathError``."""
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value) or value in {".", ".."}:
        raise EvidencePathError(
            f"{kind} must match {_SAFE_ID.pattern} to be used in an evidence path, got {value!r}"
        )
    return value


class EvidenceStore:
    """Writes and reads event evidence under ``{root}/evidence/{camera_id}/{event_id}/``.

    Each event folder holds ``snapshot.jpg`` and, once the pipeline records one, ``clip.mp4``.

    Files are written atomically (a temporary file in the same folder, flushed, then
    renamed over the target), so a reader or a crash never sees half a JPEG. Paths
    handed out are relative to ``root`` with forward slashes, so the database stays
    valid when the data folder moves. Every path is checked to stay inside
    ``{root}/evidence``.

    Args:
        root: The data folder (``storage.dir``); created on first write.
        is_fsync: Flush file contents to disk before the rename. Turn off only in tests.

    Example:
        >>> store = EvidenceStore(Path("data"))
        >>> rel = store.save_snapshot("cam-1", "4f2a...", jpeg)   # "evidence/cam-1/4f2a.../snapshot.jpg"
        >>> store.read(rel) == jpeg
        True
    """

    def __init__(self, root: Path | str, *, is_fsync: bool = True) -> None:
        self._root = Path(root).resolve()
        self._evidence_root = self._root / _EVIDENCE_DIR
        self._is_fsync = is_fsync

    @property
    def root(self) -> Path:
        """The absolute data folder that relative evidence paths are resolved against."""
        return self._root

    @property
    def evidence_root(self) -> Path:
        """The absolute evidence folder, ``{root}/evidence``, which every evidence path stays inside."""
        return self._evidence_root

    @staticmethod
    def snapshot_relpath(camera_id: str, event_id: str) -> str:
        """Relative path of an event's snapshot, e.g. ``"evidence/cam-1/<event_id>/snapshot.jpg"``.

        Raises:
            EvidencePathError: An id is empty, contains a separator or is ``..``.
        """
        return "/".join(
            (
                _EVIDENCE_DIR,
                _check_id("camera_id", camera_id),
                _check_id("event_id", event_id),
                _SNAPSHOT_NAME,
            )
        )

    @staticmethod
    def clip_relpath(camera_id: str, event_id: str) -> str:
        """Relative path of an event's clip, e.g. ``"evidence/cam-1/<event_id>/clip.mp4"``.

        Raises:
            EvidencePathError: An id is not a safe path component.
        """
        return "/".join(
            (_EVIDENCE_DIR, _check_id("camera_id", camera_id), _check_id("event_id", event_id), _CLIP_NAME)
        )

    def save_clip(self, camera_id: str, event_id: str, mp4: bytes) -> str:
        """Write an event's clip (an MP4 file's bytes) atomically.

        Returns:
            The path relative to ``root``, to record with ``EventStore.attach_clip``.

        Raises:
            EvidencePathError: An id is not a safe path component.
            ValueError: ``mp4`` is not an ISO media file (no ``ftyp`` box at byte 4).
            EvidenceError: The file cannot be written.
        """
        problem = mp4_problem(mp4)
        if problem is not None:
            raise ValueError(problem)
        relpath = self.clip_relpath(camera_id, event_id)
        path = self.resolve(relpath)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, mp4, is_fsync=self._is_fsync)
        except OSError as exc:
            raise EvidenceError(f"{camera_id}: cannot write clip {relpath}: {exc}") from exc
        return relpath

    def resolve(self, relpath: str) -> Path:
        """Turn a stored relative path into an absolute one, refusing paths outside the evidence folder.

        Args:
            relpath: A path as returned by ``save_snapshot``.

        Returns:
            The absolute path (which may not exist).

        Raises:
            EvidencePathError: The path is absolute, contains ``..`` or resolves
                (through symlinks too) outside ``{root}/evidence``.
        """
        pure = PurePosixPath(relpath)
        if not relpath or pure.is_absolute() or "\\" in relpath or ".." in pure.parts or "\x00" in relpath:
            raise EvidencePathError(f"expected a relative path under {_EVIDENCE_DIR}/, got {relpath!r}")
        path = (self._root / pure).resolve()
        if not path.is_relative_to(self._evidence_root):
            raise EvidencePathError(f"path {relpath!r} resolves outside the evidence folder")
        return path

    def save_snapshot(self, camera_id: str, event_id: str, jpeg: bytes) -> str:
        """Write an event's snapshot atomically, replacing an earlier one of the same event.

        Args:
            camera_id: Camera of the event; one path component.
            event_id: Id of the event; one path component.
            jpeg: The encoded JPEG.

        Returns:
            The path relative to ``root``, to store with the event.

        Raises:
            EvidencePathError: An id is not a safe path component.
            ValueError: ``jpeg`` is empty or is not JPEG data.
            EvidenceError: The file cannot be written (disk full, permissions).
        """
        problem = jpeg_problem(jpeg)
        if problem is not None:
            raise ValueError(problem)
        relpath = self.snapshot_relpath(camera_id, event_id)
        path = self._evidence_root / camera_id / event_id / _SNAPSHOT_NAME  # checked ids: no resolve needed
        try:
            try:
                if path.stat().st_size == len(jpeg) and path.read_bytes() == jpeg:
                    return relpath  # the same snapshot again: skip the write and the fsync
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, jpeg, is_fsync=self._is_fsync)
        except OSError as exc:
            raise EvidenceError(f"{camera_id}: cannot write snapshot {relpath}: {exc}") from exc
        logger.debug("%s: wrote snapshot %s (%d bytes)", camera_id, relpath, len(jpeg))
        return relpath

    def read(self, relpath: str) -> bytes:
        """Read an evidence file back.

        Raises:
            EvidencePathError: The path leaves the evidence folder.
            EvidenceNotFoundError: No file is there.
            EvidenceError: The file exists but cannot be read.
        """
        path = self.resolve(relpath)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise EvidenceNotFoundError(f"evidence file {relpath} does not exist") from exc
        except OSError as exc:
            raise EvidenceError(f"cannot read evidence file {relpath}: {exc}") from exc

    def delete_event(self, camera_id: str, event_id: str, relpaths: Iterable[str | None] = ()) -> int:
        """Delete an event's evidence: the files its row records, its folder's snapshot, clip and crash leftovers.

        What evidence retention calls for a settled alert. The event's folder is removed
        too once empty; a file of another name in it is left alone (with its folder). A
        recorded path that is already gone, or that leaves the evidence folder (it is
        never followed), deletes nothing.

        Args:
            camera_id: Camera of the event.
            event_id: The event.
            relpaths: The paths its row records (``snapshot_path``, ``clip_path``), ``None`` for none.

        Returns:
            Bytes freed.

        Raises:
            OSError: A file exists but cannot be deleted (permissions, I/O error); what was
                deleted before it stays deleted.
        """
        paths: list[Path] = []
        for relpath in relpaths:
            if relpath is None:
                continue
            try:
                paths.append(self.resolve(relpath))
            except EvidencePathError as exc:
                logger.warning("%s: evidence of event %s not deleted: %s", camera_id, event_id, exc)
        folder: Path | None = None
        try:
            folder = self._evidence_root / _check_id("camera_id", camera_id) / _check_id("event_id", event_id)
        except EvidencePathError as exc:
            logger.warning(
                "%s: the evidence folder of event %s is not looked at: %s", camera_id, event_id, exc
            )
        if folder is not None:
            paths += [folder / _SNAPSHOT_NAME, folder / _CLIP_NAME]
            try:
                paths += [p for p in folder.iterdir() if p.name.startswith(TEMPORARY_PREFIX)]
            except (FileNotFoundError, NotADirectoryError):
                pass
        freed = sum(_unlink(path) for path in dict.fromkeys(paths))
        if folder is not None:
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:  # not empty (a file of another name), or a folder that cannot go
                logger.debug("%s: evidence folder of event %s kept: %s", camera_id, event_id, exc)
        return freed

    def census(self, *, stale_before: float) -> EvidenceCensus:
        """Sum the size of the evidence files, deleting the temporary files a crash left on the way.

        A write in progress (``write_atomic``) has a ``.tmp-*`` file in the event's folder
        until it renames it; after a ``kill -9`` or a power cut that file stays. Only
        those last modified before ``stale_before`` are deleted, so a write in progress
        (which modifies its file as it goes) is never touched.

        Args:
            stale_before: Epoch seconds; temporaries modified earlier are deleted.

        Returns:
            The size and count of the files kept and of the temporaries deleted. A file or
            folder that vanishes or cannot be read meanwhile is skipped.
        """
        total = files = removed = removed_bytes = 0
        pending = [self._evidence_root]
        while pending:
            try:
                entries = list(os.scandir(pending.pop()))
            except OSError:
                continue  # gone meanwhile, or unreadable
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    info = entry.stat(follow_symlinks=False)
                    if entry.name.startswith(TEMPORARY_PREFIX) and info.st_mtime < stale_before:
                        os.unlink(entry.path)
                        removed += 1
                        removed_bytes += info.st_size
                        logger.debug("evidence: deleted %s, left by an interrupted write", entry.path)
                        continue
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    logger.warning("evidence: cannot look at %s: %s", entry.path, exc)
                    continue
                total += info.st_size
                files += 1
        return EvidenceCensus(total, files, removed, removed_bytes)


def _unlink(path: Path) -> int:
    """Delete one file; returns its size, 0 when it is not there. Other ``OSError`` propagate."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size
