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

__all__ = ["TEMPORARY_PREFIX", "write_atomic"]

TEMPORARY_PREFIX = ".tmp-"
"""How the temporary sibling's name starts: a folder's reader skips these, a restart may delete them."""


def write_atomic(path: Path, data: bytes | str, *, is_fsync: bool = True) -> None:
    """Write ``data`` to a temporary sibling of ``path``, then rename it over ``path``.

    The temporary file is ``{TEMPORARY_PREFIX}<random>{path.suffix}`` in ``path``'s folder (the
    same file system, so the rename is atomic); it is removed again when the write fails.

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
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(payload)
            if is_fsync:
                tmp.flush()
                os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
