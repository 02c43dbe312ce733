"""CameraAnalyzer: the six rules from YAML, snapshot on raise, clip as a later revision, tick, isolation."""

from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest
import yaml

from anjian.models.detections import Detections
from anjian.pipeline.analyzer import CameraAnalyzer
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.event import Behaviour, Event
from tests.pipeline.scripted import CONTEXT, T0, dets, frame

SITE_CAMERA = """
id: cam
url: line.mp4
zones:
  - {id: desk, kind: post, polygon: [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]}
  - {id: door, kind: exit, polygon: [[0, 0], [0.4, 0], [0.4, 1], [0, 1]]}
  - {id: floor, kind: dust, polygon: [[0.5, 0], [1, 0], [1, 0.4], [0.5, 0.4]]}
  - {id: furnace, kind: exclusion, excludes: [open_flame], polygon: [[0.9, 0.9], [1, 0.9], [1, 1]]}
schedules:
  shift: {windows: [{days: [mon, tue, wed, thu, fri], start: "08:00", end: "20:00"}]}
  cleaning: {time_zone: Asia/Shanghai, windows: [{start: "17:00", end: "17:30"}]}
behaviours:
  open_flame: {k: 2, n: 3, update_interval_s: 1, clear_after_s: 1}
  smoking: {k: 3, n: 5}
  fallen_person: {min_duration_s: 5, escalate: {after_s: 60, severity: red}}
  blocked_exit: {min_duration_s: 120, obstacle_classes: [pallet, forklift]}
  uncleaned_dust: {cleaning_schedule: cleaning, score_threshold: 0.3}
  absence_from_post:
    min_duration_s: 5
    restored_after_s: 1
    posts: [{zone: desk, min_people: 1, max_people: 3}]
evidence: {clip_pre_s: 2, clip_post_s: 2, clip_fps: 5, clip_width_px: 160}
"""


def _analyzer(**changes: object) -> CameraAnalyzer:
    data = yaml.safe_load(SITE_CAMERA)
    data.update(changes)
    return CameraAnalyzer(CameraPipelineConfig.model_validate(data), CONTEXT)


def _image(i: int) -> np.ndarray:
    image = np.full((100, 200, 3), 60, np.uint8)
    image[10 : 40 + i % 3 * 5, 20:60] = (0, 120 + 30 * (i % 3), 255)  # a flickering orange flame
    return image


FIRE = dets(("fire", (20, 10, 60, 50)))


def test_all_six_behaviours_are_built_from_the_site_yaml() -> None:
    analyzer = _analyzer()
    assert [r.behaviour.value for r in analyzer.rules] == [
        "open_flame",
        "smoking",
        "fallen_person",
        "blocked_exit",
        "uncleaned_dust",
        "absence_from_post",
    ]


def test_new_incident_carries_a_snapshot_and_a_later_revision_carries_the_clip() -> None:
    analyzer = _analyzer()
    events: list[tuple[int, Event]] = []
    for i in range(20):
        d = FIRE if i < 12 else Detections.empty(FIRE.class_names)
        events += [
            (i, e)
            for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), d)
            if e.behaviour is Behaviour.OPEN_FLAME
        ]
    opened = events[0][1]
    assert events[0][0] == 1 and opened.revision == 1
    snapshot = cv2.imdecode(np.frombuffer(opened.snapshot_jpeg or b"", np.uint8), cv2.IMREAD_COLOR)
    assert snapshot.shape == (100, 200, 3)
    assert tuple(snapshot[10, 40]) != tuple(_image(1)[10, 40])  # the box was drawn over the flame's top edge
    with_clip = [(i, e) for i, e in events if e.clip_mp4 is not None]
    assert [i for i, _ in with_clip] == [11]  # confirmed at 0.2 s, clip until 2.2 s
    clip = with_clip[0][1]
    assert clip.id == opened.id and clip.snapshot_jpeg is None
    with av.open(io.BytesIO(clip.clip_mp4 or b"")) as container:
        assert len(list(container.decode(video=0))) == 12  # 0..2.2 s at 5 fps, nothing before the start
    revisions = [e.revision for _, e in events]
    assert revisions == list(range(1, len(revisions) + 1))  # the clip took a revision number of its own
    assert events[-1][1].ended_at is not None and events[-1][1].clip_mp4 is None


