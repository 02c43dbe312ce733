"""The hub's store writes every plant message idempotently and in any order, and summarises each plant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from anjian.cameras.health import CameraState
from anjian.pipeline.event import Event, RiskLevel
from anjian.pipeline.sensors.health import SensorState
from anjian.service.bus.messages import CameraReport, HealthReport, RemarkReceipt, parse_plant_message
from anjian.service.config import SlaConfig
from anjian.service.hub.runtime import prune_closed_incidents
from anjian.service.hub.store import HubStore
from tests.factories import make_event
from tests.service.conftest import FakeClock
from tests.service.hub.conftest import PlantRecorder, sensor_report


def test_a_message_delivered_twice_is_written_once(hub_store: HubStore, recorder: PlantRecorder) -> None:
    raised = recorder.raise_event(make_event())
    first = hub_store.apply([raised])
    again = hub_store.apply([raised, raised])

    assert (first.events_written, first.audit_written, first.duplicates) == (1, 1, 0)
    assert (again.events_written, again.audit_written, again.duplicates) == (0, 0, 2)
    assert hub_store.count_events("lab-3") == 1
    assert hub_store.count_audit("lab-3") == 1


def test_announcements_out_of_order_end_in_the_latest_state_with_the_whole_trail(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock
) -> None:
    event = make_event()
    raised = recorder.raise_event(event)
    clock.now += 30
    acknowledged = recorder.act(event.id, "acknowledge")
    clock.now += 90
    resolved = recorder.act(event.id, "resolve", note="put out")

    hub_store.apply([resolved])
    hub_store.apply([acknowledged, raised])

    stored = hub_store.get_event("lab-3", event.id)
    assert stored is not None
    assert stored.state == "resolved"
    assert stored.has_snapshot  # the raise carried it, though an older version
    assert stored.acknowledged_at is not None and stored.resolved_at is not None
    assert stored.resolved_at - stored.created_at == 120
    trail = hub_store.audit_trail("lab-3", event.id)
    assert [line.action for line in trail] == ["raise", "acknowledge", "resolve"]


def test_summary_counts_open_incidents_by_colour_overdue_ones_and_response_times(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock
) -> None:
    sla = SlaConfig(red_s=300, orange_s=600)
    red, orange, settled = (
        make_event(severity=RiskLevel.RED),
        make_event(severity=RiskLevel.ORANGE),
        make_event(severity=RiskLevel.RED),
    )
    messages = [recorder.raise_event(e) for e in (red, orange, settled)]
    clock.now += 60
    messages.append(recorder.act(settled.id, "acknowledge"))
    clock.now += 60
    messages.append(recorder.act(settled.id, "resolve", note="cleared"))
    hub_store.apply(messages)

    (summary,) = hub_store.summaries([("lab-3", "Lab 3", "dust")], sla, now=clock.now + 400)

    assert summary.open_by_colour == {"red": 1, "orange": 1}
    assert summary.overdue == 1  # the red one is past 300 s unacknowledged; the orange is not past 600 s
    assert summary.acknowledge_median_s == 60
    assert summary.resolve_median_s == 120
    assert summary.last_message_at is not None


def test_overdue_is_judged_in_the_hubs_time_for_a_plant_whose_clock_runs_behind(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock
) -> None:
    # The plant's clock is 10 min behind the hub's (no NTP on the factory network): its red incident,
    # raised a moment ago, would look 10 min old, past its 5 min deadline, on the plant's timestamps.
    sla = SlaConfig(red_s=300)
    hub_now = clock.now
    clock.now = hub_now - 600.0  # the plant's time
    raised = recorder.raise_event(make_event(severity=RiskLevel.RED))
    report = sensor_report("lab-3", clock.now + 1.0, nh3_1=SensorState.OK)
    clock.now = hub_now + 1.0  # the hub's time as the messages arrive
    hub_store.apply([raised, report])

    (fresh,) = hub_store.summaries([("lab-3", "Lab 3", "")], sla, now=hub_now + 200)
    (late,) = hub_store.summaries([("lab-3", "Lab 3", "")], sla, now=hub_now + 400)

    assert fresh.clock_offset_s == pytest.approx(600.0)
    assert (fresh.overdue, late.overdue) == (0, 1)


def test_a_plants_clock_is_measured_on_its_latest_report_at_once_when_set_back_and_not_by_a_redelivery(
    hub_store: HubStore, clock: FakeClock
) -> None:
    def offset_after(sent_at: float, *, stored_at: float | None = None) -> float | None:
        times = None if stored_at is None else [stored_at]
        hub_store.apply([sensor_report("lab-3", sent_at, nh3_1=SensorState.OK)], stored_at=times)
        (summary,) = hub_store.summaries([("lab-3", "Lab 3", "")], SlaConfig())
        return summary.clock_offset_s

    start = clock.now
    assert offset_after(start - 120.0) == pytest.approx(120.0)  # two minutes behind
    clock.now += 30.0
    # an older report that reached the hub's stream before the last one (redelivered): not measured
    assert offset_after(start - 300.0, stored_at=start - 1.0) == pytest.approx(120.0)
    clock.now += 30.0
    assert offset_after(clock.now - 60.0) == pytest.approx(60.0)  # the latest: measured
    clock.now += 30.0
    assert offset_after(clock.now - 86_400.0) == pytest.approx(86_400.0)  # set back a day: measured at once


def test_a_plant_whose_clock_was_set_back_keeps_its_health_current_and_its_overdue_incidents_counted(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock
) -> None:
    # A factory PC without NTP reboots a day behind: its reports were ignored as "older" than the stored
    # ones (cameras online, sensors ok for a day), and its red incident raised before was not overdue.
    def report(plant_time: float, camera: CameraState, sensor: SensorState) -> HealthReport:
        cameras = [CameraReport(camera_id="cam-1", state=camera, since=plant_time)]
        return sensor_report("lab-3", plant_time, nh3_1=sensor).model_copy(update={"cameras": cameras})

    red = make_event(severity=RiskLevel.RED)
    hub_store.apply([recorder.raise_event(red), report(clock.now, CameraState.ONLINE, SensorState.OK)])
    plant_time = clock.now - 86_400.0
    for _ in range(20):  # ten minutes of reports every 30 s: the camera lost, the sensor broker down
        clock.now += 30.0
        plant_time += 30.0
        hub_store.apply([report(plant_time, CameraState.OFFLINE, SensorState.OFFLINE)])

    assert [(c.camera_id, c.state) for c in hub_store.cameras(["lab-3"])] == [("cam-1", "offline")]
    assert [(s.sensor_id, s.state) for s in hub_store.sensors(["lab-3"])] == [("nh3-1", "offline")]
    (summary,) = hub_store.summaries([("lab-3", "Lab 3", "")], SlaConfig(red_s=300))
    assert summary.clock_offset_s == pytest.approx(86_400.0)
    assert summary.overdue == 1  # raised ten minutes ago and not acknowledged: past its 300 s


def test_a_report_that_reached_the_hubs_stream_before_the_applied_one_is_ignored_though_applied_later(
    hub_store: HubStore, clock: FakeClock
) -> None:
    # A report redelivered after a newer one was stored (a batch held back, a hub restarted before acking)
    # keeps the stream time it had: it never overwrites the newer health, whatever the plant's clock says.
    def report(sent_at: float, state: CameraState) -> HealthReport:
        return HealthReport(
            plant_id="lab-3",
            sent_at=sent_at,
            cameras=[CameraReport(camera_id="cam-1", state=state, since=0.0)],
        )

    first_at = clock.now
    clock.now += 30.0
    hub_store.apply([report(clock.now - 86_400.0, CameraState.OFFLINE)], stored_at=[clock.now])
    clock.now += 30.0
    hub_store.apply([report(first_at, CameraState.ONLINE)], stored_at=[first_at])

    assert [c.state for c in hub_store.cameras(["lab-3"])] == ["offline"]


def test_an_incident_of_a_backlog_drained_after_an_outage_is_overdue_from_its_raise(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock
) -> None:
    # Raised while the link was down for an hour: its message measures the hour of transit as well as the
    # plant's clock; the plant's offset, measured afresh by the report after it, puts the raise right.
    sla = SlaConfig(red_s=300)
    hub_store.apply([sensor_report("lab-3", clock.now, nh3_1=SensorState.OK)])
    raised = recorder.raise_event(make_event(severity=RiskLevel.RED))
    clock.now += 3_600.0
    hub_store.apply([raised, sensor_report("lab-3", clock.now, nh3_1=SensorState.OK)])

    (summary,) = hub_store.summaries([("lab-3", "Lab 3", "")], sla)
    assert summary.overdue == 1


def test_a_later_camera_report_wins_and_an_older_one_is_ignored(hub_store: HubStore) -> None:
    def report(sent_at: float, state: CameraState) -> HealthReport:
        camera = CameraReport(camera_id="cam-1", state=state, since=sent_at - 5, fps=5.0)
        return HealthReport(plant_id="lab-3", sent_at=sent_at, cameras=[camera])

    hub_store.apply([report(200.0, CameraState.OFFLINE)])
    hub_store.apply([report(100.0, CameraState.ONLINE)])

    (camera,) = hub_store.cameras(["lab-3"])
    assert camera.state == "offline"
    (summary,) = hub_store.summaries([("lab-3", "Lab 3", "")], SlaConfig())
    assert summary.cameras_by_state == {"offline": 1}


def test_a_report_from_a_plant_clock_running_ahead_holds_the_health_only_briefly(
    hub_store: HubStore, clock: FakeClock
) -> None:
    # One report while the plant's clock was a year ahead; once set right, its true reports take over
    # within the believed skew (a minute of hub time), for cameras and sensors alike.
    def report(sent_at: float, camera: CameraState, sensor: SensorState) -> HealthReport:
        cameras = [CameraReport(camera_id="cam-1", state=camera, since=0.0)]
        return sensor_report("lab-3", sent_at, nh3_1=sensor).model_copy(update={"cameras": cameras})

    year_s = 365 * 86_400.0
    hub_store.apply([report(clock.now + year_s, CameraState.ONLINE, SensorState.OK)])
    for _ in range(4):  # the clock set right: every 30 s the camera is offline, the sensor in fault
        clock.now += 30.0
        hub_store.apply([report(clock.now, CameraState.OFFLINE, SensorState.FAULT)])

    (camera,) = hub_store.cameras(["lab-3"])
    (sensor,) = hub_store.sensors(["lab-3"])
    assert (camera.state, camera.reported_at) == ("offline", clock.now)
    assert (sensor.state, sensor.reported_at) == ("fault", clock.now)


def test_a_later_sensor_report_replaces_the_plants_sensors_and_an_older_one_is_ignored(
    hub_store: HubStore,
) -> None:
    ok, fault, offline = SensorState.OK, SensorState.FAULT, SensorState.OFFLINE
    hub_store.apply([sensor_report("lab-3", 100.0, nh3_1=ok, nh3_2=ok, dust_1=ok)])
    hub_store.apply([sensor_report("lab-3", 200.0, nh3_1=fault, nh3_2=offline)])  # dust-1 left the site
    hub_store.apply([sensor_report("lab-3", 150.0, nh3_1=ok, nh3_2=ok, dust_1=ok)])  # late: ignored
    hub_store.apply([sensor_report("cold-1", 120.0, nh3_1=ok)])  # another plant's own sensors

    sensors = hub_store.sensors(["lab-3"])
    assert [(s.sensor_id, s.state, s.open_kinds) for s in sensors] == [
        ("nh3-1", "fault", ("stale",)),
        ("nh3-2", "offline", ()),
    ]
    assert (sensors[1].is_source_connected, sensors[1].last_value, sensors[1].reported_at) == (
        False,
        12.5,
        200.0,
    )
    lab, cold = hub_store.summaries([("lab-3", "Lab 3", ""), ("cold-1", "Cold", "")], SlaConfig())
    assert lab.sensors_by_state == {"fault": 1, "offline": 1}
    assert cold.sensors_by_state == {"ok": 1}


def test_a_remark_waits_as_unsent_until_the_bus_takes_it(
    hub_store: HubStore, recorder: PlantRecorder
) -> None:
    event = make_event()
    hub_store.apply([recorder.raise_event(event)])

    remark = hub_store.add_remark(
        "lab-3", event.id, actor="bureau", note=" Act now ", is_press_for_action=True
    )

    assert hub_store.unsent_remarks() == [remark]
    assert remark.note == "Act now"
    hub_store.mark_sent(remark)
    assert hub_store.unsent_remarks() == []
    (_, line) = hub_store.audit_trail("lab-3", event.id)
    assert (line.action, line.is_from_hub, line.sent_at is not None) == ("press_for_action", True, True)


def test_a_remark_is_delivered_once_its_plant_confirms_it_and_sent_again_until_then(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock
) -> None:
    # The hub showed a remark "sent" once its own stream took it, though a plant offline for longer than
    # the stream keeps it never got it.
    event = make_event()
    hub_store.apply([recorder.raise_event(event)])
    remark = hub_store.add_remark(
        "lab-3", event.id, actor="bureau", note="Act now", is_press_for_action=False
    )
    hub_store.mark_sent(remark)
    day_s = 86_400.0

    clock.now += 14 * day_s
    assert hub_store.unsent_remarks(resend_after_s=15 * day_s) == []
    clock.now += 2 * day_s
    assert hub_store.unsent_remarks(resend_after_s=15 * day_s) == [remark]  # unconfirmed: due again
    hub_store.mark_sent(remark)
    assert hub_store.unsent_remarks(resend_after_s=15 * day_s) == []

    receipt = RemarkReceipt(
        plant_id="lab-3", event_id=event.id, remark_id=remark.id, outcome="recorded", sent_at=clock.now
    )
    result = hub_store.apply([receipt, receipt])
    (_, line) = hub_store.audit_trail("lab-3", event.id)
    assert (result.receipts, line.delivered_at, line.delivery) == (1, clock.now, "recorded")
    clock.now += 30 * day_s
    assert hub_store.unsent_remarks(resend_after_s=15 * day_s) == []  # confirmed: never again


def test_a_remark_on_an_unknown_incident_or_without_a_note_is_refused(
    hub_store: HubStore, recorder: PlantRecorder
) -> None:
    event = make_event()
    hub_store.apply([recorder.raise_event(event)])
    with pytest.raises(KeyError, match="no event"):
        hub_store.add_remark("lab-3", "nope", actor="bureau", note="x", is_press_for_action=False)
    with pytest.raises(ValueError, match="1-4000 characters"):
        hub_store.add_remark("lab-3", event.id, actor="bureau", note="   ", is_press_for_action=False)


def test_open_incidents_are_listed_most_urgent_first_and_counted_past_the_limit(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock
) -> None:
    def raised(severity: RiskLevel, age_s: float) -> Event:
        started = clock.now - age_s
        return make_event(severity=severity, started_at=started, last_seen_at=started + 1)

    acknowledged_red = raised(RiskLevel.RED, 900)
    acknowledged_orange = raised(RiskLevel.ORANGE, 950)
    old_yellow = raised(RiskLevel.YELLOW, 800)
    blue = raised(RiskLevel.BLUE, 700)
    old_red = raised(RiskLevel.RED, 600)
    new_red = raised(RiskLevel.RED, 10)
    orange = raised(RiskLevel.ORANGE, 5)
    settled = raised(RiskLevel.RED, 1000)
    everything = (acknowledged_red, acknowledged_orange, old_yellow, blue, old_red, new_red, orange, settled)
    messages = [recorder.raise_event(e) for e in everything]
    messages += [recorder.act(e.id, "acknowledge") for e in (acknowledged_red, acknowledged_orange, settled)]
    messages.append(recorder.act(settled.id, "resolve", note="cleared"))
    hub_store.apply(messages)

    urgent = hub_store.list_events(["lab-3"], is_open=True)
    cut = hub_store.list_events(["lab-3"], is_open=True, limit=2)
    newest = hub_store.list_events(["lab-3"])

    # raised before taken on, then red to blue, then the longest waiting: a cut list keeps the most overdue
    assert [e.event_id for e in urgent] == [
        e.id for e in (old_red, new_red, orange, old_yellow, blue, acknowledged_red, acknowledged_orange)
    ]
    assert [e.event_id for e in cut] == [old_red.id, new_red.id]
    assert hub_store.count_listed(["lab-3"], is_open=True) == 7
    assert hub_store.count_listed(["lab-3"], is_open=False) == 1
    assert hub_store.count_listed(["lab-3", "cold-1"]) == 8
    # the other listings stay newest first
    assert [e.event_id for e in newest] == [
        e.id for e in sorted(everything, key=lambda e: e.started_at, reverse=True)
    ]


def test_a_camera_the_plant_no_longer_reports_is_removed_and_an_older_report_does_not_bring_it_back(
    hub_store: HubStore,
) -> None:
    def report(sent_at: float, *camera_ids: str) -> HealthReport:
        cameras = [CameraReport(camera_id=c, state=CameraState.ONLINE, since=sent_at - 5) for c in camera_ids]
        return HealthReport(plant_id="lab-3", sent_at=sent_at, cameras=cameras)

    hub_store.apply([report(100.0, "cam-1", "cam-2")])
    hub_store.apply([report(130.0, "cam-1")])  # cam-2 left the site
    hub_store.apply([report(115.0, "cam-1", "cam-2")])  # late: ignored
    assert [c.camera_id for c in hub_store.cameras(["lab-3"])] == ["cam-1"]
    (summary,) = hub_store.summaries([("lab-3", "Lab 3", "")], SlaConfig())
    assert summary.cameras_by_state == {"online": 1}

    hub_store.apply([report(160.0)])  # every camera removed
    hub_store.apply([report(145.0, "cam-1")])  # late, though nothing is left to compare it with
    assert hub_store.cameras(["lab-3"]) == []


def test_response_times_cover_only_the_incidents_raised_within_the_window(
    database_url: str, recorder: PlantRecorder, clock: FakeClock
) -> None:
    # Over every incident ever stored, the overview read the hub's whole history every 5 s.
    store = HubStore(database_url, clock=clock, response_window_s=86_400.0)
    try:
        old, recent = make_event(), make_event()
        messages = [recorder.raise_event(old)]
        clock.now += 600
        messages.append(recorder.act(old.id, "acknowledge"))
        clock.now += 2 * 86_400
        messages.append(recorder.raise_event(recent))
        clock.now += 60
        messages.append(recorder.act(recent.id, "acknowledge"))
        store.apply(messages)

        (summary,) = store.summaries([("lab-3", "Lab 3", "")], SlaConfig())
    finally:
        store.close()
    assert summary.acknowledge_median_s == 60  # the one two days old (600 s) is outside the day


def test_response_times_cover_each_plants_latest_incidents_at_most(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("anjian.service.hub.summary._MEDIAN_SAMPLE", 2)
    messages = []
    for wait_s in (900, 30, 60):  # raised one after the other, each acknowledged after wait_s
        event = make_event()
        messages.append(recorder.raise_event(event))
        clock.now += wait_s
        messages.append(recorder.act(event.id, "acknowledge"))
    hub_store.apply(messages)

    (summary,) = hub_store.summaries([("lab-3", "Lab 3", "")], SlaConfig())
    assert summary.acknowledge_median_s == 45  # the latest two


def test_settled_incidents_past_their_keeping_are_deleted_with_their_trail_and_open_ones_kept(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock
) -> None:
    settled, still_open, recent = make_event(), make_event(), make_event()
    messages = [recorder.raise_event(settled), recorder.raise_event(still_open)]
    messages += [
        recorder.act(settled.id, "false_alarm", note="reflection"),
        recorder.act(settled.id, "close"),
    ]
    hub_store.apply(messages)
    hub_store.add_remark("lab-3", settled.id, actor="bureau", note="why?", is_press_for_action=False)
    clock.now += 100 * 86_400
    hub_store.apply([recorder.raise_event(recent), recorder.act(recent.id, "false_alarm", note="test")])

    assert hub_store.prune_closed(closed_before=clock.now - 90 * 86_400, batch=1) == 1

    assert hub_store.get_event("lab-3", settled.id) is None
    assert hub_store.audit_trail("lab-3", settled.id) == []  # the remark went with it
    assert hub_store.snapshot("lab-3", settled.id) is None
    assert hub_store.get_event("lab-3", still_open.id) is not None  # open: kept however old
    assert hub_store.get_event("lab-3", recent.id) is not None  # settled lately: kept
    assert (hub_store.count_events("lab-3"), hub_store.count_audit("lab-3")) == (2, 3)


def test_the_hourly_clean_up_deletes_what_was_settled_before_keep_closed_days(
    hub_store: HubStore, recorder: PlantRecorder, clock: FakeClock
) -> None:
    event = make_event()
    hub_store.apply([recorder.raise_event(event), recorder.act(event.id, "false_alarm", note="test")])

    assert prune_closed_incidents(hub_store, 90.0, now=clock.now + 89 * 86_400) == 0
    assert prune_closed_incidents(hub_store, 90.0, now=clock.now + 91 * 86_400) == 1
    assert hub_store.count_events("lab-3") == 0


def test_an_event_with_a_field_this_hub_does_not_know_is_stored_without_it(
    hub_store: HubStore, recorder: PlantRecorder
) -> None:
    # A plant upgraded before its hub: its events were refused ("Extra inputs are not permitted").
    event = make_event()
    data = json.loads(recorder.raise_event(event).model_dump_json())
    data["payload"]["event"]["shift"] = "night"
    message, unknown = parse_plant_message(json.dumps(data).encode())

    hub_store.apply([message])

    stored = hub_store.get_event("lab-3", event.id)
    assert stored is not None and "shift" not in stored.event
    assert unknown == ("payload.event.shift",)


def _restored(recorder: PlantRecorder, backup: Path) -> PlantRecorder:
    """The plant's database restored from ``backup`` (its disk died), with a recorder on it."""
    recorder.store.close()
    path = backup.parent / "plant.db"
    shutil.copy(backup, path)
    return PlantRecorder(recorder.plant_id, path, recorder.clock)


