"""A report's database queries grow with its pages of alerts, not with its alerts (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import event

from anjian.service.config import AnjianConfig
from anjian.service.lifecycle import AlertState
from anjian.service.report import build_figures, figures
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.conftest import FakeClock, make_config

T0 = 1_800_000_000.0
PAGE = 5


def _selects(store: EventStore, config: AnjianConfig, since: float, until: float) -> tuple[list[str], int]:
    """The SELECTs a report over ``[since, until)`` issues, and its number of open alerts at hand-over."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        report = build_figures(store, config, since, until)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    return statements, len(report.open_at_handover)


@pytest.mark.parametrize("alerts", [6, 31], ids=["6-alerts", "31-alerts"])
def test_a_report_reads_audit_trails_a_page_at_a_time_not_one_alert_at_a_time(
    store: EventStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alerts: int
) -> None:
    """A year's report read each settled alert's trail on its own: 102k queries, 50 s."""
    monkeypatch.setattr(figures, "_PAGE", PAGE)
    config = make_config(tmp_path / "data")
    until = T0 + 86_400
    carried = 4  # raised before the window, settled after it: open at hand-over, read from their trails
    for i in range(carried):
        clock.now = T0 - 600 - i
        store.upsert_event(make_event(started_at=clock.now, last_seen_at=clock.now + 1, snapshot_jpeg=None))
    for i in range(alerts):
        clock.now = T0 + 60 * (i + 1)
        stored = make_event(started_at=clock.now, last_seen_at=clock.now + 1, snapshot_jpeg=None)
        store.upsert_event(stored)
        if i % 3 == 0:
            store.transition(stored.id, "false_alarm", actor="op", note="reflection: sun")
        elif i % 3 == 1:
            store.transition(stored.id, "acknowledge", actor="op")
            store.transition(stored.id, "resolve", actor="op")
        # else: left open, and settled after the window below
    clock.now = until + 3_600
    for still_open in store.list_events(states=(AlertState.RAISED,), limit=1000).items:
        store.transition(still_open.id, "false_alarm", actor="night shift", note="test")

    selects, handed_over = _selects(store, config, T0, until)

    assert handed_over == carried + alerts // 3
    pages = math.ceil(alerts / PAGE) + 3  # the window's pages; one page of each carried-over listing
    audit = [s for s in selects if "event_audit" in s]
    assert len(audit) <= pages, f"{len(audit)} audit-trail queries for {alerts} alerts in {pages} pages"
    assert len(selects) <= 2 * pages, f"{len(selects)} SELECTs for {alerts} alerts in {pages} pages"
