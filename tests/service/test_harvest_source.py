"""Judged alerts read from the store for a harvest: verdicts from states and audit trails, filters, paging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from anjian.datasets.harvest import Verdict
from anjian.pipeline.event import Behaviour, SensorFacts
from anjian.service.errors import DatabaseError
from anjian.service.harvest_source import harvest_site, judged_alerts
from anjian.service.lifecycle import Action
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.conftest import make_config

_FALSE_ALARM = [Action.FALSE_ALARM]
_CONFIRMED = [Action.ACKNOWLEDGE, Action.RESOLVE]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore.from_config(make_config(tmp_path / "data").storage)
    yield store
    store.close()


def _judged(store: EventStore, steps: list[Action], *, snapshot: bool = True, **event: object) -> str:
    """Store an alert with a snapshot path and take it through ``steps``; its id."""
    stored = make_event(**event)
    store.upsert_event(stored, snapshot_path=f"snapshots/{stored.id}.jpg" if snapshot else None)
    for action in steps:
        store.transition(stored.id, action, actor="op", note="checked")
    return stored.id


def test_a_closed_alert_counts_as_the_verdict_its_audit_trail_shows(
    store: EventStore, tmp_path: Path
) -> None:
    lamp = _judged(store, [*_FALSE_ALARM, Action.CLOSE])
    fire = _judged(store, [*_CONFIRMED, Action.CLOSE])
    open_one = _judged(store, [Action.ACKNOWLEDGE])
    no_snapshot = _judged(store, _CONFIRMED, snapshot=False)

    items = {item.event_id: item for item in judged_alerts(store, tmp_path / "data")}

    assert {i: item.verdict for i, item in items.items()} == {
        lamp: Verdict.FALSE_ALARM,
        fire: Verdict.CONFIRMED,
    }
    assert open_one not in items and no_snapshot not in items
    assert items[fire].image == tmp_path / "data" / "snapshots" / f"{fire}.jpg"
    assert [(b.class_name, b.xyxy_norm) for b in items[fire].boxes] == [("fire", (0.1, 0.2, 0.3, 0.4))]


def test_a_false_alarm_keeps_the_reason_the_control_room_gave(store: EventStore, tmp_path: Path) -> None:
    glare = make_event()
    store.upsert_event(glare, snapshot_path=f"snapshots/{glare.id}.jpg")
    store.transition(glare.id, Action.FALSE_ALARM, actor="op", note="reflection: sun on the drum")
    store.transition(glare.id, Action.CLOSE, actor="supervisor", note="ok")
    fire = _judged(store, _CONFIRMED)

    items = {item.event_id: item for item in judged_alerts(store, tmp_path / "data")}

    assert (items[glare.id].verdict, items[glare.id].reason) == (
        Verdict.FALSE_ALARM,
        "reflection: sun on the drum",
    )
    assert items[fire].reason == ""


def test_a_sensor_alert_is_no_training_material_even_with_its_cameras_snapshot(
    store: EventStore, tmp_path: Path
) -> None:
    facts = SensorFacts("nh3-1", "ammonia", "ppm", "high", 60.0, 62.0, 50.0, ("cam-1",))
    gas = _judged(
        store, _FALSE_ALARM, behaviour=Behaviour.SENSOR_THRESHOLD, camera_id="nh3-1", boxes=(), sensor=facts
    )
    lamp = _judged(store, _FALSE_ALARM)

    assert [item.event_id for item in judged_alerts(store, tmp_path / "data")] == [lamp]
    stored = store.get_event(gas)
    assert stored is not None and stored.sensor == facts  # stored with its reading, only not harvested


def test_judged_alerts_keep_to_the_camera_and_the_period(store: EventStore, tmp_path: Path) -> None:
    recent = _judged(store, _FALSE_ALARM, camera_id="cam-1", started_at=2_000.0, last_seen_at=2_001.0)
    _judged(store, _FALSE_ALARM, camera_id="cam-1", started_at=1_000.0, last_seen_at=1_001.0)
    _judged(store, _FALSE_ALARM, camera_id="cam-2", started_at=2_000.0, last_seen_at=2_001.0)

    items = judged_alerts(store, tmp_path / "data", camera_id="cam-1", since=1_500.0)

    assert [item.event_id for item in items] == [recent]


def test_judged_alerts_page_through_the_store_up_to_the_limit(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("anjian.service.harvest_source._PAGE_SIZE", 2)
    ids = [_judged(store, _CONFIRMED, started_at=1_000.0 + i, last_seen_at=1_001.0 + i) for i in range(5)]
    _judged(store, [Action.ACKNOWLEDGE], started_at=1_003.5, last_seen_at=1_004.0)  # open: not judged

    every = judged_alerts(store, tmp_path / "data")
    first_three = judged_alerts(store, tmp_path / "data", limit=3)

    assert [item.event_id for item in every] == ids[::-1], "newest first, across pages"
    assert [item.event_id for item in first_three] == ids[::-1][:3]
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        judged_alerts(store, tmp_path / "data", limit=0)


def test_harvest_refuses_a_storage_dir_without_a_database_and_creates_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path / "dtaa")

    with pytest.raises(DatabaseError, match="no event database at .*anjian.db"):
        harvest_site(config, tmp_path / "harvest")

    assert not (tmp_path / "dtaa").exists() and not (tmp_path / "harvest").exists()
