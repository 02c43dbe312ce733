"""Listing events by state or site, and counting them for /metrics, are served by indexes (SQLite's plans)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from anjian.service.lifecycle import AlertState
from anjian.service.store import EventStore
from tests.factories import make_event


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore(f"sqlite:///{tmp_path / 'anjian.db'}")
    for i in range(20):
        store.upsert_event(make_event(started_at=1_700_000_000.0 - i, snapshot_jpeg=None))
    yield store
    store.close()


def _plan(store: EventStore, call: Callable[[], object]) -> str:
    """SQLite's query plan of the last SELECT ``call`` issues."""
    selects: list[tuple[str, object]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: object, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    statement, parameters = selects[-1]
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()  # type: ignore[arg-type]
    return " | ".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    ("call", "index"),
    [
        (lambda s: s.list_events(states=(AlertState.RAISED,), limit=5), "ix_events_state_started"),
        (
            lambda s: s.list_events(
                states=(AlertState.RAISED,),
                cursor=s.list_events(states=(AlertState.RAISED,), limit=5).next_cursor,
                limit=5,
            ),
            "ix_events_state_started",
        ),
        (lambda s: s.list_events(site_id="site-2", limit=100), "ix_events_site_started"),
    ],
    ids=["state", "state-next-page", "site"],
)
def test_a_page_of_one_state_or_site_is_read_in_order_from_an_index_not_sorted_whole(
    store: EventStore, call: Callable[[EventStore], object], index: str
) -> None:
    """``state=closed`` sorted all 60k closed alerts for every page (0.5 s a page); ``site_id`` scanned them all."""
    plan = _plan(store, lambda: call(store))

    assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan


def test_the_metrics_count_reads_one_index_not_the_table(store: EventStore) -> None:
    """Each /metrics scrape read every event row and sorted them (0.3 s a scrape at 100k events)."""
    plan = _plan(store, store.count_events)

    assert "COVERING INDEX ix_events_behaviour_severity_state" in plan and "TEMP B-TREE" not in plan, plan
    assert sum(store.count_events().values()) == 20
