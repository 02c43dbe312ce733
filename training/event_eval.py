"""Event-level evaluation: did the pipeline raise the alerts a clip should raise, and how fast?

A spec file lists clips and the incidents each holds (``anjian eval-events SPEC``)::

    tolerance_s: 2.0
    clips:
      - video: clips/flame_01.mp4        # relative to the spec file
        camera: cam-1                    # the site camera whose zones and rules apply
        expected:
          - {behaviour: open_flame, start_s: 12.0, end_s: 40.0}
      - video: clips/quiet_shift.mp4     # no incident: every alert is a false alarm
        camera: cam-2
        expected: []

:func:`evaluate_events` replays each clip through the full pipeline (the site camera's
zones and rules, the site's detector) and hands the raised alerts to :func:`score_clip`.
An alert is the first revision of an incident, timed by when it was raised: the capture time
of the frame that confirmed it (revision 1's ``last_seen_at``), in seconds into the clip. The
incident's ``started_at`` is backdated to where its confirmation began (a rule's
``min_duration_s``, k of n frames), so it says nothing of how fast the alert came; it is
reported beside the alert (``started_s``), never matched on.

An alert matches an expected incident of the same behaviour when it was raised within
``[start_s - tolerance_s, end_s + tolerance_s]``: an alert raised after the incident ended
(plus the tolerance) came too late to count, as :func:`clip_hints` assumes. Each incident
matches at most one alert and each alert at most one incident, as many pairs as possible:
alerts in the order they were raised each take, of the unmatched incidents whose window
holds them, the one whose window closes first (then the one that started first). That is a
maximum matching, and the order the spec lists incidents in cannot change it. Time to alert
is the time the alert was raised minus the incident's ``start_s`` (0 for an alert raised
within the early tolerance).

A rule with a ``min_duration_s`` cannot raise before the condition has lasted that long:
:func:`clip_hints` names each incident a clip (or its ``until_s``) holds too briefly to be
alerted, or whose behaviour the camera does not run, so a miss is explained, not puzzling.
:func:`render_table` prints the summary with dashes where a figure is undefined, and
:meth:`ClipScore.to_dict` carries each clip's alerts, its first alert and each incident's
time to alert for the JSON report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:  # the pipeline (PyAV, tracking, the rules) loads only when clips are replayed
    from anjian.models.detector import Detector
    from anjian.pipeline.camera_config import CameraPipelineConfig
    from anjian.pipeline.event import Event

__all__ = [
    "BehaviourScore",
    "ClipScore",
    "ClipSpec",
    "EvalCamera",
    "EventEvalSpec",
    "ExpectedEvent",
    "IncidentResult",
    "RaisedEvent",
    "clip_hints",
    "evaluate_events",
    "load_event_spec",
    "render_table",
    "score_clip",
    "summarize",
]


class _Strict(BaseModel):
    """Base of the spec models."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedEvent(_Strict):
    """An incident a clip holds."""

    behaviour: str = Field(..., min_length=1, description="Behaviour, e.g. open_flame.")
    start_s: float = Field(..., ge=0, description="When it becomes visible, seconds into the clip.")
    end_s: float | None = Field(None, ge=0, description="When it ends; the clip's end when absent.")

    @model_validator(mode="after")
    def _ordered(self) -> ExpectedEvent:
        """``end_s`` comes after ``start_s``."""
        if self.end_s is not None and self.end_s < self.start_s:
            raise ValueError(f"end_s {self.end_s} is before start_s {self.start_s}")
        return self


class ClipSpec(_Strict):
    """One clip and what it should raise."""

    video: Path = Field(..., description="Video file, relative to the spec file.")
    camera: str = Field(..., min_length=1, description="Site camera whose zones and rules apply.")
    expected: tuple[ExpectedEvent, ...] = Field(
        (), description="Incidents in the clip; empty for a quiet clip."
    )
    until_s: float | None = Field(None, gt=0, description="Replay only this many seconds.")


class EventEvalSpec(_Strict):
    """Clips with expected events."""

    description: str | None = Field(
        None, max_length=2000, description="What the clips are and how they were made (cards quote it)."
    )
    tolerance_s: float = Field(2.0, ge=0, le=600, description="Slack around each incident's interval.")
    clips: tuple[ClipSpec, ...] = Field(..., min_length=1, description="The clips.")