def test_changes_of_a_plant_restored_from_a_backup_replace_the_ones_it_went_back_from(
    hub_store: HubStore, tmp_path: Path, clock: FakeClock
) -> None:
    # The restored database hands out the same versions and audit ids again: a false alarm and a close
    # after the restore were taken for the earlier acknowledge and dispatch, and the hub showed the
    # incident dispatched (open, later overdue) for good.
    recorder = PlantRecorder("lab-3", tmp_path / "plant.db", clock)
    event = make_event()
    hub_store.apply([recorder.raise_event(event)])
    recorder.store.close()
    shutil.copy(tmp_path / "plant.db", tmp_path / "backup.db")  # the nightly backup
    recorder = PlantRecorder("lab-3", tmp_path / "plant.db", clock)
    clock.now += 60
    acknowledged = recorder.act(event.id, "acknowledge")
    clock.now += 60
    dispatched = recorder.act(event.id, "dispatch", assignee="Wang", note="check it")
    hub_store.apply([acknowledged, dispatched], stored_at=[clock.now, clock.now])
    before_restore = clock.now

    recorder = _restored(recorder, tmp_path / "backup.db")
    try:
        clock.now += 600
        false_alarm = recorder.act(event.id, "false_alarm", note="reflection")
        clock.now += 60
        closed = recorder.act(event.id, "close")
        assert false_alarm.payload.change is not None and acknowledged.payload.change is not None
        assert false_alarm.payload.change.id == acknowledged.payload.change.id  # handed out again
        result = hub_store.apply([false_alarm, closed])
        # the old history's dispatch, redelivered: it reached the stream before the restore
        hub_store.apply([dispatched], stored_at=[before_restore])
    finally:
        recorder.store.close()

    stored = hub_store.get_event("lab-3", event.id)
    assert stored is not None and stored.state == "closed"
    assert (result.events_written, result.audit_written) == (2, 2)
    trail = [(line.action, line.note) for line in hub_store.audit_trail("lab-3", event.id)]
    assert trail[0] == ("raise", event.message)
    assert sorted(trail[1:]) == sorted(
        [("acknowledge", ""), ("dispatch", "check it"), ("false_alarm", "reflection"), ("close", "")]
    )
    (summary,) = hub_store.summaries([("lab-3", "Lab 3", "")], SlaConfig())
    assert summary.open_by_colour == {}


