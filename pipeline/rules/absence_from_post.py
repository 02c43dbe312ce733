"""Absence from post (and overcrowding): a post zone's head count out of bounds for too long."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from anjian.cameras.fields import ShortDurationOrZeroS
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

__all__ = [
    "SPEC",
    "Absence",
    "AbsenceFromPostConfig",
    "AbsenceFromPostRule",
    "OutOfBounds",
    "PostConfig",
    "post_keys",
]


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
    restored_after_s: ShortDurationOrZeroS = Field(
        3.0,
        description="The count must be back in bounds this long to end an incident or restart the timer "
        "(a person missed on one frame, or a passer-by, changes nothing).",
    )
    clear_after_s: ClearAfterS = Field(
        0.1, description="Unused by this rule: restored_after_s decides when an incident ends."
    )
    update_interval_s: UpdateIntervalS = 60.0
    posts: list[PostConfig] = Field(
        default_factory=list,
        description="Posts to watch (a zone may have several, e.g. one per shift schedule); empty: every "
        "'post' zone with min_people 1.",
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

    A spell starts on the first frame out of bounds and lasts only while the over-count
    dominates it. It ends once the count has been back in bounds for
    ``restored_after_s`` without a break, so a person missed on one frame, or someone
    passing through, changes nothing. It also ends as soon as the count has been in
    bounds for longer, in total, than out of bounds since the spell began: a duplicate
    box on one frame in ten never leaves ``restored_after_s`` clear, but it cannot keep
    the spell alive either, so ``min_duration_s`` is only reached by an over-count seen
    most of that time. Time is weighted, not frames: each count holds until the next
    frame or tick, so ticks between frames do not tip the balance.
    """

    restored_after_s: float
    since: float | None = None
    restored_since: float | None = None
    out_s: float = 0.0
    """Time out of bounds since ``since``."""
    in_s: float = 0.0
    """Time back in bounds since ``since``."""
    last_at: float | None = None
    """When the count was last fed."""
    was_out: bool = False
    """Whether it was out of bounds then."""

    def update(self, now: float, is_out: bool) -> bool:
        """Feed whether the count is out of bounds at ``now``; return whether the spell goes on."""
        if self.since is not None and self.last_at is not None:
            held_s = max(0.0, now - self.last_at)  # the previous count held until now
            if self.was_out:
                self.out_s += held_s
            else:
                self.in_s += held_s
        self.last_at, self.was_out = now, is_out
        if is_out:
            self.restored_since = None
            if self.since is None:
                self.since = now
                self.out_s = self.in_s = 0.0
        elif self.since is not None:
            if self.restored_since is None:
                self.restored_since = now
            if now - self.restored_since >= self.restored_after_s or self.in_s > self.out_s:
                self.reset()
        return self.since is not None

    def reset(self) -> None:
        """End any spell (the post's schedule is off)."""
        self.since = self.restored_since = self.last_at = None
        self.out_s = self.in_s = 0.0
        self.was_out = False


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
    key: str
    """The post's incident key (see ``post_keys``)."""
    post: PostConfig
    zone: Zone
    schedule: Schedule | None
    under: Absence
    over: OutOfBounds
    count: int | None = None
    boxes: tuple[EventBox, ...] = field(default=())


def post_keys(posts: Sequence[PostConfig]) -> list[str]:
    """The incident key of each post: its zone id, or ``zone#index`` when posts share the zone.

    A zone watched by one post keeps the plain zone id, the key earlier versions used,
    so its incident still resumes after an upgrade (``IncidentJournal`` matches by key).
    Posts sharing a zone (day and night staffing) need keys of their own; ``index`` is
    the post's place in ``posts``, stable as long as the config is.

    Example:
        >>> post_keys([PostConfig(zone="desk"), PostConfig(zone="desk"), PostConfig(zone="gate")])
        ['desk#0', 'desk#1', 'gate']
    """
    per_zone = Counter(post.zone for post in posts)
    return [post.zone if per_zone[post.zone] == 1 else f"{post.zone}#{i}" for i, post in enumerate(posts)]


class AbsenceFromPostRule(BaseRule):
    """Raises ``absence_from_post`` when a post has fewer than ``min_people`` for ``min_duration_s``.

    People count when their anchor (bottom-centre: their feet) is in the post zone.
    The count is checked only inside the post's schedule (its own, else the rule's);
    at the schedule's end an open incident ends. The incident ends once the post has
    been staffed again for ``restored_after_s``. The same machinery raises
    ``overcrowding`` (severity ``overcrowding_severity``) when a post with
    ``max_people`` holds more people than that for ``min_duration_s`` (the over-count
    must dominate that time: see ``OutOfBounds``).

    Each post has its own incidents (keyed by ``post_keys``) with the post's zone as
    their ``zone_id``, so two posts on one zone (2 people by day, 1 at night) do not
    end each other's incidents. A resumed incident (``IncidentJournal``) whose post is
    no longer configured (a post removed, or its zone split into several posts) ends
    as soon as the rule runs.

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
                key,
                post,
                self.env.zones.by_id[post.zone],
                self.env.schedules[post.schedule] if post.schedule else self.schedule,
                Absence(config.restored_after_s),
                OutOfBounds(config.restored_after_s),
            )
            for key, post in zip(post_keys(posts), posts, strict=True)
        ]
        self._keys = frozenset(state.key for state in self._posts)

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
            key = state.key
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
        for book in (absence, crowding):  # resumed incidents of a post no longer configured
            updates += book.sweep(now, keep=self._keys)
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
            state.key,
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
