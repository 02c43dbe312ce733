"""Open incidents outlive a restart: the journal keeps them, a stopping pipeline leaves them open, the next
run's books carry on with them (same event, next revision) and end them only once the condition is gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.incident_journal import IncidentJournal
from anjian.pipeline.incidents import EventContext, IncidentBook, IncidentUpdate, UpdateKind

T0 = 1_700_000_000.0


def book(journal: IncidentJournal, behaviour: Behaviour = Behaviour.OPEN_FLAME) -> IncidentBook:
    context = EventContext(
        site_id="site", workshop_id="ws", camera_id="cam-1", model_version="m@1", journal=journal
    )
    return IncidentBook(
        behaviour=behaviour, severity=RiskLevel.RED, clear_after_s=10, update_interval_s=5, context=context
    )


def test_a_stopped_pipeline_leaves_the_incident_open_and_the_next_run_carries_on(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    first_run = IncidentJournal(path)
    flames = book(first_run)
    opened = flames.observe("fire", now=T0, is_confirmed=True, is_present=True, confidence=0.8)
    updated = flames.observe("fire", now=T0 + 6, is_confirmed=True, is_present=True, confidence=0.9)
    assert opened is not None and updated is not None and updated.event.revision == 2

    first_run.suspend()  # the runner stops
    assert flames.close_all(T0 + 7) == [], "stopping must not end the incident"

    second_run = IncidentJournal(path)
    resumed = book(second_run)
    update = resumed.observe("fire", now=T0 + 100, is_confirmed=False, is_present=True, confidence=0.7)

    assert update is not None and update.kind is UpdateKind.UPDATED
    assert (update.event.id, update.event.revision) == (opened.event.id, 3)
    assert update.event.started_at == T0 and update.event.ended_at is None
    assert update.event.confidence == pytest.approx(0.9), "peak confidence carried over"
    assert second_run.pending() == []


def test_a_resumed_incident_ends_only_after_clear_after_s_counted_from_the_restart(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    first_run = IncidentJournal(path)
    opened = book(first_run).observe("fire", now=T0, is_confirmed=True, is_present=True)
    assert opened is not None
    first_run.suspend()

    resumed = book(IncidentJournal(path))
    assert resumed.observe("fire", now=T0 + 3600, is_confirmed=False, is_present=False) is None
    assert resumed.observe("fire", now=T0 + 3609, is_confirmed=False, is_present=False) is None
    closed = resumed.observe("fire", now=T0 + 3610, is_confirmed=False, is_present=False)

    assert closed is not None and closed.kind is UpdateKind.CLOSED
    assert (closed.event.id, closed.event.ended_at) == (opened.event.id, T0 + 3610)
    assert json.loads(path.read_text())["incidents"] == [], "an ended incident leaves the journal"


def test_a_tracked_incident_is_taken_over_by_the_first_new_track_of_its_zone(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    first_run = IncidentJournal(path)
    smoking = book(first_run, Behaviour.SMOKING)
    opened = smoking.observe("t3", now=T0, is_confirmed=True, is_present=True, zone_id="dust", track_id=3)
    assert opened is not None
    first_run.suspend()

    resumed = book(IncidentJournal(path), Behaviour.SMOKING)
    elsewhere = resumed.observe(
        "t1", now=T0 + 60, is_confirmed=True, is_present=True, zone_id="office", track_id=1
    )
    same_zone = resumed.observe(
        "t2", now=T0 + 60, is_confirmed=True, is_present=True, zone_id="dust", track_id=2
    )

    assert elsewhere is not None and elsewhere.kind is UpdateKind.OPENED, "another zone: another incident"
    assert same_zone is not None and same_zone.kind is UpdateKind.UPDATED
    assert (same_zone.event.id, same_zone.event.track_id) == (opened.event.id, 2)
    assert resumed.open_keys() == ["t1", "t2"]


def _flame_and_smoke(journal: IncidentJournal) -> tuple[IncidentUpdate, IncidentUpdate]:
    """A flame and a smoker raised on cam-1, recorded in ``journal``."""
    flame = book(journal).observe("fire", now=T0, is_confirmed=True, is_present=True)
    smoke = book(journal, Behaviour.SMOKING).observe("t1", now=T0, is_confirmed=True, is_present=True)
    assert flame is not None and smoke is not None
    return flame, smoke


def test_incidents_of_a_camera_or_rule_that_is_gone_are_ended_at_start(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    first_run = IncidentJournal(path)
    flame, smoke = _flame_and_smoke(first_run)
    first_run.suspend()

    second_run = IncidentJournal(path)
    book(second_run)  # the smoking rule was removed from the camera meanwhile
    (ended,) = second_run.close_unclaimed(T0 + 50)

    assert (ended.id, ended.revision, ended.ended_at) == (smoke.event.id, 2, T0 + 50)
    assert [e["event"]["id"] for e in json.loads(path.read_text())["incidents"]] == [flame.event.id]


def test_each_published_revision_reaches_the_file_so_a_crash_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    flames = book(IncidentJournal(path))
    opened = flames.observe("fire", now=T0, is_confirmed=True, is_present=True)
    flames.observe("fire", now=T0 + 6, is_confirmed=True, is_present=True)
    # no suspend(): the process died

    (entry,) = json.loads(path.read_text())["incidents"]
    assert opened is not None
    assert (entry["event"]["id"], entry["event"]["revision"], entry["key"]) == (opened.event.id, 2, "fire")
    assert entry["event"]["snapshot_jpeg_b64"] is None


def test_without_a_suspended_journal_close_all_still_ends_incidents(tmp_path: Path) -> None:
    flames = book(IncidentJournal(tmp_path / "open_incidents.json"))
    flames.observe("fire", now=T0, is_confirmed=True, is_present=True)

    (closed,) = flames.close_all(T0 + 1)  # the camera was removed while running

    assert closed.kind is UpdateKind.CLOSED


def test_an_unreadable_journal_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    path.write_text("{not json")

    journal = IncidentJournal(path)

    assert journal.pending() == []
    assert (tmp_path / "open_incidents.corrupt").read_text() == "{not json"


def test_one_damaged_incident_does_not_cost_the_others_their_place_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole file was set aside for one bad entry: every open alert ended and was raised anew."""
    path = tmp_path / "open_incidents.json"
    first_run = IncidentJournal(path)
    fire = book(first_run).observe("fire", now=T0, is_confirmed=True, is_present=True)
    smoke = book(first_run, Behaviour.SMOKING).observe(
        "cigarette", now=T0, is_confirmed=True, is_present=True
    )
    assert fire is not None and smoke is not None
    first_run.suspend()
    document = json.loads(path.read_text())
    damaged = next(e for e in document["incidents"] if e["behaviour"] == "smoking")
    damaged["event"]["boxes"] = "not a list"
    path.write_text(json.dumps(document))

    second_run = IncidentJournal(path)

    assert [event.id for event in second_run.pending()] == [fire.event.id]
    assert json.loads((tmp_path / "open_incidents.corrupt").read_text()) == document  # kept to look at
    assert "1 of 2 open incident(s) unreadable (entry" in caplog.text


