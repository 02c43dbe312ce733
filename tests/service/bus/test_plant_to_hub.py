"""A plant's events, lifecycle changes, camera and sensor health reach the hub over real nats-servers; remarks come back."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from anjian.cameras.health import CameraHealth, CameraState
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.sensors.reading import Reading
from anjian.service.bus import subjects
from anjian.service.bus.messages import SupervisorRemark
from anjian.service.bus.remarks import ACTION_PRESS
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import SiteConfig, WorkshopConfig
from anjian.service.hub.config import HubBusConfig
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import HubStore
from tests.factories import make_event
from tests.pipeline.sensors.test_rules import make_sensor
from tests.service.bus.conftest import PLANT, plant_config
from tests.service.conftest import FakeClock
from tests.service.hub.conftest import PlantRecorder
from tests.support.nats import NatsTopology, publish_raw
from tests.support.waiting import wait_for


def test_event_revisions_and_lifecycle_reach_the_hub_with_snapshot_and_audit_trail(
    plant: ServiceParts, hub: tuple[HubStore, HubBus]
) -> None:
    store, _bus = hub
    first, second = make_event(), make_event(camera_id="cam-2", snapshot_jpeg=None)
    for event in (first, second):
        plant.sink.publish(event)
    assert wait_for(lambda: store.count_events(PLANT) == 2, 30)

    plant.store.transition(first.id, "acknowledge", actor="duty officer")
    plant.store.transition(first.id, "resolve", actor="duty officer", note="extinguished")
    assert wait_for(lambda: (e := store.get_event(PLANT, first.id)) is not None and e.state == "resolved", 30)

    hub_event = store.get_event(PLANT, first.id)
    assert hub_event is not None and hub_event.has_snapshot
    assert store.snapshot(PLANT, first.id) == first.snapshot_jpeg
    assert hub_event.acknowledged_at is not None and hub_event.resolved_at is not None
    trail = [(line.actor, line.action) for line in store.audit_trail(PLANT, first.id)]
    assert trail == [("pipeline", "raise"), ("duty officer", "acknowledge"), ("duty officer", "resolve")]
    other = store.get_event(PLANT, second.id)
    assert other is not None and not other.has_snapshot and other.state == "raised"


def test_a_supervisors_press_for_action_lands_in_the_plants_audit_trail_once(
    plant: ServiceParts, hub: tuple[HubStore, HubBus]
) -> None:
    store, bus = hub
    event = make_event()
    plant.sink.publish(event)
    assert wait_for(lambda: store.count_events(PLANT) == 1, 30)

    store.add_remark(PLANT, event.id, actor="bureau", note="Send someone now", is_press_for_action=True)
    bus.remark_added()

    def pressed() -> list[str]:
        return [line.note for line in plant.store.audit_trail(event.id) if line.action == ACTION_PRESS]

    assert wait_for(lambda: pressed() == ["Send someone now"], 30)
    assert wait_for(lambda: store.unsent_remarks() == [], 10)
    hub_trail = store.audit_trail(PLANT, event.id)
    assert [(line.action, line.is_from_hub) for line in hub_trail] == [("raise", False), (ACTION_PRESS, True)]
    assert [line.actor for line in plant.store.audit_trail(event.id)] == ["pipeline", "hub:bureau"]


def test_a_remark_shows_delivered_once_the_plant_confirms_it_and_one_the_plant_cannot_take_says_why(
    plant: ServiceParts, hub: tuple[HubStore, HubBus], tmp_path: Path, clock: FakeClock
) -> None:
    # The hub showed a remark sent once its own stream took it, though a plant offline longer than the
    # stream kept it never got it; now only the plant's receipt marks it delivered.
    store, bus = hub
    event = make_event()
    plant.sink.publish(event)
    assert wait_for(lambda: store.count_events(PLANT) == 1, 30)
    elsewhere = PlantRecorder(PLANT, tmp_path / "other.db", clock)  # an incident this plant does not have
    try:
        unknown = make_event()
        store.apply([elsewhere.raise_event(unknown)])
    finally:
        elsewhere.store.close()

    store.add_remark(PLANT, event.id, actor="bureau", note="Send someone now", is_press_for_action=True)
    store.add_remark(PLANT, unknown.id, actor="bureau", note="And this one?", is_press_for_action=False)
    bus.remark_added()

    def delivery(event_id: str) -> tuple[bool, str | None]:
        (line,) = [line for line in store.audit_trail(PLANT, event_id) if line.is_from_hub]
        return line.delivered_at is not None, line.delivery

    assert wait_for(lambda: delivery(event.id) == (True, "recorded"), 30)
    assert wait_for(lambda: delivery(unknown.id) == (True, "no_such_event"), 30)
    assert [line.note for line in plant.store.audit_trail(event.id)][-1] == "Send someone now"


def test_a_remark_with_a_field_this_plant_does_not_know_is_recorded_without_it(
    plant: ServiceParts,
    hub: tuple[HubStore, HubBus],
    topology: NatsTopology,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A hub upgraded before its plants adds a remark field: the plant dropped such a remark as malformed.
    store, _bus = hub
    event = make_event()
    plant.sink.publish(event)
    assert wait_for(lambda: store.count_events(PLANT) == 1, 30)
    remark = SupervisorRemark(
        id=uuid.uuid4().hex,
        plant_id=PLANT,
        event_id=event.id,
        actor="bureau",
        note="Look again",
        at=time.time(),
    )
    data = json.dumps({**json.loads(remark.model_dump_json()), "urgency": "high"}).encode()

    publish_raw(topology.hub.url, subjects.command_subject(PLANT), data, remark.id)

    assert wait_for(lambda: "Look again" in [line.note for line in plant.store.audit_trail(event.id)], 30)
    assert "remark field(s) this plant does not know (urgency)" in caplog.text


def test_the_hubs_commands_stream_keeps_remarks_remark_retention_days(
    hub: tuple[HubStore, HubBus], topology: NatsTopology
) -> None:
    async def max_age_s() -> float | None:
        client = await nats.connect(topology.hub.url)
        try:
            return (await client.jetstream().stream_info(subjects.HUB_COMMANDS_STREAM)).config.max_age
        finally:
            await client.close()

    assert wait_for(lambda: _stream_exists(topology.hub.url, subjects.HUB_COMMANDS_STREAM), 30)
    assert asyncio.run(max_age_s()) == HubBusConfig().remark_retention_days * 86_400


def _stream_exists(url: str, stream: str) -> bool:
    async def exists() -> bool:
        client = await nats.connect(url)
        try:
            await client.jetstream().stream_info(stream)
        except NotFoundError:
            return False
        finally:
            await client.close()
        return True

    return asyncio.run(exists())


def test_camera_health_reaches_the_hub_and_a_later_report_replaces_it(
    tmp_path: Path, topology: NatsTopology, hub: tuple[HubStore, HubBus]
) -> None:
    store, _bus = hub
    cameras = [CameraHealth(camera_id="cam-1", state=CameraState.ONLINE, since=1_700_000_000.0, fps=5.0)]
    config = plant_config(tmp_path / "plant", topology.plants[PLANT].url, health_interval_s=0.2)
    named = CameraPipelineConfig(id="cam-1", name="东门出口", url="rtsp://127.0.0.1:9/cam-1")
    site = SiteConfig(id=config.site.id, workshops=[WorkshopConfig(id="polishing-1", cameras=[named])])
    config = config.model_copy(update={"site": site})
    parts = build_service_parts(config, camera_health=lambda: cameras)
    parts.start()
    try:
        assert wait_for(lambda: [c.state for c in store.cameras([PLANT])] == ["online"], 30)
        cameras[0] = CameraHealth(
            camera_id="cam-1", state=CameraState.OFFLINE, since=1_700_000_100.0, reconnects=2
        )
        assert wait_for(lambda: [c.state for c in store.cameras([PLANT])] == ["offline"], 30)
    finally:
        parts.close()
    (camera,) = store.cameras([PLANT])
    assert camera.reconnects == 2 and camera.name == "东门出口"  # the hub shows the control room's name


def test_sensor_health_reaches_the_hub_with_the_last_reading(
    tmp_path: Path, topology: NatsTopology, hub: tuple[HubStore, HubBus]
) -> None:
    store, _bus = hub
    sensor = make_sensor(id="nh3-1", faults={"stale_after_s": 3600})
    workshop = WorkshopConfig(id="freezing-1", sensors=[sensor])
    config = plant_config(tmp_path / "plant", topology.plants[PLANT].url, health_interval_s=0.2).model_copy(
        update={"site": SiteConfig(id=PLANT, workshops=[workshop])}
    )
    parts = build_service_parts(config)
    assert parts.sensors is not None
    parts.start()
    try:
        assert wait_for(lambda: [s.state for s in store.sensors([PLANT])] == ["waiting"], 30)
        parts.sensors.offer(Reading("nh3-1", 12.5, at=time.time(), received_at=time.time()))
        assert wait_for(lambda: [s.last_value for s in store.sensors([PLANT])] == [12.5], 30)
    finally:
        parts.close()
    (reported,) = store.sensors([PLANT])
    assert (reported.state, reported.quantity, reported.unit, reported.source) == (
        "ok",
        "ammonia",
        "ppm",
        "http",
    )
    assert reported.workshop_id == "freezing-1" and reported.open_kinds == ()


def test_a_pipeline_nodes_cameras_reach_the_hub_through_the_plant_service_and_go_stale_there(
    tmp_path: Path, topology: NatsTopology, hub: tuple[HubStore, HubBus]
) -> None:
    store, _bus = hub
    clock = FakeClock(time.time())
    config = plant_config(tmp_path / "plant", topology.plants[PLANT].url, health_interval_s=0.2)
    parts = build_service_parts(config, clock=clock)  # `anjian serve`: it reads no camera itself
    parts.camera_health.record(
        "node-b", 2.0, [CameraHealth(camera_id="cam-2", state=CameraState.ONLINE, since=1.0)]
    )
    parts.start()
    try:
        assert wait_for(
            lambda: [(c.camera_id, c.state) for c in store.cameras([PLANT])] == [("cam-2", "online")], 30
        )
        clock.now += 10.0  # node-b fell silent
        assert wait_for(lambda: [c.state for c in store.cameras([PLANT])] == ["stale"], 30)
    finally:
        parts.close()


def test_a_camera_without_a_name_is_reported_without_the_field_an_older_hub_would_refuse(
    tmp_path: Path,
) -> None:
    """A hub older than CameraReport.name refuses unknown fields: it dropped every report of an upgraded plant."""
    cameras = [
        CameraHealth(camera_id="cam-1", state=CameraState.ONLINE, since=1_700_000_000.0),
        CameraHealth(camera_id="cam-2", state=CameraState.ONLINE, since=1_700_000_000.0),
    ]
    config = plant_config(tmp_path / "plant", "nats://127.0.0.1:9")
    named = CameraPipelineConfig(id="cam-2", name="东门出口", url="rtsp://127.0.0.1:9/cam-2")
    unnamed = CameraPipelineConfig(id="cam-1", url="rtsp://127.0.0.1:9/cam-1")
    site = SiteConfig(
        id=config.site.id, workshops=[WorkshopConfig(id="polishing-1", cameras=[unnamed, named])]
    )
    parts = build_service_parts(config.model_copy(update={"site": site}), camera_health=lambda: cameras)
    published: list[bytes] = []
    try:
        assert parts.bus is not None
        parts.bus._publish = lambda subject, data, key: published.append(data)  # type: ignore[method-assign]
        parts.bus.report_health()
    finally:
        parts.close()
    (report,) = [json.loads(data) for data in published]
    assert [("name" in c, c.get("name")) for c in report["cameras"]] == [(False, None), (True, "东门出口")]
