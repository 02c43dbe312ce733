"""Replace a file's content in one rename, so a reader (or a restart after a crash) never sees half of it.

The one atomic write of the packages downstream of ``models`` (the model registry's pointers
and records, the pipeline's spool and incident journal, the service's evidence files). It
lives here because ``models`` is the most upstream package that writes such files and
every writer imports it already; ``datasets`` imports nothing of anjian and keeps its own.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["TEMPORARY_PREFIX", "created_mode", "write_atomic"]

TEMPORARY_PREFIX = ".tmp-"
"""How the temporary sibling's name starts: a folder's reader skips these, a restart may delete them."""


def _umask() -> int:
    """The process's umask, read without changing it (``/proc`` on Linux; elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def created_mode(*, is_dir: bool = False) -> int:
    """The mode ``open``/``mkdir`` would give a new file or folder under the process's umask.

    ``tempfile`` creates owner-only files and folders (0600, 0700); a file put in place from
    one must get the ordinary mode, or a service running as another user than the analyst who
    promoted a model cannot read the registry.
    """
    return (0o777 if is_dir else 0o666) & ~_umask()


def write_atomic(path: Path, data: bytes | str, *, is_fsync: bool = True) -> None:
    """Write ``data`` to a temporary sibling of ``path``, then rename it over ``path``.

    The temporary file is ``{TEMPORARY_PREFIX}<random>{path.suffix}`` in ``path``'s folder (the
    same file system, so the rename is atomic); it is removed again when the write fails. The
    file keeps the mode of the one it replaces, or gets the umask's (``created_mode``).

    Args:
        path: The file to create or replace; its folder must exist.
        data: The whole new content (``str`` is written as UTF-8).
        is_fsync: Flush the content to disk before the rename, so a power cut leaves the
            old or the new file, never an empty one. Off where the file is a cache or a
            record that is rewritten soon anyway.

    Raises:
        OSError: The folder is missing or the disk refused the write; ``path`` is untouched.

    Example:
        >>> write_atomic(Path("data/models/anjian-n/promoted"), "3\\n")
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = created_mode()
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(payload)
            if is_fsync:
                tmp.flush()
                os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
