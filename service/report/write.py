"""``anjian report``: a window of a site's alerts as an HTML or PDF report file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from anjian.service.config import AnjianConfig
from anjian.service.report.figures import build_figures
from anjian.service.report.page import render_report_html
from anjian.service.report.pdf import html_to_pdf
from anjian.service.store import EventStore

__all__ = ["ReportFormat", "ReportOutputError", "parse_report_time", "write_report"]

ReportFormat = Literal["html", "pdf"]


class ReportOutputError(RuntimeError):
    """The report file cannot be written where asked (the message names the path and why)."""


def parse_report_time(text: str, time_zone: str) -> float:
    """Epoch seconds of an ISO 8601 time; one without an offset is in the site's time zone.

    Raises:
        ValueError: ``text`` is not an ISO 8601 date or date-time (the message shows an example).
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time, e.g. 2026-12-01T08:00 or 2026-12-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(time_zone))
    return moment.timestamp()


def write_report(
    config: AnjianConfig, since: float, until: float, out: Path, fmt: ReportFormat = "html"
) -> Path:
    """Compute the site's report for ``[since, until)`` and write it to ``out`` as HTML or PDF.

    Raises:
        ValueError: The window is empty, reversed or longer than a year.
        DatabaseError: The site's store holds no database (a mistyped ``storage.dir``) or cannot be read.
        ReportPdfError: ``pdf`` was asked for and no Chromium can print it.
        ReportOutputError: ``out`` cannot be written (a folder on its path is a file, no permission ...).
    """
    store = EventStore.open_existing(config.storage, purpose="a report reads the alerts a site has stored")
    try:
        html = render_report_html(build_figures(store, config, since, until), config)
    finally:
        store.close()
    try:
        if fmt == "pdf":
            return html_to_pdf(html, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ReportOutputError(f"cannot write the report to {out}: {_reason(exc)}") from None
    return out


def _reason(exc: OSError) -> str:
    """Why writing failed, naming the path it failed on (``File exists: /etc/passwd``)."""
    reason = exc.strerror or type(exc).__name__
    return f"{reason}: {exc.filename}" if exc.filename else reason
