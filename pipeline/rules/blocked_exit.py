"""Blocked exit: an exit zone occupied over a fraction of its area, by anything but people, for minutes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from anjian.cameras.fields import Fraction, ShortDurationOrZeroS
from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.config import ClearAfterS, MinDurationS, ReferenceConfig, RuleConfig, UpdateIntervalS
from anjian.pipeline.event import Behaviour, EventBox
from anjian.pipeline.incidents import EventContext, IncidentUpdate
from anjian.pipeline.references import ZoneReference, small_grey
from anjian.pipeline.rules.base import BaseRule, Confirmation, RuleEnvironment, boxes_of, normalised, select
from anjian.pipeline.rules.spec import BehaviourSpec
from anjian.pipeline.zones import Zone, box_mask

__all__ = ["SPEC", "BlockedExitConfig", "BlockedExitRule"]


class BlockedExitConfig(RuleConfig):
    """Blocked exit: an exit zone occupied over a fraction of its area for at least ``min_duration_s``."""

    obstacle_classes: list[str] = Field(
        ["pallet", "forklift", "box", "cart"], description="Classes that obstruct (a person never does)."
    )
    person_classes: list[str] = Field(
        ["person"], description="Classes masked out of the reference comparison."
    )
    min_occupied_fraction: Fraction = Field(
        0.3, description="Fraction of the zone covered by obstacles that counts as blocked."
    )
    min_duration_s: MinDurationS = Field(120.0, description="Blocked this long before raising.")
    max_gap_s: ShortDurationOrZeroS = Field(
        10.0, description="A clear spell shorter than this does not restart the duration."
    )
    is_reference: bool = Field(
        True, description="Also compare the zone with its learned 'clear' image (finds unknown objects)."
    )
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    clear_after_s: ClearAfterS = Field(30.0, description="The incident ends after this long clear.")
    update_interval_s: UpdateIntervalS = 60.0
    zones: list[str] = Field(
        default_factory=list, description="Exit zones to watch; empty: every 'exit' zone."
    )

    def named_zones(self) -> list[tuple[str, list[str], str]]:
        """The exit zones watched."""
        return [("zones", self.zones, "exit")]


@dataclass(slots=True)
class _ExitState:
    zone: Zone
    reference: ZoneReference
    confirmation: Confirmation
    last_occupied: float = 0.0
    last_boxes: tuple[EventBox, ...] = ()
    last_confidence: float = 0.0
    has_frame: bool = False


class BlockedExitRule(BaseRule):
    """Raises ``blocked_exit`` per exit zone occupied over ``min_occupied_fraction`` for ``min_duration_s``.

    Occupancy on a frame is the larger of: the share of the zone covered by
    ``obstacle_classes`` boxes, and (with ``is_reference``) the share of the zone's
    visible pixels that differ from its learned "clear" image, people masked out —
    which finds obstacles the model has no class for. People never count: a person
    walking through is masked. A clear spell shorter than ``max_gap_s`` (a worker
    standing in front of the pallet) does not restart the duration. The reference is
    learned automatically (see ``anjian.pipeline.references``) and reset with
    ``reset_reference``. ``tick`` keeps the duration running while a motion-gated
    camera sends no frames (nothing moved, so the obstacle is still there); while the
    camera is down (``expire``) nothing shows an exit blocked, so each counts as clear.
    """

    behaviour = Behaviour.BLOCKED_EXIT

    def __init__(self, config: BlockedExitConfig, env: RuleEnvironment | EventContext) -> None:
        super().__init__(config, env)
        self.config: BlockedExitConfig = config
        self._exits = [
            _ExitState(
                zone,
                ZoneReference(zone, config.reference),
                Confirmation(min_duration_s=config.min_duration_s, max_gap_s=config.max_gap_s),
            )
            for zone in self.env.zones.of_kind("exit", config.zones)
        ]
        self.references = {s.zone.id: s.reference for s in self._exits}
        self.book.notify_closed(self._forget)

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Feed one analysed frame; return the event revisions to publish."""
        now = frame.captured_at
        cfg = self.config
        wh = frame.resolution_wh
        obstacles = select(detections, cfg.obstacle_classes, self.floors(cfg.obstacle_classes))
        obstacle_boxes = normalised(obstacles, wh)
        people = select(detections, cfg.person_classes, 0.2)
        every_box = normalised(detections, wh)
        grey = small_grey(frame.image, cfg.reference.width_px) if cfg.is_reference else None
        people_mask = None
        if grey is not None and len(people):
            people_mask = box_mask(
                normalised(people, wh), (grey.shape[1], grey.shape[0]), cfg.reference.person_margin
            )
        updates: list[IncidentUpdate] = []
        for state in self._exits:
            zone = state.zone
            coverage = zone.coverage(obstacle_boxes)
            in_zone = np.array([zone.coverage(b[None]) > 0 for b in obstacle_boxes], bool)
            boxes = boxes_of(obstacles.filter(in_zone), wh) if len(obstacles) else ()
            confidence = float(obstacles.confidence[in_zone].max()) if in_zone.any() else 0.0
            occupied = coverage
            if grey is not None:
                reading = state.reference.observe(
                    grey, now, is_obstructed=zone.coverage(every_box) > 0, masked=people_mask
                )
                if reading is not None and reading.changed_fraction > occupied:
                    occupied = reading.changed_fraction
                    if reading.changed_xyxy_norm is not None:
                        boxes = (
                            *boxes,
                            EventBox("obstruction", round(occupied, 4), reading.changed_xyxy_norm),
                        )
                    confidence = max(confidence, min(1.0, occupied))
            state.last_occupied, state.last_boxes, state.last_confidence = occupied, boxes, confidence
            state.has_frame = True
            update = self._observe(state, now)
            if update is not None:
                updates.append(update)
        return updates

    def tick(self, now: float) -> list[IncidentUpdate]:
        """No new frame: the scene is unchanged since the last one, so each exit keeps its last occupancy."""
        return [u for s in self._exits if s.has_frame and (u := self._observe(s, now))]

    def expire(self, now: float) -> list[IncidentUpdate]:
        """The camera sends nothing (it is down): each exit counts as clear until the next frame.

        A blockage not yet raised thus survives an outage shorter than ``max_gap_s``, like
        any clear spell, and is timed afresh after a longer one; an open incident ends at
        its last sighting once unseen for ``clear_after_s`` (``IncidentBook.expire``).
        """
        for state in self._exits:
            state.has_frame = False  # ticks feed no occupancy from before the outage
            state.confirmation.update(now, False)
        return self._expire_books(now)

    def _observe(self, state: _ExitState, now: float) -> IncidentUpdate | None:
        is_hit = self.is_active(now) and state.last_occupied >= self.config.min_occupied_fraction
        is_confirmed = state.confirmation.update(now, is_hit)
        since = state.confirmation.since
        blocked_s = 0.0 if since is None else now - since
        return self.book.observe(
            state.zone.id,
            now=now,
            is_confirmed=is_confirmed,
            is_present=is_hit,
            confidence=state.last_confidence if is_hit else 0.0,
            boxes=state.last_boxes if is_hit else (),
            started_at=since,
            zone_id=state.zone.id,
            message=self.say(
                "exit.blocked", zone=state.zone.label, share=state.last_occupied, seconds=blocked_s
            ),
        )

    def _forget(self, zone_id: str) -> None:
        """The exit's incident closed (a frame, ``expire``): the next one needs a fresh confirmation."""
        for state in self._exits:
            if state.zone.id == zone_id:
                state.confirmation.reset()


SPEC = BehaviourSpec(
    key="blocked_exit",
    config=BlockedExitConfig,
    rule=BlockedExitRule,
    description="Exit zone obstructed for minutes.",
    raises=(Behaviour.BLOCKED_EXIT,),
    zone_kinds=("exit",),
)
