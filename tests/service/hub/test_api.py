"""The hub's API: a token sees only the plants of its scope (all, a group, one plant); only supervisors remark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from anjian.pipeline.event import RiskLevel
from anjian.pipeline.sensors.health import SensorState
from anjian.service.api.dashboard import behaviours_script
from anjian.service.bus.errors import PlantBusyError
from anjian.service.config import StorageConfig
from anjian.service.hub.api import create_hub_app
from anjian.service.hub.config import HubConfig, HubSiteConfig, PlantConfig
from anjian.service.hub.store import HubStore
from tests.factories import make_event
from tests.service.conftest import FakeClock
from tests.service.hub.conftest import PlantRecorder, sensor_report

PLANTS = [
    PlantConfig(id="dust-1", name="Dust 1", group="dust"),
    PlantConfig(id="dust-2", name="Dust 2", group="dust"),
    PlantConfig(id="cold-1", name="Cold 1", group="ammonia"),
]


@pytest.fixture
def hub(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[TestClient, HubStore, dict[str, str]]]:
    """The hub's API over a store holding one incident per plant; returns the client, the store and event ids."""
    config = HubConfig(storage=StorageConfig(dir=tmp_path / "hub"), plants=PLANTS)
    store = HubStore.from_config(config.storage, clock=clock)
    events: dict[str, str] = {}
    for plant in PLANTS:
        recorder = PlantRecorder(plant.id, tmp_path / f"{plant.id}.db", clock)
        event = make_event()
        store.apply([recorder.raise_event(event)])
        events[plant.id] = event.id
        recorder.store.close()
    remarks: list[int] = []
    app = create_hub_app(config, store, on_remark=lambda: remarks.append(1), clock=clock)
    with TestClient(app) as client:
        yield client, store, events
    store.close()


def _bearer(store: HubStore, scope: str, role: str = "viewer") -> dict[str, str]:
    _info, secret = store.tokens.create(f"{role} of {scope}", role, scope)
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize(
    ("scope", "seen"),
    [
        ("all", ["dust-1", "dust-2", "cold-1"]),
        ("group:dust", ["dust-1", "dust-2"]),
        ("plant:cold-1", ["cold-1"]),
    ],
    ids=["all", "group", "plant"],
)
def test_a_token_sees_exactly_the_plants_of_its_scope(
    hub: tuple[TestClient, HubStore, dict[str, str]], scope: str, seen: list[str]
) -> None:
    client, store, events = hub
    headers = _bearer(store, scope)

    overview = client.get("/api/overview", headers=headers).json()
    listed = client.get("/api/events", headers=headers).json()

    assert [p["plant_id"] for p in overview["plants"]] == seen
    assert sorted(e["plant_id"] for e in listed) == sorted(seen)
    for plant_id, event_id in events.items():
        detail = client.get(f"/api/plants/{plant_id}/events/{event_id}", headers=headers)
        snapshot = client.get(f"/api/plants/{plant_id}/events/{event_id}/snapshot", headers=headers)
        expected = 200 if plant_id in seen else 404
        assert (detail.status_code, snapshot.status_code) == (expected, expected)


