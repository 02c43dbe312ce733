"""Smoking: a cigarette at a person's upper body (or a direct 'smoking' detection), k of n frames."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from anjian.cameras.fields import Fraction
from anjian.cameras.frame import Frame
from anjian.models.boxes import box_ios_batch, box_iou_batch
from anjian.models.detections import Detections
from anjian.pipeline.config import WindowedConfig, WindowK, WindowN
from anjian.pipeline.event import Behaviour
from anjian.pipeline.incidents import EventContext, IncidentUpdate
from anjian.pipeline.rules.base import (
    BaseRule,
    ObjectEvidence,
    ObjectState,
    PerObjectConfirmation,
    RuleEnvironment,
    boxes_of,
    concat,
    normalised,
    observe_objects,
    select,
)
from anjian.pipeline.rules.spec import BehaviourSpec

__all__ = ["SPEC", "SmokingConfig", "SmokingRule", "upper_body_boxes"]


class SmokingConfig(WindowedConfig):
    """Smoking: a cigarette near a person's upper body (or a direct 'smoking' class), k of n frames."""

    k: WindowK = Field(3, description="Frames with smoking needed in the window.")
    n: WindowN = 6
    default_min_confidence: ClassVar[float] = 0.3
    cigarette_classes: list[str] = Field(["cigarette"], description="Classes that must sit near a person.")
    smoking_classes: list[str] = Field(
        default_factory=list, description="Classes that already mean 'a person smoking' (no person needed)."
    )
    person_classes: list[str] = Field(["person"], min_length=1, description="Classes that are people.")
    upper_body_fraction: Fraction = Field(
        0.6, description="Top fraction of a person box that counts as the upper body."
    )
    margin_fraction: float = Field(
        0.25, ge=0, le=2, description="The upper-body box is widened by this fraction of the person width."
    )
    is_no_smoking_zones_only: bool = Field(
        False, description="Only raise for people standing in zones of kind no_smoking."
    )

    @model_validator(mode="after")
    def _some_class(self) -> SmokingConfig:
        if not self.cigarette_classes and not self.smoking_classes:
            raise ValueError("smoking needs cigarette_classes or smoking_classes")
        return self


def upper_body_boxes(person_xyxy: np.ndarray, upper_fraction: float, margin_fraction: float) -> np.ndarray:
    """The upper-body region of each ``(n, 4)`` person box: its top ``upper_fraction``, widened by the margin."""
    out = person_xyxy.astype(np.float64).copy()
    width = out[:, 2] - out[:, 0]
    out[:, 0] -= width * margin_fraction
    out[:, 2] += width * margin_fraction
    out[:, 1] -= (out[:, 3] - out[:, 1]) * 0.05  # a hand raised just above the head box still counts
    out[:, 3] = person_xyxy[:, 1] + (person_xyxy[:, 3] - person_xyxy[:, 1]) * upper_fraction
    return out


_SAME_BODY_IOU = 0.5  # a smoking box overlapping a person box this much is that person...
_SAME_BODY_IOS = 0.7  # ...as is one lying mostly inside it (intersection over the smaller box)


def _person_of(direct_xyxy: np.ndarray, person_xyxy: np.ndarray) -> np.ndarray:
    """Index of the person each ``(n, 4)`` direct smoking box is on, or -1: the best-overlapping same body."""
    if not len(direct_xyxy) or not len(person_xyxy):
        return np.full(len(direct_xyxy), -1, np.intp)
    iou = box_iou_batch(direct_xyxy, person_xyxy)
    ios = box_ios_batch(direct_xyxy, person_xyxy)
    same = (iou >= _SAME_BODY_IOU) | (ios >= _SAME_BODY_IOS)
    best = np.argmax(np.where(same, iou + ios, -1.0), axis=1)
    return np.where(same.any(axis=1), best, -1)