def load_event_spec(path: Path) -> EventEvalSpec:
    """Read a spec file; clip paths become relative to its folder.

    Raises:
        ValueError: The file is unreadable or invalid.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        spec = EventEvalSpec.model_validate(raw)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    except RecursionError:
        raise ValueError(
            f"cannot read {path}: lists or mappings nested too deep (hundreds of levels)"
        ) from None
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {errors}") from None
    base = Path(path).parent
    clips = tuple(
        c.model_copy(update={"video": c.video if c.video.is_absolute() else base / c.video})
        for c in spec.clips
    )
    return spec.model_copy(update={"clips": clips})


@dataclass(frozen=True, slots=True)
class RaisedEvent:
    """An alert the pipeline raised during a replay.

    Attributes:
        behaviour: Its behaviour.
        alert_s: When it was raised, seconds into the clip: the capture time of the frame
            that confirmed it (revision 1's ``last_seen_at``). Matching and time to alert use it.
        started_s: When the condition it reports began, seconds into the clip (the event's
            ``started_at``, backdated over its confirmation); ``None`` when unknown. Reported only.
    """

    behaviour: str
    alert_s: float
    started_s: float | None = None


@dataclass(frozen=True, slots=True)
class IncidentResult:
    """One expected incident and the alert that matched it.

    Attributes:
        incident: The expected incident.
        alert_s: When the matching alert was raised, seconds into the clip; ``None`` when missed.
    """

    incident: ExpectedEvent
    alert_s: float | None

    @property
    def time_to_alert_s(self) -> float | None:
        """When the alert was raised minus the incident's start (0 within the early tolerance)."""
        return None if self.alert_s is None else max(0.0, self.alert_s - self.incident.start_s)


def _rounded(value: float | None) -> float | None:
    """Seconds with two decimals, for JSON."""
    return None if value is None else round(value, 2)


@dataclass(slots=True)
class ClipScore:
    """Matches in one clip.

    Attributes:
        video: The clip.
        true_positives: ``(behaviour, delay_s)`` per matched incident.
        false_positives: Behaviours of alerts matching no incident.
        missed: Behaviours of incidents no alert matched.
        clip_s: Seconds replayed.
        alerts: Every alert raised, in the order raised.
        alert_matches: For each alert, whether it matched an incident.
        incidents: Every expected incident with its matching alert.
        hints: Why incidents could not be alerted: the damage a replay found in the file
            (``ReplayReport.damage``), then :func:`clip_hints`.
        frames: Frames analysed.
        frames_inferred: Frames the detector ran on (fewer behind the camera's motion gate).
    """

    video: str
    true_positives: list[tuple[str, float]] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    clip_s: float = 0.0
    alerts: list[RaisedEvent] = field(default_factory=list)
    alert_matches: list[bool] = field(default_factory=list)
    incidents: list[IncidentResult] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    frames: int = 0
    frames_inferred: int = 0

    @property
    def first_alert_s(self) -> float | None:
        """When the clip's first alert was raised, ``None`` when it raised none."""
        return self.alerts[0].alert_s if self.alerts else None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: alerts (raised and condition start), first alert, each incident's time to alert, hints, frames."""
        return {
            "video": self.video,
            "clip_s": _rounded(self.clip_s),
            "first_alert_s": _rounded(self.first_alert_s),
            "alerts": [
                {
                    "behaviour": a.behaviour,
                    "alert_s": _rounded(a.alert_s),
                    "started_s": _rounded(a.started_s),
                    "matched": is_matched,
                }
                for a, is_matched in zip(self.alerts, self.alert_matches, strict=True)
            ],
            "incidents": [
                {
                    "behaviour": r.incident.behaviour,
                    "start_s": r.incident.start_s,
                    "end_s": r.incident.end_s,
                    "alert_s": _rounded(r.alert_s),
                    "time_to_alert_s": _rounded(r.time_to_alert_s),
                }
                for r in self.incidents
            ],
            "hints": list(self.hints),
            "frames": self.frames,
            "frames_inferred": self.frames_inferred,
        }


def score_clip(
    video: str,
    expected: Sequence[ExpectedEvent],
    raised: Sequence[RaisedEvent],
    *,
    tolerance_s: float,
    clip_s: float,
) -> ClipScore:
    """Match raised alerts to expected incidents one to one, as many as possible (see the module docstring).

    Points (alerts, in the order raised) against intervals (the incidents' windows): giving
    each alert the open window that closes first never costs a later alert its match, so
    the pairs are a maximum matching whatever order ``expected`` lists the incidents in.
    """
    alerts = sorted(
        raised, key=lambda a: (a.alert_s, a.behaviour, math.inf if a.started_s is None else a.started_s)
    )
    score = ClipScore(video=video, clip_s=clip_s, alerts=alerts)
    windows = [
        (e.start_s - tolerance_s, (e.end_s if e.end_s is not None else clip_s) + tolerance_s)
        for e in expected
    ]
    closing_first = sorted(range(len(expected)), key=lambda i: (windows[i][1], expected[i].start_s))
    used = [False] * len(expected)
    alert_at: list[float | None] = [None] * len(expected)
    for alert in alerts:
        match = next(
            (
                i
                for i in closing_first
                if not used[i]
                and expected[i].behaviour == alert.behaviour
                and windows[i][0] <= alert.alert_s <= windows[i][1]
            ),
            None,
        )
        score.alert_matches.append(match is not None)
        if match is None:
            score.false_positives.append(alert.behaviour)
        else:
            used[match] = True
            alert_at[match] = alert.alert_s
            score.true_positives.append((alert.behaviour, max(0.0, alert.alert_s - expected[match].start_s)))
    score.missed = [e.behaviour for e, u in zip(expected, used, strict=True) if not u]
    score.incidents = [IncidentResult(e, at) for e, at in zip(expected, alert_at, strict=True)]
    return score


def clip_hints(
    clip: ClipSpec, *, clip_s: float, tolerance_s: float, min_duration_s: Mapping[str, float]
) -> list[str]:
    """Why some of a clip's incidents cannot be alerted, one sentence each.

    Args:
        clip: The clip and its expected incidents.
        clip_s: Seconds actually replayed (``until_s`` or the video's length).
        tolerance_s: The spec's matching slack.
        min_duration_s: Each behaviour the clip's camera runs, with its rule's
            ``min_duration_s`` (0 for rules without one).

    Returns:
        Hints naming the incident, the time it has and the time its rule needs.
    """
    hints = []
    for incident in clip.expected:
        label = f"{clip.video.name}: {incident.behaviour} at {incident.start_s:g} s"
        if incident.behaviour not in min_duration_s:
            hints.append(f"{label}: camera {clip.camera} does not run the {incident.behaviour} rule")
            continue
        needed = min_duration_s[incident.behaviour]
        end = clip_s if incident.end_s is None else min(incident.end_s + tolerance_s, clip_s)
        if incident.start_s + needed > end:
            hints.append(
                f"{label}: the rule's min_duration_s is {needed:g} s on {clip.camera}, but the replay leaves "
                f"{max(0.0, end - incident.start_s):.1f} s to alert (clip, until_s or end_s + tolerance)"
            )
    return hints


@dataclass(frozen=True, slots=True)
class EvalCamera:
    """A site camera that clips are replayed as.

    Attributes:
        workshop_id: Its workshop (written into the events).
        config: Its zones, rules and evidence settings (its ``url`` is not read).
    """

    workshop_id: str
    config: CameraPipelineConfig


def _min_durations(camera: CameraPipelineConfig) -> dict[str, float]:
    """Each behaviour the camera runs, with its rule's ``min_duration_s`` (0 for rules without one)."""
    return {
        name: float(getattr(rule, "min_duration_s", 0.0))
        for name, rule in camera.behaviours
        if rule is not None and rule.enabled
    }


def evaluate_events(
    plan: EventEvalSpec,
    cameras: Mapping[str, EvalCamera],
    detector: Detector,
    *,
    site_id: str,
    time_zone: str,
    on_clip: Callable[[ClipScore], None] | None = None,
) -> list[ClipScore]:
    """Replay every clip of ``plan`` through the full pipeline and score its alerts.

    Each clip plays as its camera, from time 0, up to its ``until_s``; an alert is the
    first revision of an incident, timed by when it was raised (its ``last_seen_at``, the
    confirming frame), with the incident's backdated ``started_at`` kept beside it. Each
    score carries :func:`clip_hints`.

    Args:
        plan: The clips and the incidents each holds (:func:`load_event_spec`).
        cameras: The site's cameras by id.
        detector: The site's detector (``anjian.models.loader.load_detector``).
        site_id: Site id written into the events.
        time_zone: Site time zone, for schedules that name none.
        on_clip: Called with each clip's score as soon as it is known (progress).

    Returns:
        One score per clip, in the spec's order (:func:`summarize` totals them).

    Raises:
        ValueError: A clip names a camera the site does not have (checked before any
            replay), or a clip cannot be replayed (the message names the video).

    Example:
        >>> scores = evaluate_events(load_event_spec(path), cameras, detector, site_id="plant", time_zone="UTC")
        >>> print(render_table(summarize(scores)))
    """
    import io

    from anjian.cameras.errors import CameraError
    from anjian.pipeline.replay import replay_video

    unknown = sorted({clip.camera for clip in plan.clips if clip.camera not in cameras})
    if unknown:
        names = ", ".join(repr(c) for c in unknown)
        raise ValueError(f"no camera {names} among the site's cameras {sorted(cameras)}")
    scores = []
    for clip in plan.clips:
        camera = cameras[clip.camera]
        raised: list[RaisedEvent] = []

        def on_event(event: Event, sink: list[RaisedEvent] = raised) -> None:
            if event.revision == 1:  # published on the frame that confirmed it: that frame's time
                sink.append(RaisedEvent(event.behaviour.value, event.last_seen_at, event.started_at))

        try:
            report = replay_video(
                clip.video,
                camera.config,
                detector,
                io.StringIO(),
                site_id=site_id,
                workshop_id=camera.workshop_id,
                time_zone=time_zone,
                start_at=0.0,
                until_s=clip.until_s,
                on_event=on_event,
            )
        except (CameraError, ValueError) as exc:
            raise ValueError(f"{clip.video}: {exc}") from exc
        score = score_clip(
            str(clip.video), clip.expected, raised, tolerance_s=plan.tolerance_s, clip_s=report.video_s
        )
        score.frames, score.frames_inferred = report.frames, report.frames_inferred
        score.hints = clip_hints(
            clip,
            clip_s=report.video_s,
            tolerance_s=plan.tolerance_s,
            min_duration_s=_min_durations(camera.config),
        )
        score.hints[:0] = report.damage(clip.video)
        scores.append(score)
        if on_clip is not None:
            on_clip(score)
    return scores


@dataclass(frozen=True, slots=True)
class BehaviourScore:
    """Event-level figures of one behaviour over every clip.

    Attributes:
        behaviour: The behaviour (``all`` for the total).
        expected: Incidents expected.
        raised: Alerts raised.
        true_positives: Incidents alerted.
        precision: ``true_positives / raised`` (NaN without alerts).
        recall: ``true_positives / expected`` (NaN without incidents).
        median_time_to_alert_s: Median delay of matched alerts (NaN when none).
        max_time_to_alert_s: Longest delay (NaN when none).
    """

    behaviour: str
    expected: int
    raised: int
    true_positives: int
    precision: float
    recall: float
    median_time_to_alert_s: float
    max_time_to_alert_s: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (NaN as ``None``)."""
        out: dict[str, object] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = None if isinstance(value, float) and math.isnan(value) else value
        return out


def summarize(scores: Sequence[ClipScore]) -> list[BehaviourScore]:
    """Per-behaviour precision, recall and time to alert, then the total (``all``)."""
    behaviours = sorted(
        {b for s in scores for b in [*(t[0] for t in s.true_positives), *s.false_positives, *s.missed]}
    )
    rows = []
    for behaviour in [*behaviours, "all"]:

        def mine(name: str, b: str = behaviour) -> bool:
            return b == "all" or name == b

        delays = [d for s in scores for name, d in s.true_positives if mine(name)]
        tp = len(delays)
        fp = sum(1 for s in scores for name in s.false_positives if mine(name))
        fn = sum(1 for s in scores for name in s.missed if mine(name))
        rows.append(
            BehaviourScore(
                behaviour=behaviour,
                expected=tp + fn,
                raised=tp + fp,
                true_positives=tp,
                precision=tp / (tp + fp) if tp + fp else math.nan,
                recall=tp / (tp + fn) if tp + fn else math.nan,
                median_time_to_alert_s=float(np.median(delays)) if delays else math.nan,
                max_time_to_alert_s=float(np.max(delays)) if delays else math.nan,
            )
        )
    return rows


def _cell(value: float, spec: str, suffix: str = "") -> str:
    """A figure formatted, or an en dash when it is undefined (NaN)."""
    return "–" if math.isnan(value) else f"{value:{spec}}{suffix}"


def render_table(rows: Sequence[BehaviourScore]) -> str:
    """The summary as aligned text: one line per behaviour, dashes for undefined figures."""
    header = (
        f"{'behaviour':20} {'expected':>8} {'raised':>6} {'TP':>4} {'precision':>9} {'recall':>6} "
        f"{'TTA p50':>8} {'TTA max':>8}"
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"{r.behaviour:20} {r.expected:8d} {r.raised:6d} {r.true_positives:4d} "
            f"{_cell(r.precision, '.2f'):>9} {_cell(r.recall, '.2f'):>6} "
            f"{_cell(r.median_time_to_alert_s, '.1f', 's'):>8} {_cell(r.max_time_to_alert_s, '.1f', 's'):>8}"
        )
    return "\n".join(lines)