def test_after_a_model_swap_the_ongoing_incident_carries_the_new_version() -> None:
    analyzer = _analyzer()
    flame = [e for i in range(3) for e in analyzer.process(frame(T0 + i * 0.6, i, _image(i)), FIRE)]
    assert [e.model_version for e in flame if e.behaviour is Behaviour.OPEN_FLAME] == ["m@1"]
    analyzer.set_model_version("m@2")
    later = [e for i in range(3, 6) for e in analyzer.process(frame(T0 + i * 0.6, i, _image(i)), FIRE)]
    updates = [e for e in later if e.behaviour is Behaviour.OPEN_FLAME]
    assert updates and {e.model_version for e in updates} == {"m@2"}
    assert {e.id for e in updates} == {flame[0].id}  # the same incident, not a new one


def test_tick_raises_absence_with_the_last_frame_as_snapshot() -> None:
    analyzer = _analyzer()
    monday_noon_utc = 1_709_553_600.0  # 2024-03-04 12:00 UTC, inside the shift in UTC
    assert analyzer.process(frame(monday_noon_utc), dets()) == []
    events = [e for s in range(1, 8) for e in analyzer.tick(monday_noon_utc + s)]
    [opened] = [e for e in events if e.revision == 1]
    assert opened.behaviour is Behaviour.ABSENCE_FROM_POST and opened.snapshot_jpeg is not None
    assert opened.last_seen_at == monday_noon_utc + 5


def test_a_failing_rule_does_not_silence_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    analyzer = _analyzer()
    smoking = next(r for r in analyzer.rules if r.behaviour is Behaviour.SMOKING)
    monkeypatch.setattr(smoking, "process", lambda *_: 1 / 0)
    events = [e for i in range(3) for e in analyzer.process(frame(T0 + i, i, _image(i)), FIRE)]
    assert events and {e.behaviour for e in events} == {Behaviour.OPEN_FLAME}


def test_reset_reference_reaches_the_rule_that_keeps_the_zone() -> None:
    analyzer = _analyzer()
    assert analyzer.reset_reference("door") and analyzer.reset_reference("floor")
    assert not analyzer.reset_reference("desk")


def test_close_ends_incidents_and_finishes_pending_clips() -> None:
    analyzer = _analyzer()
    events = [e for i in range(3) for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)]
    assert [e.revision for e in events] == [1]
    closing = analyzer.close(T0 + 1)
    assert [(e.revision, e.ended_at is not None, e.clip_mp4 is not None) for e in closing] == [
        (2, True, False),
        (3, True, True),
    ]
    stats = analyzer.evidence_stats()
    assert stats is not None and stats.clips_written == 1 and stats.memory_bytes > 0


def test_clips_can_be_turned_off() -> None:
    analyzer = _analyzer(evidence={"is_clip": False})
    events = [e for i in range(30) for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)]
    assert events and all(e.clip_mp4 is None for e in events) and analyzer.evidence_stats() is None