class SmokingRule(BaseRule):
    """Raises ``smoking`` per person: a cigarette centred in the person's upper body in ``k`` of ``n`` frames.

    A cigarette far from any person (on a table, a false detection on a pen in the
    background) does not count; neither does a person far from any cigarette. A
    ``smoking_classes`` detection (a model trained on "person smoking") counts on its
    own; one on a person's box (IoU at least 0.5, or 70 % of the smaller box inside the
    other) counts for that person, so a model that sees both the cigarette and "smoking" on one worker
    raises one event, not two. People are followed by tracker id, or by box overlap
    without tracking, so one smoker gives one event even through a track id switch. With
    ``is_no_smoking_zones_only`` only people standing in a ``no_smoking`` zone count.
    """

    behaviour = Behaviour.SMOKING

    def __init__(self, config: SmokingConfig, env: RuleEnvironment | EventContext) -> None:
        super().__init__(config, env)
        self.config: SmokingConfig = config
        self._objects = PerObjectConfirmation(k=config.k, n=config.n, min_duration_s=config.min_duration_s)
        self._no_smoking = self.env.zones.of_kind("no_smoking")

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Feed one analysed frame; return the event revisions to publish."""
        now = frame.captured_at
        cfg = self.config
        if not self.is_active(now):
            detections = Detections.empty(detections.class_names)
        people = select(detections, cfg.person_classes, self.floors(cfg.person_classes))
        direct = select(detections, cfg.smoking_classes, self.floors(cfg.smoking_classes))
        cigarettes = select(detections, cfg.cigarette_classes, self.floors(cfg.cigarette_classes))
        on_person = _person_of(direct.xyxy, people.xyxy)
        shown_on: dict[int, int] = {}  # candidate index -> direct smoking box index, shown with the person
        for d, p in enumerate(on_person.tolist()):
            if p >= 0:
                shown_on.setdefault(p, d)
        candidates = concat(people, direct.filter(on_person < 0))
        wh = frame.resolution_wh
        boxes = normalised(candidates, wh)
        hits = np.zeros(len(candidates), bool)
        hits[len(people) :] = True
        hits[list(shown_on)] = True
        holders: dict[int, int] = {}  # candidate index -> cigarette index
        if len(cigarettes) and len(people):
            upper = upper_body_boxes(people.xyxy, cfg.upper_body_fraction, cfg.margin_fraction)
            centres = (cigarettes.xyxy[:, :2] + cigarettes.xyxy[:, 2:]) / 2
            for c, (cx, cy) in enumerate(centres):
                inside = (upper[:, 0] <= cx) & (cx <= upper[:, 2]) & (upper[:, 1] <= cy) & (cy <= upper[:, 3])
                if inside.any():
                    p = int(np.argmax(np.where(inside, people.confidence, -1)))
                    hits[p] = True
                    holders.setdefault(p, c)
        points = self.env.zones.anchors_norm(candidates.xyxy, candidates.names(), wh)
        hits &= ~self.env.zones.excluded(points, self.behaviour.value)
        zone_of: list[str | None] = [None] * len(candidates)
        for zone in self._no_smoking:
            for i in np.flatnonzero(zone.contains(points)).tolist():
                zone_of[i] = zone_of[i] or zone.id
        if cfg.is_no_smoking_zones_only:
            hits &= np.array([z is not None for z in zone_of], bool)

        def evidence(state: ObjectState) -> ObjectEvidence:
            i = state.index
            shown = candidates.filter(np.arange(len(candidates)) == i)
            seen: list[float] = []  # confidence of each piece of evidence the person shows
            if i in holders:
                c = holders[i]
                shown = concat(shown, cigarettes.filter(np.arange(len(cigarettes)) == c))
                seen.append(float(cigarettes.confidence[c]))
            if i in shown_on:
                d = shown_on[i]
                shown = concat(shown, direct.filter(np.arange(len(direct)) == d))
                seen.append(float(direct.confidence[d]))
            confidence = float(candidates.confidence[i])
            confidence = min(confidence, max(seen)) if seen else confidence
            return ObjectEvidence(
                confidence=confidence,
                boxes=boxes_of(shown, wh),
                zone_id=zone_of[i],
                message=self.say("smoking.seen", where=self.where(zone_of[i])),
            )

        states = self._objects.step(now, boxes, hits, candidates.tracker_id)
        return observe_objects(self.book, self._objects, states, now=now, evidence=evidence)


SPEC = BehaviourSpec(
    key="smoking",
    config=SmokingConfig,
    rule=SmokingRule,
    description="Cigarette at a person's upper body.",
    raises=(Behaviour.SMOKING,),
    zone_kinds=("no_smoking",),
)
