"""Uncleaned dust: a dust zone still dirty at the end of its cleaning window, or a dust detection in it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from anjian.cameras.fields import DurationS
from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.config import (
    ClearAfterS,
    ReferenceConfig,
    RuleConfig,
    Severity,
    UpdateIntervalS,
    WindowK,
    WindowN,
)
from anjian.pipeline.event import Behaviour, EventBox, RiskLevel
from anjian.pipeline.incidents import EventContext, IncidentUpdate
from anjian.pipeline.references import ReferenceReading, ZoneReference, small_grey
from anjian.pipeline.rules.base import BaseRule, Confirmation, RuleEnvironment, boxes_of, normalised, select
from anjian.pipeline.rules.spec import BehaviourSpec
from anjian.pipeline.zones import Zone, box_mask

__all__ = ["SPEC", "UncleanedDustConfig", "UncleanedDustRule"]


class UncleanedDustConfig(RuleConfig):
    """Uncleaned dust: a dust zone dirtier than its clean reference after cleaning, or a dust detection."""

    severity: Severity = RiskLevel.YELLOW
    dust_classes: list[str] = Field(["dust"], description="Detector classes that are dust.")
    k: WindowK = Field(3, description="Frames with a dust detection needed in the window.")
    n: WindowN = 5
    is_reference: bool = Field(True, description="Score each zone against its learned clean image.")
    reference: ReferenceConfig = Field(
        default_factory=lambda: ReferenceConfig(adapt_rate=0.0),
        description="Clean-image parameters; adapt_rate 0 so slowly settling dust is not learned as clean "
        "(the reference is refreshed instead at each check that finds the zone clean, when it differs from the "
        "last known-clean image by lighting alone).",
    )
    score_threshold: float = Field(
        0.3, gt=0, le=1, description="Dirtiness (fraction of the zone changed vs clean) that raises."
    )
    cleaning_schedule: str | None = Field(
        None,
        max_length=64,
        description="Schedule of cleaning windows: the score is checked at the end of each. Null: checked "
        "every check_interval_s.",
    )
    check_interval_s: DurationS = Field(600.0, description="Check period without cleaning windows.")
    max_occluded_fraction: float = Field(
        0.5, ge=0, le=1, description="Defer a check while people cover more than this fraction of the zone."
    )
    clear_after_s: ClearAfterS = Field(60.0, description="Resolved after being clean this long.")
    update_interval_s: UpdateIntervalS = 300.0
    zones: list[str] = Field(
        default_factory=list, description="Dust zones to watch; empty: every 'dust' zone."
    )

    def named_schedules(self) -> list[tuple[str, str | None]]:
        """The rule's schedule and its cleaning schedule."""
        return [*super().named_schedules(), ("cleaning_schedule", self.cleaning_schedule)]

    def named_zones(self) -> list[tuple[str, list[str], str]]:
        """The dust zones watched."""
        return [("zones", self.zones, "dust")]


@dataclass(slots=True)
class _DustState:
    zone: Zone
    reference: ZoneReference
    detections: Confirmation
    is_dirty: bool = False
    score: float = 0.0
    is_check_due: bool = False
    last_check_at: float | None = None


