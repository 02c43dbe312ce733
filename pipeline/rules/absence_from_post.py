"""Absence from post (and overcrowding): a post zone's head count out of bounds for too long."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.config import (
    ClearAfterS,
    MinDurationS,
    PipelineModel,
    RuleConfig,
    Severity,
    UpdateIntervalS,
)
from anjian.pipeline.event import Behaviour, EventBox, RiskLevel
from anjian.pipeline.incidents import EventContext, IncidentBook, IncidentUpdate
from anjian.pipeline.rules.base import BaseRule, RuleEnvironment, boxes_of, select
from anjian.pipeline.rules.spec import BehaviourSpec
from anjian.pipeline.schedule import Schedule
from anjian.pipeline.zones import Zone

__all__ = ["SPEC", "Absence", "AbsenceFromPostConfig", "AbsenceFromPostRule", "OutOfBounds", "PostConfig"]


class PostConfig(PipelineModel):
    """One staffed post (or a room with a head-count limit)."""

    zone: str = Field(..., min_length=1, max_length=64, description="Zone id of the post.")
    min_people: int = Field(1, ge=0, le=1000, description="Fewer people than this for too long: absence.")
    max_people: int | None = Field(
        None, ge=0, le=10_000, description="More than this for too long: overcrowding."
    )
    schedule: str | None = Field(
        None, max_length=64, description="When the post must be staffed; null: always."
    )

    @model_validator(mode="after")
    def _bounds(self) -> PostConfig:
        if self.max_people is not None and self.max_people < self.min_people:
            raise ValueError(f"max_people ({self.max_people}) must be >= min_people ({self.min_people})")
        return self


class AbsenceFromPostConfig(RuleConfig):
    """Absence from post (and its twin, overcrowding): the head count of a zone out of bounds for too long."""

    severity: Severity = Field(RiskLevel.YELLOW, description="Risk colour of absence events.")
    overcrowding_severity: Severity = Field(
        RiskLevel.ORANGE, description="Risk colour of overcrowding events."
    )
    person_classes: list[str] = Field(["person"], min_length=1, description="Classes counted as people.")
    default_min_confidence: ClassVar[float] = 0.4
    min_duration_s: MinDurationS = Field(300.0, description="Out of bounds this long before raising.")
    restored_after_s: float = Field(
        3.0,
        ge=0,
        le=3600,
        description="The count must be back in bounds this long to end an incident or restart the timer "
        "(a person missed on one frame, or a passer-by, changes nothing).",
    )
    clear_after_s: ClearAfterS = Field(
        0.1, description="Unused by this rule: restored_after_s decides when an incident ends."
    )
    update_interval_s: UpdateIntervalS = 60.0
    posts: list[PostConfig] = Field(
        default_factory=list, description="Posts to watch; empty: every 'post' zone with min_people 1."
    )

    def named_schedules(self) -> list[tuple[str, str | None]]:
        """The rule's schedule and each post's."""
        posts = [(f"posts[{post.zone}].schedule", post.schedule) for post in self.posts]
        return [*super().named_schedules(), *posts]

    def named_zones(self) -> list[tuple[str, list[str], str]]:
        """The posts' zones (any kind)."""
        return [("posts", [post.zone for post in self.posts], "")]


@dataclass(slots=True)
class OutOfBounds:
    """Hysteresis on a head count: out of bounds since when, and back in bounds since when.

    The count must be back in bounds for ``restored_after_s`` before the spell ends, so
    a person missed on one frame, or someone passing through, changes nothing.
    """

    restored_after_s: float
    since: float | None = None
    restored_since: float | None = None

    def update(self, now: float, is_out: bool) -> bool:
        """Feed whether the count is out of bounds at ``now``; return whether the spell goes on."""
        if is_out:
            self.restored_since = None
            if self.since is None:
                self.since = now
        elif self.since is not None:
            if self.restored_since is None:
                self.restored_since = now
            if now - self.restored_since >= self.restored_after_s:
                self.since = self.restored_since = None
        return self.since is not None

    def reset(self) -> None:
        """End any spell (the post's schedule is off)."""
        self.since = self.restored_since = None


@dataclass(slots=True)
class Absence:
    """When a post has been unstaffed since, and when it has been staffed again since.

    Any staffed frame restarts the absence timer (a flickering detection of a person
    who is there never adds up to an absence). An absence already raised ends only
    once the post has been staffed for ``restored_after_s`` (misses shorter than that
    tolerated), so a passer-by does not end it.
    """

    restored_after_s: float
    since: float | None = None
    staffed_since: float | None = None
    last_staffed_at: float | None = None

    def update(self, now: float, is_staffed: bool, *, is_raised: bool) -> bool:
        """Feed whether the post is staffed at ``now``; return whether the absence goes on."""
        if not is_staffed:
            if self.since is None:
                self.since = now
            return True
        if self.staffed_since is None or (
            self.last_staffed_at is not None and now - self.last_staffed_at > self.restored_after_s
        ):
            self.staffed_since = now
        self.last_staffed_at = now
        if is_raised and now - self.staffed_since < self.restored_after_s:
            return True
        self.since = None
        return False

    def reset(self) -> None:
        """Forget the spell (the post's schedule is off)."""
        self.since = self.staffed_since = self.last_staffed_at = None


