"""What ``/proc`` says about a process: resident memory and CPU seconds (Linux; 0 / ``None`` elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["process_cpu_s", "process_rss_bytes"]


def process_rss_bytes(pid: int | None) -> int:
    """Resident set size of process ``pid``, in bytes; 0 when unknown (or ``pid`` is ``None``).

    Read from ``/proc/<pid>/statm`` (resident pages times the page size).
    """
    if pid is None:
        return 0
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) process ``pid`` has used so far; ``None`` when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")