def test_a_camera_handed_to_another_node_carries_its_open_incident_on_there(tmp_path: Path) -> None:
    giving, taking = IncidentJournal(tmp_path / "a.json"), IncidentJournal(tmp_path / "b.json")
    flames = book(giving)
    opened = flames.observe("fire", now=T0, is_confirmed=True, is_present=True, confidence=0.8)
    assert opened is not None

    giving.hand_over("cam-1")
    assert flames.close_all(T0 + 1) == [], "a camera handed over must not end its incident"
    entries = json.loads(json.dumps(giving.export("cam-1")))  # through the bus as JSON
    giving.drop("cam-1")
    taking.adopt("cam-1", entries)
    update = book(taking).observe("fire", now=T0 + 30, is_confirmed=False, is_present=True, confidence=0.7)

    assert update is not None and update.kind is UpdateKind.UPDATED
    assert (update.event.id, update.event.revision, update.event.started_at) == (opened.event.id, 2, T0)
    assert giving.export("cam-1") == [] and json.loads((tmp_path / "a.json").read_text())["incidents"] == []


def test_a_node_ends_its_old_incidents_at_start_unless_another_node_carries_them_on(tmp_path: Path) -> None:
    path = tmp_path / "open_incidents.json"
    flame, smoke = _flame_and_smoke(IncidentJournal(path))
    # killed; another node took cam-1 over with the flame it had saved, not the newer smoking incident

    (ended,) = IncidentJournal(path).close_unclaimed(T0 + 50, carried_on={flame.event.id})

    assert (ended.id, ended.ended_at) == (smoke.event.id, T0 + 50)
    assert json.loads(path.read_text())["incidents"] == []


def test_an_adopted_incident_skips_the_revisions_its_dead_node_may_have_sent_after_saving(
    tmp_path: Path,
) -> None:
    dead = IncidentJournal(tmp_path / "a.json")
    flames = book(dead)
    opened = flames.observe("fire", now=T0, is_confirmed=True, is_present=True)
    saved = dead.export("cam-1")  # the last save before the node died ...
    flames.observe(
        "fire", now=T0 + 6, is_confirmed=True, is_present=True
    )  # ... which sent revision 2 after it
    taking = IncidentJournal(tmp_path / "b.json")
    taking.adopt("cam-1", saved, skip_revisions=10)

    update = book(taking).observe("fire", now=T0 + 20, is_confirmed=False, is_present=True)

    assert opened is not None and update is not None
    assert (update.event.id, update.event.revision) == (opened.event.id, 12), (
        "above the dead node's revision 2"
    )


def test_adopting_incidents_of_another_camera_is_refused(tmp_path: Path) -> None:
    journal = IncidentJournal(tmp_path / "a.json")
    book(journal).observe("fire", now=T0, is_confirmed=True, is_present=True)

    with pytest.raises(ValueError, match=r"cam-2: the incidents handed over are of camera\(s\) \['cam-1'\]"):
        IncidentJournal(tmp_path / "b.json").adopt("cam-2", journal.export("cam-1"))
    with pytest.raises(ValueError, match="cam-2: cannot adopt the open incidents handed over"):
        IncidentJournal(tmp_path / "b.json").adopt("cam-2", [{"camera_id": "cam-2"}])


def test_a_journal_of_another_format_version_is_set_aside_not_dropped_unsaid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Written by another anjian (a downgrade, a newer one's file): it was ignored silently, then overwritten."""
    path = tmp_path / "open_incidents.json"
    path.write_text(json.dumps({"version": 99, "incidents": [{"camera_id": "cam-1"}]}))

    journal = IncidentJournal(path)

    assert journal.pending() == []
    assert json.loads((tmp_path / "open_incidents.corrupt").read_text())["version"] == 99
    assert "format version 99" in caplog.text
