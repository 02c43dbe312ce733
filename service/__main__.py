"""``python -m anjian.service``: the ``anjian`` CLI (``python -m anjian.service --validate-config FILE`` also works)."""

from __future__ import annotations

import sys

from anjian.service.cli import app

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--validate-config":
        sys.argv = [sys.argv[0], "config", "check", sys.argv[2]]
    app(prog_name="anjian")