def test_a_clip_that_fails_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failed clip used to leave its incident's rule in the analyzer's table for good: a slow leak over months."""

    def broken(_frames: object) -> bytes:
        raise RuntimeError("encoder gone")

    monkeypatch.setattr("anjian.pipeline.evidence.encode_clip", broken)
    analyzer = _analyzer()
    events = [e for i in range(3) for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)]
    assert [e.revision for e in events] == [1]
    analyzer.close(T0 + 1)
    stats = analyzer.evidence_stats()
    assert stats is not None and stats.clip_failures == 1
    assert analyzer._clip_owner == {}  # the leak itself


def _steady_flame_analyzer(**options: object) -> CameraAnalyzer:
    """The site camera whose flame incident stays open through a few seconds without frames."""
    data = yaml.safe_load(SITE_CAMERA)
    data["behaviours"]["open_flame"]["clear_after_s"] = 30
    return CameraAnalyzer(CameraPipelineConfig.model_validate(data), CONTEXT, **options)  # type: ignore[arg-type]


def _clip_frames(event: Event) -> int:
    with av.open(io.BytesIO(event.clip_mp4 or b"")) as container:
        return len(list(container.decode(video=0)))


def test_a_tick_waits_for_frames_still_on_their_way_before_cutting_a_clip() -> None:
    """The runner's once-a-second tick cut a clip by the wall clock while the frames captured just before its
    end were still batched or on the model: they reached the ring after the cut, and the clip lost its tail."""
    analyzer = _steady_flame_analyzer(clip_grace_s=3.0)
    events = [e for i in range(6) for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)]
    assert [e.revision for e in events if e.behaviour is Behaviour.OPEN_FLAME] == [1]  # clip: 0 to 2.2 s

    assert not any(e.clip_mp4 for e in analyzer.tick(T0 + 2.5))  # the frames of 1.2-2.2 s are on their way
    late = [(i, e) for i in range(6, 12) for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)]

    [(i, clip)] = [(i, e) for i, e in late if e.clip_mp4 is not None]
    assert i == 11 and _clip_frames(clip) == 12  # cut by the frame at the window's end: 0..2.2 s at 5 fps


def test_a_tick_cuts_the_clip_of_a_camera_gone_quiet_once_the_grace_is_over() -> None:
    analyzer = _steady_flame_analyzer(clip_grace_s=3.0)
    for i in range(6):
        analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)
    assert not any(e.clip_mp4 for e in analyzer.tick(T0 + 5.1))  # the end, 2.2 s, plus 3 s of grace
    [clip] = [e for e in analyzer.tick(T0 + 5.3) if e.clip_mp4 is not None]
    assert _clip_frames(clip) == 6  # what came: 0..1.0 s


def test_new_clip_settings_keep_the_incident_and_the_clip_already_promised() -> None:
    """A reload that changed only the evidence settings rebuilt the rules: the ongoing incident ended and was
    raised again under a new id. Now the rules carry on and the new settings apply to the next clips."""
    analyzer = _steady_flame_analyzer()
    events = [(i, e) for i in range(3) for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)]
    rules = analyzer.rules
    data = yaml.safe_load(SITE_CAMERA)
    data["evidence"] = {"clip_pre_s": 1, "clip_post_s": 5, "clip_fps": 5, "clip_width_px": 160}
    analyzer.set_camera(CameraPipelineConfig.model_validate(data))
    events += [
        (i, e) for i in range(3, 20) for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)
    ]

    assert analyzer.rules is rules and {e.id for _, e in events} == {events[0][1].id}
    assert not any(e.ended_at is not None for _, e in events)
    assert [i for i, e in events if e.clip_mp4 is not None] == [11]  # its window, 0 to 2.2 s, as promised
    assert analyzer.clips is not None and analyzer.clips.config.clip_post_s == 5


def test_clips_turned_off_while_one_is_pending_still_deliver_it_then_free_the_buffer() -> None:
    analyzer = _steady_flame_analyzer()
    events = [(i, e) for i in range(3) for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)]
    data = yaml.safe_load(SITE_CAMERA) | {"evidence": {"is_clip": False}}
    analyzer.set_camera(CameraPipelineConfig.model_validate(data))
    assert analyzer.evidence_stats() is not None  # the promised clip still needs the buffer
    events += [
        (i, e) for i in range(3, 20) for e in analyzer.process(frame(T0 + i * 0.2, i, _image(i)), FIRE)
    ]

    assert [i for i, e in events if e.clip_mp4 is not None] == [11]
    assert analyzer.evidence_stats() is None  # no buffer kept once the last clip went out
