"""The wall clock going back (an NTP step) must not silence alerts, hold incidents open or stop the evidence ring.

Frame times are wall-clock capture times; before these fixes a step back made every duration
negative: a closed incident's cooldown never ran out, an absent one never cleared, a rule's
confirmation stayed pinned to its old start, and the clip buffer refused every new frame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from anjian.cameras.frame import Frame
from anjian.pipeline import evidence
from anjian.pipeline.config import EvidenceConfig
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.evidence import BufferedFrame, ClipRecorder, FrameRing
from anjian.pipeline.incident_journal import IncidentJournal
from anjian.pipeline.incidents import EventContext, IncidentBook, UpdateKind
from anjian.pipeline.rules.base import Confirmation

T0 = 1_700_000_000.0


def _book(*, cooldown_s: float = 0.0) -> IncidentBook:
    context = EventContext(site_id="site", workshop_id="ws", camera_id="cam-1", model_version="m@1")
    return IncidentBook(
        behaviour=Behaviour.OPEN_FLAME,
        severity=RiskLevel.RED,
        clear_after_s=10,
        update_interval_s=5,
        cooldown_s=cooldown_s,
        context=context,
    )


def test_a_new_incident_is_raised_right_after_the_clock_goes_back() -> None:
    flames = _book(cooldown_s=30)
    assert flames.observe("fire", now=T0, is_confirmed=True, is_present=True) is not None
    closed = flames.observe("fire", now=T0 + 15, is_confirmed=False, is_present=False)
    assert closed is not None and closed.kind is UpdateKind.CLOSED
    assert flames.in_cooldown("fire", T0 + 20)
    assert not flames.in_cooldown("fire", T0 + 15 - 120)  # two minutes back: no cooldown for ever
    reopened = flames.observe("fire", now=T0 + 15 - 120, is_confirmed=True, is_present=True)
    assert reopened is not None and reopened.kind is UpdateKind.OPENED


def test_an_absent_incident_ends_at_its_last_sighting_when_the_clock_goes_back() -> None:
    flames = _book()
    opened = flames.observe("fire", now=T0, is_confirmed=True, is_present=True)
    assert opened is not None
    flames.observe("fire", now=T0 + 4, is_confirmed=True, is_present=True)
    closed = flames.observe("fire", now=T0 + 5 - 3600, is_confirmed=False, is_present=False)
    assert closed is not None and closed.kind is UpdateKind.CLOSED
    assert closed.event.ended_at == T0 + 4  # never before it started
    swept = _book()
    swept.observe("fire", now=T0, is_confirmed=True, is_present=True)
    assert [u.kind for u in swept.sweep(T0 - 600)] == [UpdateKind.CLOSED]
    assert _book().sweep(T0 - 2) == []  # a few seconds of jitter is no step


def test_a_confirmation_is_timed_afresh_after_the_clock_goes_back() -> None:
    spell = Confirmation(k=1, n=1, min_duration_s=3)
    for second in range(4):
        spell.update(T0 + second, is_hit=True)
    assert spell.is_confirmed(T0 + 3)
    spell.reset()
    spell.update(T0 + 10, is_hit=True)
    for second in range(4):  # an hour back: the old start would pin it unconfirmed for an hour
        confirmed = spell.update(T0 - 3600 + second, is_hit=True)
    assert confirmed


def test_the_evidence_ring_keeps_buffering_after_the_clock_goes_back() -> None:
    ring = FrameRing(max_fps=5, width_px=320, jpeg_quality=70, max_bytes=10_000_000)
    image = np.zeros((360, 640, 3), np.uint8)
    for i in range(10):
        assert ring.add(Frame(camera_id="cam", image=image, captured_at=T0 + i, pts_s=float(i), index=i))
    back = T0 - 600
    assert ring.add(Frame(camera_id="cam", image=image, captured_at=back, pts_s=10.0, index=10))
    assert len(ring) == 1 and ring.newest_at == back


@pytest.mark.parametrize("is_background", [False, True], ids=["inline", "executor"])
def test_a_clip_waiting_for_its_end_is_cut_from_its_own_frames_when_the_clock_goes_back(
    is_background: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ring forgot the incident's frames at the step, but the clip waited the step's length for its end,
    then was cut from frames of an unrelated scene and attached to the old incident."""
    encoded: list[list[float]] = []
    encode = evidence.encode_clip

    def recording_encode(frames: Sequence[BufferedFrame]) -> bytes:
        encoded.append([f.captured_at for f in frames])
        return encode(frames)

    monkeypatch.setattr(evidence, "encode_clip", recording_encode)
    config = EvidenceConfig(clip_pre_s=2, clip_post_s=2, clip_fps=5, clip_width_px=160)
    image = np.zeros((90, 160, 3), np.uint8)
    with ThreadPoolExecutor(1) as executor:
        recorder = ClipRecorder(config, "cam", executor=executor if is_background else None)
        for i in range(16):  # 0..3 s; the clip of an incident confirmed at 2 s runs to 4 s
            recorder.add_frame(
                Frame(camera_id="cam", image=image, captured_at=T0 + i / 5, pts_s=i / 5, index=i)
            )
            if i == 10:
                recorder.request("smoker", confirmed_at=T0 + 2)
        back = T0 + 3.2 - 3600
        recorder.add_frame(Frame(camera_id="cam", image=image, captured_at=back, pts_s=3.2, index=16))
    clips = recorder.poll(back)  # the executor finished its work when the with block closed

    assert [event_id for event_id, _ in clips] == ["smoker"]
    assert encoded == [[T0 + i / 5 for i in range(16)]]  # 0..3 s: the frames before the step, none after
    assert recorder.stats().pending_clips == 0 and len(recorder.ring) == 1


def test_a_camera_silent_after_the_clock_goes_back_gets_its_clip_on_the_next_tick() -> None:
    """Only a frame showed the step: a camera that sent none after it (down, or quiet behind the motion
    gate) kept its clip waiting until the clock caught up with the clip's end, an hour for an hour's step."""
    config = EvidenceConfig(clip_pre_s=2, clip_post_s=2, clip_fps=5, clip_width_px=160)
    image = np.zeros((90, 160, 3), np.uint8)
    recorder = ClipRecorder(config, "cam")
    for i in range(16):  # 0..3 s; the clip of an incident confirmed at 2 s runs to 4 s
        recorder.add_frame(Frame(camera_id="cam", image=image, captured_at=T0 + i / 5, pts_s=i / 5, index=i))
    recorder.request("smoker", confirmed_at=T0 + 2)
    recorder.observe_clock(T0 + 3.0)
    recorder.observe_clock(T0 + 3.5)  # a tick later on the same clock: nothing is due yet
    assert recorder.poll(T0 + 3.5) == [] and recorder.pending_ids() == {"smoker"}

    recorder.observe_clock(T0 + 4.0 - 3600)  # the clock stepped back an hour; no frame came

    [(event_id, mp4)] = recorder.poll(T0 + 4.0 - 3600)
    assert event_id == "smoker" and mp4[4:8] == b"ftyp" and recorder.pending_ids() == set()


@pytest.mark.parametrize("content", ["null", "[]", '"x"', "3"])
def test_a_journal_that_is_json_but_no_object_is_set_aside_not_a_crash(tmp_path: Path, content: str) -> None:
    path = tmp_path / "open_incidents.json"
    path.write_text(content)
    journal = IncidentJournal(path)
    assert journal.pending() == []
    assert path.with_suffix(".corrupt").read_text() == content
    json.loads(content)  # valid JSON, just not the journal's shape