@dataclass(slots=True)
class _PostState:
    post: PostConfig
    zone: Zone
    schedule: Schedule | None
    under: Absence
    over: OutOfBounds
    count: int | None = None
    boxes: tuple[EventBox, ...] = field(default=())


class AbsenceFromPostRule(BaseRule):
    """Raises ``absence_from_post`` when a post has fewer than ``min_people`` for ``min_duration_s``.

    People count when their anchor (bottom-centre: their feet) is in the post zone.
    The count is checked only inside the post's schedule (its own, else the rule's);
    at the schedule's end an open incident ends. The incident ends once the post has
    been staffed again for ``restored_after_s``. The same machinery raises
    ``overcrowding`` (severity ``overcrowding_severity``) when a post with
    ``max_people`` holds more people than that for ``min_duration_s``.

    ``tick`` advances time without frames: a motion-gated camera sends none while the
    room is still, so the last count stands. Call it only while the camera is alive
    (an offline camera is a camera fault, not an absence).
    """

    behaviour = Behaviour.ABSENCE_FROM_POST

    def __init__(self, config: AbsenceFromPostConfig, env: RuleEnvironment | EventContext) -> None:
        super().__init__(config, env)
        self.config: AbsenceFromPostConfig = config
        self.books[Behaviour.OVERCROWDING] = self._new_book(
            Behaviour.OVERCROWDING, config.overcrowding_severity
        )
        posts = config.posts or [PostConfig(zone=z.id) for z in self.env.zones.of_kind("post")]
        self._posts = [
            _PostState(
                post,
                self.env.zones.by_id[post.zone],
                self.env.schedules[post.schedule] if post.schedule else self.schedule,
                Absence(config.restored_after_s),
                OutOfBounds(config.restored_after_s),
            )
            for post in posts
        ]

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Count people per post on one analysed frame; return the event revisions to publish."""
        wh = frame.resolution_wh
        people = select(detections, self.config.person_classes, self.floors(self.config.person_classes))
        points = self.env.zones.anchors_norm(people.xyxy, people.names(), wh)
        for state in self._posts:
            inside = state.zone.contains(points) if len(people) else np.zeros(0, bool)
            state.count = int(inside.sum())
            state.boxes = boxes_of(people.filter(inside), wh) if len(people) else ()
        return self.tick(frame.captured_at)

    def tick(self, now: float) -> list[IncidentUpdate]:
        """Re-evaluate every post at ``now`` with its last count."""
        updates: list[IncidentUpdate] = []
        absence, crowding = self.books[Behaviour.ABSENCE_FROM_POST], self.books[Behaviour.OVERCROWDING]
        for state in self._posts:
            if state.count is None:
                continue  # no frame yet: nothing is known
            post = state.post
            is_on = state.schedule is None or state.schedule.is_active(now)
            if not is_on:
                state.under.reset()
                state.over.reset()
            key = state.zone.id
            is_absent = is_on and state.under.update(
                now, state.count >= post.min_people, is_raised=absence.is_open(key)
            )
            is_crowded = is_on and state.over.update(
                now, post.max_people is not None and state.count > post.max_people
            )
            for book, is_spell, since, need in (
                (absence, is_absent, state.under.since, post.min_people),
                (crowding, is_crowded, state.over.since, post.max_people),
            ):
                update = self._observe(book, state, now, is_spell, since, need)
                if update is not None:
                    updates.append(update)
        return updates

    def _observe(
        self,
        book: IncidentBook,
        state: _PostState,
        now: float,
        is_spell: bool,
        since: float | None,
        need: int | None,
    ) -> IncidentUpdate | None:
        duration = 0.0 if since is None else now - since
        if book.behaviour is Behaviour.ABSENCE_FROM_POST:
            message = self.say(
                "absence.unstaffed", zone=state.zone.label, count=state.count, need=need, seconds=duration
            )
            if need is not None and state.count is not None and state.count >= need:
                message = self.say("absence.staffed", zone=state.zone.label, seconds=duration)
            boxes: tuple[EventBox, ...] = ()
        else:
            message = self.say(
                "absence.crowded", zone=state.zone.label, count=state.count, need=need, seconds=duration
            )
            boxes = state.boxes
        return book.observe(
            state.zone.id,
            now=now,
            is_confirmed=is_spell and duration >= self.config.min_duration_s,
            is_present=is_spell,
            confidence=1.0,
            boxes=boxes,
            started_at=since,
            zone_id=state.zone.id,
            message=message,
        )


SPEC = BehaviourSpec(
    key="absence_from_post",
    config=AbsenceFromPostConfig,
    rule=AbsenceFromPostRule,
    description="Post head count out of bounds.",
    raises=(Behaviour.ABSENCE_FROM_POST, Behaviour.OVERCROWDING),
    zone_kinds=("post",),
)
