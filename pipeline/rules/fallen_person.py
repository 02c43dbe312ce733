"""Fallen person: a person lying on the floor (fallen class and/or box geometry), persisting for seconds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from anjian.cameras.fields import Fraction, ShortDurationOrZeroS
from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.config import Severity, WindowedConfig, WindowK
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.incidents import EventContext, IncidentUpdate
from anjian.pipeline.rules.base import (
    BaseRule,
    ObjectEvidence,
    ObjectState,
    PerObjectConfirmation,
    RuleEnvironment,
    box_iou,
    boxes_of,
    concat,
    normalised,
    observe_objects,
    select,
    track_of,
)
from anjian.pipeline.rules.spec import BehaviourSpec

__all__ = ["SPEC", "FallenPersonConfig", "FallenPersonRule"]


class FallenPersonConfig(WindowedConfig):
    """Fallen person: a lying person (class and/or box geometry), persisting at least ``min_duration_s``."""

    severity: Severity = RiskLevel.RED
    k: WindowK = Field(3, description="Lying frames needed in the window.")
    min_duration_s: ShortDurationOrZeroS = Field(5.0, description="Lying must last this long.")
    fallen_classes: list[str] = Field(["fallen_person"], description="Classes that mean a person lying down.")
    person_classes: list[str] = Field(
        ["person"], description="Upright-person classes, for the geometry check."
    )
    is_geometry: bool = Field(True, description="Also count a person box much wider than tall as lying.")
    lying_aspect_ratio: float = Field(
        1.3, gt=0.5, le=10, description="Width / height at or above which a person box counts as lying."
    )
    is_upright_first: bool = Field(
        False,
        description="Geometry only counts for a track first seen upright (needs tracking); the fallen "
        "class always counts.",
    )
    match_iou: Fraction = Field(
        0.3, description="Box overlap that links a lying person across frames without a track id."
    )
    border_margin_fraction: float = Field(
        0.0,
        ge=0,
        le=0.2,
        description="A person box whose top or bottom edge lies within this fraction of the frame height of "
        "the frame's border is taken as cut off by it (a worker close to the camera shows only head and "
        "shoulders): its height is truncated, so the geometry check skips it and only the fallen class counts. "
        "0 (the default): off. Set it (e.g. 0.01) for a camera at head height beside a workstation; on views "
        "from above it costs real falls, whose lying body reaches the frame's bottom edge (2 of 4 falls anjian-n "
        "2 raises on the UR Fall recordings).",
    )
    upright_memory_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="With is_upright_first: how long a track seen upright is remembered after it was last "
        "seen; keep it above tracking.lost_track_s. A new track that appears on the last box of such a "
        "track, lost within this time, takes over its history (the tracker gives a new id to a person who "
        "drops out of sight as they fall).",
    )


_DUPLICATE_IOU = 0.5  # a person box overlapping a fallen box this much is the same body


@dataclass(slots=True)
class _TrackMemory:
    """What ``is_upright_first`` keeps of one track: when and where it was last seen, and if ever upright."""

    seen_at: float
    xyxy: np.ndarray  # (4,) pixels
    is_upright_first: bool


class FallenPersonRule(BaseRule):
    """Raises ``fallen_person`` for a person lying for at least ``min_duration_s``.

    Evidence per frame, per person: a ``fallen_classes`` detection, or (with
    ``is_geometry``) a person box at least ``lying_aspect_ratio`` times wider than
    tall — optionally only for a track first seen upright (``is_upright_first``,
    which needs tracking; it rejects a sleeping worker already lying when the view
    starts). A person box touching the top or bottom border of the frame (within
    ``border_margin_fraction``) is cut off by it: its height is truncated, so its
    geometry does not count (head and shoulders of a worker close to the camera are
    wider than tall), only the fallen class does. Lying must persist
    ``min_duration_s`` with ``k`` of every ``n`` frames, so a person bending to pick
    something up or a one-frame mis-detection does not raise. People lying in an
    exclusion zone (a bed, a bench) are ignored. One event
    per person, kept through a track id switch by box overlap (the best-overlapping box
    keeps the object: a second, partial box the detector puts on a lying body does not).
    """

    behaviour = Behaviour.FALLEN_PERSON

    def __init__(self, config: FallenPersonConfig, env: RuleEnvironment | EventContext) -> None:
        super().__init__(config, env)
        self.config: FallenPersonConfig = config
        self._objects = PerObjectConfirmation(
            k=config.k, n=config.n, min_duration_s=config.min_duration_s, min_iou=config.match_iou
        )
        self._tracks: dict[int, _TrackMemory] = {}  # is_upright_first only; unseen tracks age out
        self._zones = [z for z in self.env.zones.zones if z.kind != "exclusion"]

    def _candidates(
        self, detections: Detections, now: float, height_px: int
    ) -> tuple[Detections, np.ndarray]:
        cfg = self.config
        fallen = select(detections, cfg.fallen_classes, self.floors(cfg.fallen_classes))
        people = select(detections, cfg.person_classes, self.floors(cfg.person_classes))
        if len(people) and len(fallen):  # one body detected twice: keep the fallen box
            keep = np.array([all(box_iou(p, f) < _DUPLICATE_IOU for f in fallen.xyxy) for p in people.xyxy])
            people = people.filter(keep)
        hits = np.ones(len(fallen), bool)
        if len(people):
            w = people.xyxy[:, 2] - people.xyxy[:, 0]
            h = np.maximum(people.xyxy[:, 3] - people.xyxy[:, 1], 1e-6)
            margin_px = cfg.border_margin_fraction * height_px
            is_cut_off = (people.xyxy[:, 1] <= margin_px) | (people.xyxy[:, 3] >= height_px - margin_px)
            lying = (
                (w / h >= cfg.lying_aspect_ratio) & ~is_cut_off
                if cfg.is_geometry
                else np.zeros(len(people), bool)
            )
            if cfg.is_upright_first:  # without a track there is no history: geometry alone does not count
                tracks = [track_of(people.tracker_id, i) for i in range(len(people))]
                is_upright = w / h < 1.0  # a cut-off box taller than wide is taller still uncut
                lying &= self._remember(now, tracks, people.xyxy, is_upright)
            hits = np.concatenate([hits, lying])
        return concat(fallen, people), hits

    def _remember(
        self, now: float, tracks: list[int | None], xyxy: np.ndarray, is_upright: np.ndarray
    ) -> np.ndarray:
        """Update the track memory with this frame's people; whether each was first seen upright.

        Tracks unseen for ``upright_memory_s`` are forgotten, so the memory holds the
        tracks of the last few seconds, not every track since start. A track new to the
        memory takes over the history of a remembered track that is not seen on this
        frame and whose last box it overlaps (the tracker gave a falling person a new id).
        """
        self._tracks = {
            t: m for t, m in self._tracks.items() if now - m.seen_at <= self.config.upright_memory_s
        }
        out = np.zeros(len(tracks), bool)
        for i, track in enumerate(tracks):
            memory = self._tracks.get(track) if track is not None else None
            if memory is not None:
                memory.seen_at, memory.xyxy = now, xyxy[i]
                memory.is_upright_first |= bool(is_upright[i])
        for i, track in enumerate(tracks):
            if track is None:
                continue
            memory = self._tracks.get(track)
            if memory is None:
                lost = {  # upright-first tracks not seen on this frame, by overlap with this box
                    t: box_iou(m.xyxy, xyxy[i])
                    for t, m in self._tracks.items()
                    if m.is_upright_first and m.seen_at < now
                }
                heir = max(lost, key=lost.__getitem__) if lost and max(lost.values()) > 0 else None
                memory = self._tracks[track] = _TrackMemory(
                    now, xyxy[i], bool(is_upright[i]) or heir is not None
                )
                if heir is not None:
                    del self._tracks[heir]  # one lost track hands its history to one new track
            out[i] = memory.is_upright_first
        return out

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Feed one analysed frame; return the event revisions to publish."""
        now = frame.captured_at
        if not self.is_active(now):
            detections = Detections.empty(detections.class_names)
        wh = frame.resolution_wh
        candidates, hits = self._candidates(detections, now, wh[1])
        points = self.env.zones.anchors_norm(candidates.xyxy, candidates.names(), wh)
        hits &= ~self.env.zones.excluded(points, self.behaviour.value)

        def evidence(state: ObjectState) -> ObjectEvidence:
            i = state.index
            zone_id = next((z.id for z in self._zones if z.contains(points[i : i + 1])[0]), None)
            lying_s = 0.0 if state.since is None else now - state.since
            return ObjectEvidence(
                confidence=float(candidates.confidence[i]),
                boxes=boxes_of(candidates.filter(np.arange(len(candidates)) == i), wh),
                zone_id=zone_id,
                message=self.say("fallen.lying", where=self.where(zone_id), seconds=lying_s),
            )

        states = self._objects.step(now, normalised(candidates, wh), hits, candidates.tracker_id)
        return observe_objects(self.book, self._objects, states, now=now, evidence=evidence)


SPEC = BehaviourSpec(
    key="fallen_person",
    config=FallenPersonConfig,
    rule=FallenPersonRule,
    description="A person lying for seconds.",
    raises=(Behaviour.FALLEN_PERSON,),
    zone_kinds=(),
)
