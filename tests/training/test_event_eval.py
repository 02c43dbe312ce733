"""Event-level scoring: matching alerts to expected incidents, precision, recall, time to alert."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest

from anjian.datasets.synthetic import write_demo_video
from anjian.models.detections import Detections
from anjian.pipeline.camera_config import CameraPipelineConfig
from anjian.pipeline.engine_config import EngineConfig, MotionGateConfig
from anjian.training.event_eval import (
    EvalCamera,
    EventEvalSpec,
    ExpectedEvent,
    RaisedEvent,
    evaluate_events,
    load_event_spec,
    score_clip,
    summarize,
)
from tests.support.clips import broken_off_copy, header_first_copy


def _exp(behaviour: str, start: float, end: float | None = None) -> ExpectedEvent:
    return ExpectedEvent(behaviour=behaviour, start_s=start, end_s=end)


def test_alert_inside_the_incident_matches_once_and_a_second_one_is_a_false_positive() -> None:
    score = score_clip(
        "a.mp4",
        [_exp("open_flame", 10, 20)],
        [RaisedEvent("open_flame", 13.5), RaisedEvent("open_flame", 15.0)],
        tolerance_s=2,
        clip_s=60,
    )
    assert score.true_positives == [("open_flame", 3.5)]
    assert score.false_positives == ["open_flame"] and score.missed == []


@pytest.mark.parametrize(
    ("alert", "is_match"),
    [
        (RaisedEvent("open_flame", 8.5), True),
        (RaisedEvent("open_flame", 7.0), False),
        (RaisedEvent("open_flame", 21.5), True),
        (RaisedEvent("smoking", 12.0), False),
    ],
    ids=["early-within-tolerance", "too-early", "late-within-tolerance", "other-behaviour"],
)
def test_matching_window_and_behaviour(alert: RaisedEvent, is_match: bool) -> None:
    score = score_clip("a.mp4", [_exp("open_flame", 10, 20)], [alert], tolerance_s=2, clip_s=60)
    assert bool(score.true_positives) is is_match
    assert score.missed == ([] if is_match else ["open_flame"])


def test_incident_without_end_lasts_to_the_end_of_the_clip() -> None:
    score = score_clip(
        "a.mp4", [_exp("fallen_person", 5)], [RaisedEvent("fallen_person", 50)], tolerance_s=0, clip_s=55
    )
    assert score.true_positives == [("fallen_person", 45.0)]


def test_time_to_alert_and_matching_use_when_the_alert_was_raised_not_the_backdated_start() -> None:
    """A rule backdates its incident to where confirmation began: that start made every time to alert 0."""
    raised = RaisedEvent("open_flame", 11.6, started_s=10.0)
    score = score_clip("a.mp4", [_exp("open_flame", 10, 20)], [raised], tolerance_s=2, clip_s=60)
    assert score.true_positives == [("open_flame", pytest.approx(1.6))]
    assert score.to_dict()["alerts"] == [
        {"behaviour": "open_flame", "alert_s": 11.6, "started_s": 10.0, "matched": True}
    ]

    late = RaisedEvent(
        "open_flame", 25.0, started_s=12.0
    )  # the condition began inside, the alert came too late
    score = score_clip("a.mp4", [_exp("open_flame", 10, 20)], [late], tolerance_s=2, clip_s=60)
    assert score.false_positives == ["open_flame"] and score.missed == ["open_flame"]


def test_matching_does_not_depend_on_the_order_incidents_are_listed_in() -> None:
    """First-fit in spec order gave a long incident the alert a short one needed: TP 1 or 2 by listing."""
    whole_clip, short = _exp("smoking", 0), _exp("smoking", 10, 12)
    alerts = [RaisedEvent("smoking", 11.0), RaisedEvent("smoking", 30.0)]
    for expected in ([whole_clip, short], [short, whole_clip]):
        score = score_clip("a.mp4", expected, alerts, tolerance_s=2, clip_s=40)
        assert (len(score.true_positives), score.false_positives, score.missed) == (2, [], [])
        by_start = {r.incident.start_s: r.alert_s for r in score.incidents}
        assert by_start == {0: 30.0, 10: 11.0}


@pytest.mark.parametrize("seed", range(20))
def test_every_listing_of_the_incidents_scores_alike(seed: int) -> None:
    """Random overlapping incidents and alerts: the counts are the same for every order of the spec."""
    import itertools

    rng = np.random.default_rng(seed)
    behaviours = ["smoking", "smoking", "open_flame"]  # mostly one behaviour: incidents compete for alerts
    expected = []
    for _ in range(4):
        start = float(rng.integers(0, 30))
        end = None if rng.random() < 0.25 else start + float(rng.integers(0, 15))
        expected.append(_exp(str(rng.choice(behaviours)), start, end))
    alerts = [RaisedEvent(str(rng.choice(behaviours)), float(rng.integers(0, 50))) for _ in range(5)]

    def fits(alert: RaisedEvent, incident: ExpectedEvent) -> bool:
        end = 50 if incident.end_s is None else incident.end_s
        return alert.behaviour == incident.behaviour and incident.start_s - 1 <= alert.alert_s <= end + 1

    def most_pairs(todo: Sequence[RaisedEvent], free: frozenset[int]) -> int:
        if not todo:
            return 0
        head, rest = todo[0], todo[1:]
        taken = [1 + most_pairs(rest, free - {i}) for i in free if fits(head, expected[i])]
        return max([most_pairs(rest, free), *taken])

    best = most_pairs(alerts, frozenset(range(len(expected))))
    counts = set()
    for order in itertools.permutations(expected):
        score = score_clip("a.mp4", order, alerts, tolerance_s=1, clip_s=50)
        counts.add((len(score.true_positives), len(score.false_positives), len(score.missed)))
    assert counts == {(best, len(alerts) - best, len(expected) - best)}


def test_summary_per_behaviour_and_overall() -> None:
    clips = [
        score_clip(
            "a", [_exp("open_flame", 10, 20)], [RaisedEvent("open_flame", 12)], tolerance_s=1, clip_s=30
        ),
        score_clip(
            "b",
            [_exp("open_flame", 0, 5), _exp("smoking", 1, 9)],
            [RaisedEvent("smoking", 30)],
            tolerance_s=1,
            clip_s=40,
        ),
        score_clip("c", [], [], tolerance_s=1, clip_s=40),
    ]
    rows = {r.behaviour: r for r in summarize(clips)}
    flame, smoking, total = rows["open_flame"], rows["smoking"], rows["all"]
    assert (flame.expected, flame.raised, flame.true_positives) == (2, 1, 1)
    assert (flame.precision, flame.recall, flame.median_time_to_alert_s) == (1.0, 0.5, 2.0)
    assert smoking.precision == 0.0 and smoking.recall == 0.0 and math.isnan(smoking.median_time_to_alert_s)
    assert (total.expected, total.raised, total.true_positives) == (3, 2, 1)
    assert smoking.to_dict()["median_time_to_alert_s"] is None


def test_spec_paths_resolve_next_to_the_file_and_errors_name_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "clips:\n  - video: clips/a.mp4\n    camera: cam-1\n    expected: [{behaviour: open_flame, start_s: 3}]\n"
    )
    loaded = load_event_spec(spec)
    assert loaded.clips[0].video == tmp_path / "clips" / "a.mp4" and loaded.tolerance_s == 2.0

    spec.write_text(
        "clips:\n  - video: a.mp4\n    camera: c\n    expected: [{behaviour: x, start_s: 5, end_s: 1}]\n"
    )
    with pytest.raises(ValueError, match="end_s 1.0 is before start_s 5.0"):
        load_event_spec(spec)


def test_clip_report_carries_alerts_first_alert_and_time_to_alert_per_incident() -> None:
    score = score_clip(
        "a.mp4",
        [_exp("open_flame", 10, 20), _exp("smoking", 30, 35)],
        [RaisedEvent("open_flame", 3.0), RaisedEvent("open_flame", 12.5)],
        tolerance_s=1,
        clip_s=40,
    )
    report = score.to_dict()
    assert report["first_alert_s"] == 3.0 and report["clip_s"] == 40
    assert report["alerts"] == [
        {"behaviour": "open_flame", "alert_s": 3.0, "started_s": None, "matched": False},
        {"behaviour": "open_flame", "alert_s": 12.5, "started_s": None, "matched": True},
    ]
    assert report["incidents"] == [
        {"behaviour": "open_flame", "start_s": 10, "end_s": 20, "alert_s": 12.5, "time_to_alert_s": 2.5},
        {"behaviour": "smoking", "start_s": 30, "end_s": 35, "alert_s": None, "time_to_alert_s": None},
    ]
    assert score_clip("q.mp4", [], [], tolerance_s=1, clip_s=5).to_dict()["first_alert_s"] is None


def test_hints_name_incidents_too_short_for_the_rule_and_rules_the_camera_does_not_run(
    tmp_path: Path,
) -> None:
    from anjian.training.event_eval import ClipSpec, clip_hints

    clip = ClipSpec(
        video=tmp_path / "fall.mp4",
        camera="cam-1",
        expected=(_exp("fallen_person", 1.0), _exp("fallen_person", 0.0, 2.0), _exp("smoking", 0.5)),
    )
    hints = clip_hints(clip, clip_s=4.3, tolerance_s=1.0, min_duration_s={"fallen_person": 5.0})
    assert len(hints) == 3
    assert "fall.mp4: fallen_person at 1 s" in hints[0] and "min_duration_s is 5 s on cam-1" in hints[0]
    assert "leaves 3.3 s" in hints[0] and "leaves 3.0 s" in hints[1]
    assert "camera cam-1 does not run the smoking rule" in hints[2]
    assert (
        clip_hints(clip, clip_s=60, tolerance_s=1.0, min_duration_s={"fallen_person": 1.0, "smoking": 0})
        == []
    )


def test_table_shows_dashes_not_nan() -> None:
    from anjian.training.event_eval import render_table

    rows = summarize(
        [
            score_clip("a", [_exp("smoking", 1, 9)], [], tolerance_s=1, clip_s=10),
            score_clip("b", [], [], tolerance_s=1, clip_s=1),
        ]
    )
    table = render_table(rows)
    assert "nan" not in table.lower()
    smoking = next(line for line in table.splitlines() if line.startswith("smoking"))
    assert smoking.split()[1:] == ["1", "0", "0", "–", "0.00", "–", "–"]


class _FireEverywhere:
    """Satisfies ``models.Detector``: one confident fire box on every frame."""

    def __init__(self) -> None:
        self.class_names = {0: "fire"}
        self.version = "fire-everywhere@1"
        self.class_thresholds: dict[str, float] = {}

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [
            Detections(
                np.array([[10, 10, 60, 60]], np.float32),
                np.array([0.9], np.float32),
                np.array([0]),
                {0: "fire"},
            )
            for _ in images
        ]


def _eval_camera(**flame: object) -> EvalCamera:
    camera = CameraPipelineConfig.model_validate(
        {
            "id": "cam-1",
            "url": "unused.mp4",
            "analysis_fps": 5,
            "behaviours": {
                "open_flame": {
                    "classes": ["fire"],
                    "min_confidence": 0.4,
                    "k": 3,
                    "n": 5,
                    "is_temporal_check": False,  # the scripted box does not flicker
                    **flame,
                }
            },
        }
    )
    return EvalCamera("ws-1", camera)


def _plan(tmp_path: Path, clips: str) -> EventEvalSpec:
    (tmp_path / "spec.yaml").write_text(clips)
    return load_event_spec(tmp_path / "spec.yaml")


def test_evaluate_events_replays_each_clip_as_its_camera_and_scores_its_alerts(tmp_path: Path) -> None:
    write_demo_video(tmp_path / "fire.mp4", seconds=12, fps=10, size_wh=(160, 90))
    plan = _plan(
        tmp_path,
        "tolerance_s: 1\nclips:\n"
        "  - {video: fire.mp4, camera: cam-1, until_s: 3, expected: [{behaviour: open_flame, start_s: 0}]}\n"
        "  - {video: fire.mp4, camera: cam-1, until_s: 2,"
        " expected: [{behaviour: smoking, start_s: 0, end_s: 1}]}\n",
    )
    seen: list[str] = []

    scores = evaluate_events(
        plan,
        {"cam-1": _eval_camera()},
        _FireEverywhere(),
        site_id="plant",
        time_zone="UTC",
        on_clip=lambda score: seen.append(score.video),
    )

    assert seen == [str(tmp_path / "fire.mp4")] * 2, "progress is reported clip by clip"
    first, second = scores
    assert [a.behaviour for a in first.alerts] == ["open_flame"], "one alert per incident (first revision)"
    assert first.true_positives and first.true_positives[0][1] <= 1.0  # k=3 of n=5 frames at 5 fps
    assert first.hints == []
    assert second.missed == ["smoking"] and second.clip_s <= 2.0 + 0.2
    assert any("does not run the smoking rule" in hint for hint in second.hints)
    assert first.frames_inferred == first.frames >= 15  # 3 s at 5 fps, no motion gate
    assert first.to_dict()["frames"] == first.frames


def test_a_clip_cut_short_is_the_first_hint_of_its_score(tmp_path: Path) -> None:
    """Incidents after the cut of a broken-off clip counted as missed with no word why."""
    written = write_demo_video(tmp_path / "written.mp4", seconds=12, fps=10, size_wh=(160, 90))
    whole = header_first_copy(written, tmp_path / "fire.mp4")  # as cameras write it: a cut copy still opens
    broken_off_copy(whole, 0.5)
    plan = _plan(
        tmp_path,
        "clips:\n"
        "  - {video: fire.mp4, camera: cam-1, expected: [{behaviour: open_flame, start_s: 5}]}\n"
        "  - {video: cut-fire.mp4, camera: cam-1, expected: [{behaviour: open_flame, start_s: 5}]}\n",
    )

    whole_score, cut_score = evaluate_events(
        plan, {"cam-1": _eval_camera()}, _FireEverywhere(), site_id="plant", time_zone="UTC"
    )

    assert whole_score.hints == []
    assert "cut-fire.mp4 ends at" in cut_score.hints[0] and "cut short" in cut_score.hints[0]
    assert cut_score.to_dict()["hints"] == cut_score.hints


def test_evaluate_events_counts_the_frames_a_gated_camera_left_to_the_detector(tmp_path: Path) -> None:
    """The camera's motion gate holds in the evaluation: an empty still clip is inferred on its first frame and forced ones."""

    class _SeesNothing(_FireEverywhere):
        def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
            return [Detections.empty({0: "fire"}) for _ in images]

    still = tmp_path / "still.mp4"
    with av.open(str(still), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        for _ in range(40):  # 8 s of one grey picture
            frame = av.VideoFrame.from_ndarray(np.full((90, 160, 3), 120, np.uint8), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    plan = _plan(tmp_path, "clips:\n  - {video: still.mp4, camera: cam-1, expected: []}\n")
    camera = _eval_camera()
    gated = EvalCamera(
        camera.workshop_id,
        camera.config.model_copy(update={"engine": EngineConfig(motion_gate=MotionGateConfig(enabled=True))}),
    )

    [score] = evaluate_events(plan, {"cam-1": gated}, _SeesNothing(), site_id="p", time_zone="UTC")

    assert (
        score.frames >= 35 and score.frames_inferred <= 3
    )  # the first frame, then one each max_skip_s (5 s)
    assert score.to_dict()["frames_inferred"] == score.frames_inferred


def test_evaluate_events_times_an_alert_by_the_frame_that_raised_it(tmp_path: Path) -> None:
    """Fire from the first frame, confirmed after 1.5 s: the alert comes at 1.5 s or later, not at 0."""
    write_demo_video(tmp_path / "fire.mp4", seconds=12, fps=10, size_wh=(160, 90))
    plan = _plan(
        tmp_path,
        "tolerance_s: 1\nclips:\n"
        "  - {video: fire.mp4, camera: cam-1, until_s: 3, expected: [{behaviour: open_flame, start_s: 0}]}\n",
    )

    [score] = evaluate_events(
        plan, {"cam-1": _eval_camera(min_duration_s=1.5)}, _FireEverywhere(), site_id="p", time_zone="UTC"
    )

    [alert] = score.alerts
    assert alert.started_s is not None and alert.started_s <= 0.2  # the incident is backdated to its start
    assert 1.5 <= alert.alert_s <= 2.0
    assert score.true_positives == [("open_flame", alert.alert_s)]
    assert score.incidents[0].time_to_alert_s == alert.alert_s and score.first_alert_s == alert.alert_s


def test_evaluate_events_names_every_unknown_camera_before_replaying_anything(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        "clips: [{video: missing.mp4, camera: nope}, {video: missing.mp4, camera: cam-1},"
        " {video: missing.mp4, camera: gone}]\n",
    )

    with pytest.raises(ValueError, match=r"no camera 'gone', 'nope' among the site's cameras \['cam-1'\]"):
        evaluate_events(plan, {"cam-1": _eval_camera()}, _FireEverywhere(), site_id="p", time_zone="UTC")


def test_evaluate_events_names_the_clip_it_cannot_replay(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "clips: [{video: missing.mp4, camera: cam-1}]\n")

    with pytest.raises(ValueError, match=r"missing\.mp4: "):
        evaluate_events(plan, {"cam-1": _eval_camera()}, _FireEverywhere(), site_id="p", time_zone="UTC")


def test_a_spec_that_is_not_utf8_raises_naming_the_file(tmp_path: Path) -> None:
    spec = tmp_path / "clips.yaml"
    spec.write_bytes(b"clips:\n  - video: caf\xe9.mp4\n    camera: c\n    expected: []\n")
    with pytest.raises(ValueError, match=r"cannot read .*clips\.yaml: 'utf-8' codec can't decode byte 0xe9"):
        load_event_spec(spec)
