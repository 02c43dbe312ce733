"""Shift and daily reports: figures from the event store, an HTML page with SVG charts, and its PDF."""

from anjian.service.report.figures import FALSE_ALARM_REASONS, ReportFigures, build_figures
from anjian.service.report.page import render_report_html
from anjian.service.report.pdf import ReportPdfError, html_to_pdf
from anjian.service.report.write import ReportOutputError, parse_report_time, write_report

__all__ = [
    "FALSE_ALARM_REASONS",
    "ReportFigures",
    "ReportOutputError",
    "ReportPdfError",
    "build_figures",
    "html_to_pdf",
    "parse_report_time",
    "render_report_html",
    "write_report",
]