class UncleanedDustRule(BaseRule):
    """Raises ``uncleaned_dust`` per dust zone, naming the zone and its dirtiness score.

    Two sources of evidence, one incident per zone:

    - **Reference** (``is_reference``): the *dirtiness score* is the share of the
      zone's visible pixels (people masked out) whose grey level differs from the
      zone's clean reference by more than ``reference.pixel_threshold`` — dust
      darkens or lightens a floor and changes its texture. The score is checked at
      the end of each window of ``cleaning_schedule`` (at the first analysed frame
      after it, or on ``tick`` with the last one), or every ``check_interval_s``
      without a schedule, once the zone is visible and still (nothing moving in
      it); a check finding ``score >= score_threshold`` raises. With a
      cleaning schedule, the first check adopts the just-cleaned zone as the clean
      reference if none was learned; without one it is learned when first seen
      clear and still. While dirty, every frame re-scores the zone; the incident
      resolves once the score stays below the threshold for ``clear_after_s``.
    - **Detections**: a ``dust_classes`` detection anchored in the zone in ``k`` of
      ``n`` frames raises at once (no waiting for the cleaning window).
    """

    behaviour = Behaviour.UNCLEANED_DUST

    def __init__(self, config: UncleanedDustConfig, env: RuleEnvironment | EventContext) -> None:
        super().__init__(config, env)
        self.config: UncleanedDustConfig = config
        self.cleaning = self.env.schedules[config.cleaning_schedule] if config.cleaning_schedule else None
        self._zones = [
            _DustState(zone, ZoneReference(zone, config.reference), Confirmation(k=config.k, n=config.n))
            for zone in self.env.zones.of_kind("dust", config.zones)
        ]
        self.references = {s.zone.id: s.reference for s in self._zones}
        self._last_time: float | None = None
        self._last_grey: np.ndarray | None = None
        self._last_mask: np.ndarray | None = None

    def _schedule_checks(self, now: float) -> None:
        """Mark zones whose check came due between the previous instant and ``now``."""
        previous = self._last_time
        self._last_time = now
        for state in self._zones:
            if self.cleaning is not None:
                if previous is not None and self.cleaning.ends_between(previous, now):
                    state.is_check_due = True
            elif state.last_check_at is None or now - state.last_check_at >= self.config.check_interval_s:
                state.is_check_due = True

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Feed one analysed frame; return the event revisions to publish."""
        now = frame.captured_at
        cfg = self.config
        wh = frame.resolution_wh
        self._schedule_checks(now)
        dust = select(detections, cfg.dust_classes, self.floors(cfg.dust_classes))
        dust_points = self.env.zones.anchors_norm(dust.xyxy, dust.names(), wh)
        if cfg.is_reference:
            grey = small_grey(frame.image, cfg.reference.width_px)
            others = (
                detections.filter(~np.isin(detections.names(), cfg.dust_classes)) if len(detections) else dust
            )
            mask = box_mask(
                normalised(others, wh), (grey.shape[1], grey.shape[0]), cfg.reference.person_margin
            )
            self._last_grey, self._last_mask = grey, mask
        updates: list[IncidentUpdate] = []
        for state in self._zones:
            in_zone = state.zone.contains(dust_points) if len(dust) else np.zeros(0, bool)
            class_hit = self.is_active(now) and bool(in_zone.any())
            class_confirmed = state.detections.update(now, class_hit)
            reading = None
            if cfg.is_reference and self._last_grey is not None:
                is_learning = self.cleaning is None
                reading = self._read(state, self._last_grey, self._last_mask, now, is_learning=is_learning)
            boxes = boxes_of(dust.filter(in_zone), wh) if class_hit else ()
            confidence = float(dust.confidence[in_zone].max()) if class_hit else 0.0
            update = self._observe(state, now, reading, class_hit, class_confirmed, boxes, confidence)
            if update is not None:
                updates.append(update)
        return updates

    def tick(self, now: float) -> list[IncidentUpdate]:
        """No new frame: run due checks on the last analysed frame (the scene has not changed)."""
        if self._last_time is None or self._last_grey is None:
            return []
        self._schedule_checks(now)
        updates = []
        for state in self._zones:
            if not state.is_check_due:
                continue
            reading = self._read(state, self._last_grey, self._last_mask, now, is_learning=False)
            update = self._observe(state, now, reading, False, False, (), 0.0)
            if update is not None:
                updates.append(update)
        return updates

    def _read(
        self, state: _DustState, grey: np.ndarray, mask: np.ndarray | None, now: float, *, is_learning: bool
    ) -> ReferenceReading | None:
        reference = state.reference
        if not reference.is_learned and not is_learning:
            if not (state.is_check_due and self._visible(state, grey, mask)):
                return None
            reference.adopt(grey, now)  # the end of a cleaning window: this is what clean looks like
        is_obstructed = mask is not None and bool(
            (mask & state.zone.mask((grey.shape[1], grey.shape[0]))).any()
        )
        return reference.observe(grey, now, is_obstructed=is_obstructed, masked=mask)

    def _visible(self, state: _DustState, grey: np.ndarray, mask: np.ndarray | None) -> bool:
        if mask is None:
            return True
        zone = state.zone.mask((grey.shape[1], grey.shape[0]))
        return float((zone & mask).sum()) / max(1, int(zone.sum())) <= self.config.max_occluded_fraction

    def _observe(
        self,
        state: _DustState,
        now: float,
        reading: ReferenceReading | None,
        class_hit: bool,
        class_confirmed: bool,
        boxes: tuple[EventBox, ...],
        confidence: float,
    ) -> IncidentUpdate | None:
        cfg = self.config
        can_score = reading is not None and reading.visible_fraction >= 1.0 - cfg.max_occluded_fraction
        if can_score and reading is not None:
            state.score = reading.changed_fraction
            is_over = state.score >= cfg.score_threshold
            # A check waits for a still zone: someone walking past, or a camera adjusting, is not dust.
            if state.is_check_due and reading.is_still:
                state.is_check_due = False
                state.last_check_at = now
                state.is_dirty = is_over and self.is_active(now)
                if state.score < cfg.score_threshold / 2 and self._last_grey is not None:
                    # Follow lighting drift between cleanings, but never learn creeping dust as clean.
                    state.reference.refresh(
                        self._last_grey, now, masked=self._last_mask, max_change=cfg.score_threshold / 2
                    )
            elif state.is_dirty:
                state.is_dirty = is_over  # cleaned since the check
        is_open = self.book.is_open(state.zone.id)
        score_hit = state.is_dirty
        if score_hit and reading is not None and reading.changed_xyxy_norm is not None:
            boxes = (*boxes, EventBox("dust", round(state.score, 4), reading.changed_xyxy_norm))
        why = self.say("dust.detected" if class_hit and not score_hit else "dust.overdue")
        update = self.book.observe(
            state.zone.id,
            now=now,
            is_confirmed=class_confirmed or score_hit,
            is_present=class_hit or score_hit or (is_open and not can_score and state.is_dirty),
            confidence=max(confidence, min(1.0, state.score) if score_hit else 0.0),
            boxes=boxes,
            zone_id=state.zone.id,
            message=self.say("dust.dirty", zone=state.zone.label, why=why, score=state.score),
        )
        if update is not None and not self.book.is_open(state.zone.id):
            state.detections.reset()
            state.is_dirty = False
        return update


SPEC = BehaviourSpec(
    key="uncleaned_dust",
    config=UncleanedDustConfig,
    rule=UncleanedDustRule,
    description="Dust zone dirty after cleaning.",
    raises=(Behaviour.UNCLEANED_DUST,),
    zone_kinds=("dust",),
)
