"""The reading history: raw for a day, then buckets of mean/min/max, then gone; the trend merges both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from anjian.pipeline.sensors.config import ReadingHistoryConfig
from anjian.pipeline.sensors.reading import Reading
from anjian.service.app import create_app
from anjian.service.config import AnjianConfig
from anjian.service.readings import ReadingStore
from anjian.service.store import EventStore
from anjian.service.tokens import Role
from tests.service.conftest import FakeClock, bearer, make_config

DAY = 86_400.0
NOW = 1_800_000_000.0  # a multiple of 60: bucket edges fall on whole minutes


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore.from_config(make_config(tmp_path / "data").storage)
    yield store
    store.close()


def _history(store: EventStore, clock: FakeClock, **config: float) -> ReadingStore:
    return ReadingStore(store.database, ReadingHistoryConfig.model_validate(config), clock=clock)


def _add(readings: ReadingStore, sensor_id: str, start: float, count: int, step_s: float = 1.0) -> None:
    readings.add(
        [Reading(sensor_id, float(i % 10), start + i * step_s, start + i * step_s) for i in range(count)]
    )
    readings.flush()


def test_readings_older_than_a_day_become_minute_buckets_of_mean_min_and_max(store: EventStore) -> None:
    clock = FakeClock(NOW)
    readings = _history(store, clock)
    _add(readings, "nh3-1", NOW - DAY - 600, 1200)  # 10 min past the day's edge, 10 min inside it
    _add(readings, "dust-1", NOW - DAY - 120, 60)

    folded = readings.compact()

    assert folded == 600 + 60
    old = readings.trend("nh3-1", NOW - DAY - 600, NOW - DAY - 1)
    assert len(old) == 10 and all(p.count == 60 for p in old)
    assert (old[0].at, old[0].value, old[0].min, old[0].max) == (NOW - DAY - 570, 4.5, 0.0, 9.0)
    recent = readings.trend("nh3-1", NOW - DAY, NOW)
    assert len(recent) == 600 and all(p.count == 1 for p in recent), "the last day stays raw"
    assert [p.count for p in readings.trend("dust-1", 0, NOW)] == [60]
    assert readings.compact() == 0, "nothing left to fold"


def test_buckets_past_the_keep_period_are_deleted(store: EventStore) -> None:
    clock = FakeClock(NOW)
    readings = _history(store, clock, keep_for_s=10 * DAY)
    _add(readings, "nh3-1", NOW - 11 * DAY, 120)
    _add(readings, "nh3-1", NOW - 2 * DAY, 120)

    assert readings.compact() == 120  # the 11-day-old rows are deleted, the 2-day-old ones folded

    points = readings.trend("nh3-1", 0, NOW)
    assert [p.count for p in points] == [60, 60]
    assert points[0].at > NOW - 3 * DAY


def test_a_reading_arriving_after_its_minute_was_folded_joins_that_minutes_bucket(store: EventStore) -> None:
    """A late reading became a second bucket of the same minute: a spike on the chart."""
    clock = FakeClock(NOW)
    readings = _history(store, clock)
    _add(readings, "nh3-1", NOW - DAY - 120, 60)  # one minute, values 0..9
    assert readings.compact() == 60
    readings.add([Reading("nh3-1", 100.0, NOW - DAY - 90, NOW)])  # late, into that minute
    readings.flush()

    assert readings.compact() == 1

    [point] = readings.trend("nh3-1", 0, NOW)
    assert (point.count, point.max, point.min) == (61, 100.0, 0.0)
    assert point.value == pytest.approx((sum(i % 10 for i in range(60)) + 100.0) / 61)


def test_the_keep_period_is_applied_by_index_not_by_reading_every_row(store: EventStore) -> None:
    """The retention DELETE scanned the whole table under the write lock the alerts share (0.55 s at 12 M
    rows, ~10 s at a thousand sensors): each bucket size is deleted through its index."""
    clock = FakeClock(NOW)
    readings = _history(store, clock, keep_for_s=10 * DAY)
    _add(readings, "nh3-1", NOW - 11 * DAY, 120)
    statements: list[str] = []
    engine = store.database.engine

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        readings.compact()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements and all("bucket_s" in statement for statement in statements)
    with engine.connect() as connection:
        for statement in {s for s in statements if "bucket_s = ?" in s and "at < ?" in s}:
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", (0, 0.0)).all()
            assert "ix_sensor_readings_bucket_at" in " ".join(str(row) for row in plan), plan
    assert readings.trend("nh3-1", 0, NOW) == []


def test_a_long_window_is_merged_to_at_most_max_points(store: EventStore) -> None:
    readings = _history(store, FakeClock(NOW))
    _add(readings, "nh3-1", NOW - 3600, 3600)

    points = readings.trend("nh3-1", NOW - 3600, NOW, max_points=60)

    assert 55 <= len(points) <= 60
    assert sum(p.count for p in points) == 3600
    assert min(p.min for p in points) == 0.0 and max(p.max for p in points) == 9.0


def test_history_settings_that_contradict_each_other_are_refused() -> None:
    with pytest.raises(ValueError, match=r"keep_for_s \(3600.0\) must be >= raw_for_s \(86400.0\)"):
        ReadingHistoryConfig(keep_for_s=3600)


def _sensor_site(data_dir: Path) -> AnjianConfig:
    data = make_config(data_dir).model_dump(mode="python")
    data["site"]["workshops"][0]["sensors"] = [
        {
            "id": "p-1",
            "quantity": "pressure",
            "unit": "MPa",
            "source": {"kind": "http"},
            "thresholds": {"red": 1.6},
        }
    ]
    return AnjianConfig.model_validate(data)


def test_the_trend_api_lists_sensors_and_refuses_a_bad_window(tmp_path: Path) -> None:
    config = _sensor_site(tmp_path / "data")
    app = create_app(config)
    with TestClient(app) as client:
        viewer = bearer(app.state.store, Role.VIEWER)
        listed = client.get("/sensors", headers=viewer).json()["items"]
        assert listed == [
            {
                "id": "p-1",
                "name": "p-1",
                "workshop_id": "polishing-1",
                "quantity": "pressure",
                "unit": "MPa",
                "source": "http",
                "direction": "high",
                "limits": {"red": 1.6},
                "camera_ids": [],
            }
        ]
        backwards = client.get(
            "/sensors/p-1/readings",
            params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            headers=viewer,
        )
        assert backwards.status_code == 422 and "start must be before end" in backwards.text
        instant = client.get(  # a window of no length: the same answer, never a 500 from the database
            "/sensors/p-1/readings",
            params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            headers=viewer,
        )
        assert instant.status_code == 422 and "start must be before end" in instant.text
        assert client.get("/sensors/p-1/readings", headers={}).status_code == 401
        pushed = client.post(
            "/ingest/readings", json={"readings": [{"sensor_id": "p-1", "value": 1.0}]}, headers=viewer
        )
        assert pushed.status_code == 403, "pushing readings takes a pipeline token"


def test_pushed_readings_that_would_blind_the_sensor_are_refused_by_name(tmp_path: Path) -> None:
    """A day-ahead time is refused by index (it would make every true reading after it look out of
    order); a value past +-1e15 is a 422 (its rate of rise would overflow to infinity, which no database
    stores); a trend window at the calendar's edge is a 422, not a 500."""
    config = _sensor_site(tmp_path / "data")
    app = create_app(config)
    with TestClient(app) as client:
        pipeline = bearer(app.state.store, Role.PIPELINE)
        now = time.time()
        pushed = client.post(
            "/ingest/readings",
            json={
                "readings": [
                    {"sensor_id": "p-1", "value": 1.0, "at": now + 86_400},
                    {"sensor_id": "p-1", "value": 1.0},
                ]
            },
            headers=pipeline,
        )
        assert pushed.status_code == 200, pushed.text
        body = pushed.json()
        assert body["accepted"] == 1 and [r["index"] for r in body["refused"]] == [0]
        assert (
            "after it arrived" in body["refused"][0]["reason"]
            and "clock ahead" in body["refused"][0]["reason"]
        )
        assert app.state.sensors.stats().bad_input == {"future": 1}

        huge = client.post(
            "/ingest/readings", json={"readings": [{"sensor_id": "p-1", "value": -1.7e308}]}, headers=pipeline
        )
        assert huge.status_code == 422 and "value" in huge.text

        viewer = bearer(app.state.store, Role.VIEWER)
        for window in (
            {"end": "9999-12-31T23:59:59-23:59"},
            {"start": "0001-01-01T00:00:00+14:00", "end": "0001-01-02T00:00:00Z"},
        ):
            edge = client.get("/sensors/p-1/readings", params=window, headers=viewer)
            assert edge.status_code == 422 and "out of range" in edge.text, edge.text
