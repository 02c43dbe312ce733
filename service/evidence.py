"""Evidence files: the snapshot JPEG and the clip MP4 of each event, kept on disk next to the database."""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath

from anjian.models.atomic import write_atomic
from anjian.pipeline.event_wire import jpeg_problem, mp4_problem
from anjian.service.errors import EvidenceError, EvidenceNotFoundError, EvidencePathError

__all__ = ["EvidenceStore"]

logger = logging.getLogger(__name__)

_EVIDENCE_DIR = "evidence"
_SNAPSHOT_NAME = "snapshot.jpg"
_CLIP_NAME = "clip.mp4"
# The id pattern of the site config (cameras, zones), which event ids (hex uuids) also match.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


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
