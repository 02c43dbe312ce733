"""Print a report page to PDF with headless Chromium (Debian's ``chromium``), which renders its CJK text and SVG."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["ReportPdfError", "find_chromium", "html_to_pdf"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_TIMEOUT_S = 120.0


class ReportPdfError(RuntimeError):
    """No browser to print with, or printing failed (the message says which and what to do)."""


def find_chromium() -> str | None:
    """The first Chromium-family browser on ``PATH``, or ``None``."""
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(html: str, out: Path, *, browser: str | None = None) -> Path:
    """Write ``html`` as a PDF at ``out`` (A4, backgrounds on) and return ``out``.

    Raises:
        ReportPdfError: No Chromium is installed (``apt install chromium``, or use
            ``--format html``), it failed, or it wrote no PDF.
    """
    executable = browser or find_chromium()
    if executable is None:
        raise ReportPdfError("printing a PDF needs Chromium: apt install chromium (or write --format html)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="anjian-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        command = [
            executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={out.resolve()}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ReportPdfError(f"{executable} could not print the report: {exc}") from exc
    if done.returncode != 0 or not out.is_file() or out.read_bytes()[:5] != b"%PDF-":
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ReportPdfError(f"{executable} wrote no PDF (exit {done.returncode}): {detail[0][:300]}")
    return out