def test_a_plant_token_cannot_list_another_plants_events_cameras_or_sensors(
    hub: tuple[TestClient, HubStore, dict[str, str]],
) -> None:
    client, store, _events = hub
    headers = _bearer(store, "plant:dust-1")

    for path in (
        "/api/events?plant_id=cold-1",
        "/api/cameras?plant_id=cold-1",
        "/api/sensors?plant_id=cold-1",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 404
        assert response.json()["detail"] == "no plant 'cold-1'"


def test_sensors_and_their_states_show_to_the_tokens_that_see_their_plant(
    hub: tuple[TestClient, HubStore, dict[str, str]], clock: FakeClock
) -> None:
    client, store, _events = hub
    store.apply([sensor_report("cold-1", clock.now, nh3_1=SensorState.FAULT, nh3_2=SensorState.OK)])
    store.apply([sensor_report("dust-1", clock.now, dust_1=SensorState.WAITING)])

    cold = client.get("/api/sensors", headers=_bearer(store, "plant:cold-1")).json()
    everyone = client.get("/api/sensors", headers=_bearer(store, "all")).json()
    overview = client.get("/api/overview", headers=_bearer(store, "group:ammonia")).json()

    assert [(s["plant_id"], s["sensor_id"], s["state"]) for s in cold] == [
        ("cold-1", "nh3-1", "fault"),
        ("cold-1", "nh3-2", "ok"),
    ]
    assert cold[0]["open_kinds"] == ["stale"] and cold[0]["is_alarm"] is False
    assert cold[1]["last_value"] == 12.5 and cold[1]["last_reading_at"].endswith("Z")
    assert [s["sensor_id"] for s in everyone] == ["nh3-1", "nh3-2", "dust-1"]
    assert overview["plants"][0]["sensors_by_state"] == {"fault": 1, "ok": 1}


def test_the_incident_detail_has_the_plants_record_the_audit_trail_and_the_snapshot(
    hub: tuple[TestClient, HubStore, dict[str, str]],
) -> None:
    client, store, events = hub
    headers = _bearer(store, "all")

    detail = client.get(f"/api/plants/dust-2/events/{events['dust-2']}", headers=headers).json()
    snapshot = client.get(detail["snapshot_url"], headers=headers)

    assert detail["event"]["id"] == events["dust-2"]
    assert [line["action"] for line in detail["audit"]] == ["raise"]
    assert snapshot.headers["content-type"] == "image/jpeg"
    assert snapshot.content[:2] == b"\xff\xd8"


def test_only_a_supervisor_in_scope_may_remark(hub: tuple[TestClient, HubStore, dict[str, str]]) -> None:
    client, store, events = hub
    path = f"/api/plants/cold-1/events/{events['cold-1']}/remarks"
    body = {"note": "Acknowledge this now", "press_for_action": True}

    viewer = client.post(path, json=body, headers=_bearer(store, "all", "viewer"))
    other_group = client.post(path, json=body, headers=_bearer(store, "group:dust", "supervisor"))
    supervisor = client.post(path, json=body, headers=_bearer(store, "group:ammonia", "supervisor"))

    assert viewer.status_code == 403
    assert other_group.status_code == 404
    assert supervisor.status_code == 202
    (remark,) = store.unsent_remarks()
    assert (remark.plant_id, remark.is_press_for_action, remark.actor) == (
        "cold-1",
        True,
        "supervisor of group:ammonia",
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"note": ""}, 422),
        ({"note": "x", "extra": 1}, 422),
        ({"press_for_action": True}, 422),
        ({"note": "a\u0000b"}, 422),  # PostgreSQL refuses NUL: a 500 there
    ],
    ids=["empty-note", "unknown-field", "no-note", "nul-in-note"],
)
def test_a_bad_remark_is_refused_with_a_problem(
    hub: tuple[TestClient, HubStore, dict[str, str]], body: dict[str, object], status: int
) -> None:
    client, store, events = hub
    response = client.post(
        f"/api/plants/dust-1/events/{events['dust-1']}/remarks",
        json=body,
        headers=_bearer(store, "all", "supervisor"),
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("suffix", ["", "/snapshot", "/clip"])
def test_an_event_id_that_is_no_id_is_a_problem_before_the_database(
    hub: tuple[TestClient, HubStore, dict[str, str]], suffix: str
) -> None:
    """A NUL in a path id reached PostgreSQL and came back a 500."""
    client, store, _events = hub
    response = client.get(f"/api/plants/dust-1/events/a%00b{suffix}", headers=_bearer(store, "all"))
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"


def test_a_body_over_the_limit_is_refused_before_the_token_is_read(
    hub: tuple[TestClient, HubStore, dict[str, str]],
) -> None:
    """An anonymous 200 MB body used to be read (and held) in full before the answer: memory for the taking."""
    client, _store, events = hub
    response = client.post(
        f"/api/plants/dust-1/events/{events['dust-1']}/remarks",
        content=b" " * (64 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Basic abc"], ids=["none", "unknown-token", "not-bearer"]
)
def test_without_a_valid_hub_token_nothing_is_shown(
    hub: tuple[TestClient, HubStore, dict[str, str]], authorization: str | None
) -> None:
    client, _store, _events = hub
    headers = {} if authorization is None else {"Authorization": authorization}
    assert client.get("/api/overview", headers=headers).status_code == 401


def test_a_revoked_token_is_refused(hub: tuple[TestClient, HubStore, dict[str, str]]) -> None:
    client, store, _events = hub
    info, secret = store.tokens.create("temp", "viewer", "all")
    store.tokens.revoke(info.id)
    assert client.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_a_plant_never_heard_from_or_quiet_too_long_is_shown_silent(
    hub: tuple[TestClient, HubStore, dict[str, str]], tmp_path: Path, clock: FakeClock
) -> None:
    client, store, _events = hub
    headers = _bearer(store, "all")

    def silent() -> dict[str, bool]:
        plants = client.get("/api/overview", headers=headers).json()["plants"]
        return {p["plant_id"]: p["is_silent"] for p in plants}

    assert silent() == {"dust-1": False, "dust-2": False, "cold-1": False}  # all heard just now
    clock.now += 100
    recorder = PlantRecorder("dust-1", tmp_path / "again.db", clock)
    store.apply([recorder.raise_event(make_event())])
    recorder.store.close()
    clock.now += 60  # dust-1 heard 60 s ago, the others 160 s ago (silent after 120 s)
    assert silent() == {"dust-1": False, "dust-2": True, "cold-1": True}


@pytest.mark.parametrize(
    ("connected", "status"), [(True, 200), (False, 503)], ids=["connected", "disconnected"]
)
def test_readyz_says_whether_the_database_and_nats_are_up(
    tmp_path: Path, connected: bool, status: int
) -> None:
    config = HubConfig(storage=StorageConfig(dir=tmp_path / "hub"), plants=PLANTS)
    store = HubStore.from_config(config.storage)
    try:
        with TestClient(create_hub_app(config, store, is_bus_connected=lambda: connected)) as client:
            response = client.get("/readyz")
        assert response.status_code == status
        assert response.json() == {"database": "ok", "nats": "connected" if connected else "disconnected"}
    finally:
        store.close()


class BusyPlantClips:
    """Stands for HubClips while the plant sends as many clips as the hub asks of it at once."""

    async def serve(self, plant_id: str, event_id: str) -> Path:
        raise PlantBusyError(f"plant {plant_id!r} is sending 2 clips to the hub already; try again shortly")


def test_a_clip_of_a_plant_busy_sending_others_is_a_503_with_retry_after(
    tmp_path: Path, clock: FakeClock
) -> None:
    config = HubConfig(storage=StorageConfig(dir=tmp_path / "hub"), plants=PLANTS[:1])
    store = HubStore.from_config(config.storage, clock=clock)
    recorder = PlantRecorder("dust-1", tmp_path / "dust-1.db", clock)
    event = make_event()
    store.apply([recorder.raise_event(event)])
    recorder.store.close()
    app = create_hub_app(config, store, clips=BusyPlantClips(), clock=clock)  # type: ignore[arg-type]
    with TestClient(app) as client:
        response = client.get(f"/api/plants/dust-1/events/{event.id}/clip", headers=_bearer(store, "all"))
    store.close()

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "10"
    assert "is sending 2 clips" in response.json()["detail"]


def test_a_plants_open_incidents_come_most_urgent_first_with_how_many_there_are(
    hub: tuple[TestClient, HubStore, dict[str, str]], tmp_path: Path, clock: FakeClock
) -> None:
    client, store, events = hub
    recorder = PlantRecorder("dust-1", tmp_path / "dust-1-more.db", clock)
    newer = [
        make_event(severity=RiskLevel.YELLOW, started_at=clock.now - age, last_seen_at=clock.now)
        for age in (30, 20, 10)
    ]
    store.apply([recorder.raise_event(e) for e in newer])
    recorder.store.close()
    headers = _bearer(store, "all")

    urgent = client.get("/api/events?plant_id=dust-1&open=true&limit=2", headers=headers)
    newest = client.get("/api/events?plant_id=dust-1&limit=2", headers=headers)
    whole = client.get("/api/events?plant_id=dust-2&open=true", headers=headers)

    # the fixture's red incident is the oldest: first among the open ones, last among the newest
    assert [e["event_id"] for e in urgent.json()] == [events["dust-1"], newer[0].id]
    assert urgent.headers["X-Total-Count"] == "4"
    assert [e["event_id"] for e in newest.json()] == [newer[2].id, newer[1].id]
    assert newest.headers["X-Total-Count"] == "4"
    assert [e["event_id"] for e in whole.json()] == [events["dust-2"]]
    assert whole.headers["X-Total-Count"] == "1"


def test_the_overview_names_the_zone_the_view_shows_times_in(tmp_path: Path, clock: FakeClock) -> None:
    store = HubStore.from_config(StorageConfig(dir=tmp_path / "hub"), clock=clock)
    headers = _bearer(store, "all")
    zones = []
    for hub_site in (HubSiteConfig(), HubSiteConfig(timezone="Asia/Shanghai")):
        config = HubConfig(hub=hub_site, storage=StorageConfig(dir=tmp_path / "hub"), plants=PLANTS)
        with TestClient(create_hub_app(config, store, clock=clock)) as client:
            zones.append(client.get("/api/overview", headers=headers).json()["timezone"])
    store.close()

    assert zones == [None, "Asia/Shanghai"]  # none configured: each browser's own, which the view names


def test_the_page_reads_the_behaviours_names_the_service_makes_from_its_table(
    hub: tuple[TestClient, HubStore, dict[str, str]],
) -> None:
    client, _store, _events = hub

    script = client.get("/static/behaviours.js")
    unchanged = client.get("/static/behaviours.js", headers={"If-None-Match": script.headers["etag"]})

    assert script.status_code == 200, "served without a token, like the page's other files"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.text == behaviours_script()
    assert unchanged.status_code == 304