def test_a_restored_plants_change_replaces_an_incident_it_sent_more_versions_of_before(
    hub_store: HubStore, tmp_path: Path, clock: FakeClock
) -> None:
    # Before the crash the plant took the incident further (three changes) than it does after (one): the
    # audit id it hands out again belongs to another incident at the hub, which shows the plant went back.
    recorder = PlantRecorder("lab-3", tmp_path / "plant.db", clock)
    first, second = make_event(), make_event()
    hub_store.apply([recorder.raise_event(first), recorder.raise_event(second)])
    recorder.store.close()
    shutil.copy(tmp_path / "plant.db", tmp_path / "backup.db")
    recorder = PlantRecorder("lab-3", tmp_path / "plant.db", clock)
    old = [
        recorder.act(first.id, "acknowledge"),
        recorder.act(second.id, "acknowledge"),
        recorder.act(second.id, "dispatch", assignee="Wang"),
    ]
    hub_store.apply(old)
    recorder = _restored(recorder, tmp_path / "backup.db")
    try:
        clock.now += 600
        new = recorder.act(second.id, "false_alarm", note="steam")  # gets the id first's acknowledge had
        # and the old acknowledge of the first, sent again: a change the hub holds as it is, not news
        hub_store.apply([new, old[0]])
    finally:
        recorder.store.close()

    second_now = hub_store.get_event("lab-3", second.id)
    assert second_now is not None and second_now.state == "false_alarm"
    assert second_now.version < old[-1].payload.event.version
    first_now = hub_store.get_event("lab-3", first.id)
    assert first_now is not None and (first_now.state, first_now.version) == (
        "acknowledged",
        old[0].payload.event.version,
    )
