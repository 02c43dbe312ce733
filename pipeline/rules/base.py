"""What every behaviour rule looks like to the analyzer, and the machinery rules share.

Shared pieces:

- ``RuleEnvironment``: the camera-wide things a rule needs (event context, zones with
  their anchors, named schedules).
- ``BaseRule``: one ``IncidentBook`` per event kind, the rule's schedule, ``tick``,
  ``expire``, ``close`` and ``amend``.
- ``Confirmation``: k-of-n frames plus a minimum duration with tolerated gaps.
- ``ObjectMatcher``: follows one object across frames by tracker id, falling back to
  box overlap when tracking is off or a track id switches.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from anjian.cameras.frame import Frame
from anjian.models.boxes import box_iou, box_iou_batch
from anjian.models.detections import Detections
from anjian.pipeline.config import RuleConfig
from anjian.pipeline.event import Behaviour, Event, EventBox, RiskLevel
from anjian.pipeline.incidents import CLOCK_STEP_S, EventContext, IncidentBook, IncidentUpdate
from anjian.pipeline.messages import text
from anjian.pipeline.references import ZoneReference
from anjian.pipeline.schedule import Schedule
from anjian.pipeline.zones import ZoneSet

__all__ = [
    "BaseRule",
    "Confirmation",
    "ObjectEvidence",
    "ObjectMatcher",
    "ObjectState",
    "PerObjectConfirmation",
    "Rule",
    "RuleEnvironment",
    "box_iou",
    "boxes_of",
    "concat",
    "normalised",
    "observe_object",
    "observe_objects",
    "region_mean",
    "select",
    "sweep_closed",
    "track_of",
]


class Rule(Protocol):
    """A behaviour rule for one camera: sees each analysed frame, returns event revisions.

    Not thread-safe: the analyzer calls ``process``, ``tick``, ``amend`` and ``close``
    from one thread.
    """

    behaviour: Behaviour

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Update the rule's state with one frame and return the revisions to publish."""
        ...

    def tick(self, now: float) -> list[IncidentUpdate]:
        """Advance time without a frame (motion-gated camera); return revisions to publish."""
        ...

    def expire(self, now: float) -> list[IncidentUpdate]:
        """The camera sends no frames (it is down): end the incidents nothing keeps alive."""
        ...

    def amend(self, event_id: str, **changes: object) -> Event | None:
        """One more revision of one of this rule's incidents, carrying ``changes``; ``None`` if unknown."""
        ...

    def close(self, now: float) -> list[IncidentUpdate]:
        """Close every open incident (camera removed, pipeline stopping)."""
        ...


@dataclass(frozen=True)
class RuleEnvironment:
    """Camera-wide inputs of every rule.

    Attributes:
        context: Site, workshop, camera, model and time zone of the events.
        zones: The camera's zones and anchors.
        schedules: Named schedules of the camera, in the site's time zone by default.
        class_thresholds: The running model's calibrated score per class name (its
            metadata); rules whose ``min_confidence`` is unset use them.
    """

    context: EventContext
    zones: ZoneSet = field(default_factory=lambda: ZoneSet([]))
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    class_thresholds: Mapping[str, float] = field(default_factory=dict)


def boxes_of(detections: Detections, resolution_wh: tuple[int, int]) -> tuple[EventBox, ...]:
    """Convert detections to event boxes normalised to the frame size."""
    w, h = resolution_wh
    return tuple(
        EventBox(
            class_name=name,
            confidence=round(float(conf), 4),
            xyxy_norm=(
                round(float(box[0]) / w, 5),
                round(float(box[1]) / h, 5),
                round(float(box[2]) / w, 5),
                round(float(box[3]) / h, 5),
            ),
        )
        for box, conf, name in zip(detections.xyxy, detections.confidence, detections.names(), strict=True)
    )


def select(
    detections: Detections, classes: Iterable[str], min_confidence: float | Mapping[str, float]
) -> Detections:
    """Detections of ``classes`` scoring at least ``min_confidence`` (one score, or one per class name)."""
    chosen = detections.with_classes(frozenset(classes))
    if not len(chosen):
        return chosen
    if isinstance(min_confidence, Mapping):
        floors = np.array([min_confidence[name] for name in chosen.names()], np.float32)
        return chosen.filter(chosen.confidence >= floors)
    return chosen.filter(chosen.confidence >= min_confidence)


def normalised(detections: Detections, resolution_wh: tuple[int, int]) -> np.ndarray:
    """``(n, 4) float64`` boxes normalised to the frame size."""
    w, h = resolution_wh
    return detections.xyxy.astype(np.float64) / [w, h, w, h]


def region_mean(image: object, xyxy_px: np.ndarray) -> float:
    """Mean grey level (0-255) of a pixel box of an ``(h, w, 3)`` image (numpy, or a GPU tensor cropped there)."""
    h, w = int(image.shape[0]), int(image.shape[1])  # type: ignore[attr-defined]
    x1, y1 = max(0, int(xyxy_px[0])), max(0, int(xyxy_px[1]))
    x2, y2 = min(w, max(x1 + 1, int(np.ceil(xyxy_px[2])))), min(h, max(y1 + 1, int(np.ceil(xyxy_px[3]))))
    crop = image[y1:y2, x1:x2]  # type: ignore[index]
    if isinstance(crop, np.ndarray):
        return float(crop.mean()) if crop.size else 0.0
    return float(crop.float().mean().item())


def track_of(tracker_ids: np.ndarray | None, index: int) -> int | None:
    """Track id of detection ``index``, or ``None`` when untracked (no ids, or the tracker's ``-1``)."""
    if tracker_ids is None or tracker_ids[index] < 0:
        return None
    return int(tracker_ids[index])


class Confirmation:
    """Decides when a per-frame condition is confirmed: ``k`` of the last ``n`` frames, for ``min_duration_s``.

    The duration runs from the first to the latest hit of the current spell. Without
    ``max_gap_s`` a spell is a run of frames whose every window of ``n`` holds ``k`` hits:
    it starts at the first hit of its first such window and ends as soon as the window
    holds fewer, so a long flicker (one hit in four) never adds up to ``min_duration_s``
    and three hits after it are timed from their own start. With ``max_gap_s`` a spell
    also survives misses (a worker standing in front of a pallet) and ends only once a
    clear spell lasts longer than that, timed from the last hit to a miss: two hits in a
    row never end it, however long the frame interval.

    Example:
        >>> c = Confirmation(k=2, n=3)
        >>> [c.update(t, hit) for t, hit in [(0, True), (1, False), (2, True)]]
        [False, False, True]
    """

    def __init__(
        self, *, k: int = 1, n: int = 1, min_duration_s: float = 0.0, max_gap_s: float = float("inf")
    ):
        if not 1 <= k <= n:
            raise ValueError(f"expected 1 <= k <= n, got k={k}, n={n}")
        self.k, self.n = k, n
        self.min_duration_s = min_duration_s
        self.max_gap_s = max_gap_s
        self._window: deque[tuple[float, bool]] = deque(maxlen=n)  # (time, hit) of the last n frames
        self.since: float | None = None
        self.last_hit: float | None = None

    @property
    def hits(self) -> int:
        """Hits in the current window."""
        return sum(hit for _, hit in self._window)

    def update(self, now: float, is_hit: bool) -> bool:
        """Feed one frame's condition at ``now``; return whether it is confirmed."""
        if self._window and now - self._window[-1][0] < -CLOCK_STEP_S:
            self._restart()  # the clock went back: the spell is timed afresh
        elif not is_hit and self.last_hit is not None and now - self.last_hit > self.max_gap_s:
            self._restart()  # clear for longer than max_gap_s: the spell is over
        self._window.append((now, is_hit))
        if is_hit:
            self.last_hit = now
        if self.hits >= self.k:
            if self.since is None:
                self.since = next(t for t, hit in self._window if hit)
        elif self.max_gap_s == float("inf"):
            self.since = None  # fewer than k of n: the run is broken (gap-tolerant spells end by gap)
        return self.is_confirmed(now)

    def is_confirmed(self, now: float) -> bool:
        """Whether the condition holds at ``now`` (without feeding a frame)."""
        if self.since is None or self.last_hit is None or self.hits < self.k:
            return False
        return self.last_hit - self.since >= self.min_duration_s  # seen over that span, not merely remembered

    def reset(self) -> None:
        """Forget everything (after an incident closes: the next one needs a fresh confirmation)."""
        self._restart()
        self.last_hit = None

    def _restart(self) -> None:
        """End the spell: the window and its start are forgotten."""
        self._window.clear()
        self.since = None


class ObjectMatcher:
    """Gives each object a stable key across frames: its tracker id, or box overlap when ids are absent or switch.

    Keys carry a token of this matcher (``obj0@1f2e3d4c``, ``track7@1f2e3d4c``), so those of
    another run (a restart, a rebuilt rule) never name the same object: an incident
    resumed from the journal is reached only by zone (``IncidentBook._adopt``), never
    by a new object that happens to get its old key.

    Args:
        min_iou: Overlap with an object's last box that makes a box the same object.
        forget_after_s: Objects unseen this long are forgotten, unless ``is_held`` says
            their key is still needed.
    """

    def __init__(self, *, min_iou: float = 0.3, forget_after_s: float = 30.0) -> None:
        self.min_iou = min_iou
        self.forget_after_s = forget_after_s
        self.is_held: Callable[[str], bool] = lambda key: False
        """Keys never forgotten while this holds (an open incident: the object may come back to it)."""
        self._objects: dict[str, tuple[np.ndarray, float, int | None]] = {}
        self._next = 0
        self._run = secrets.token_hex(4)

    def match(self, xyxy_norm: np.ndarray, tracker_ids: np.ndarray | None, now: float) -> list[str]:
        """Key of each normalised box (a new key for a new object).

        A box keeps its track's object; the others take objects by overlap, the best-overlapping
        pairs first, so a second box that grazes an object (a detector's partial box on a body)
        cannot take it from the box that covers it, whatever order the boxes come in.
        """
        self._objects = {
            k: v for k, v in self._objects.items() if now - v[1] <= self.forget_after_s or self.is_held(k)
        }
        found: list[str | None] = [None] * len(xyxy_norm)
        taken: set[str] = set()
        for i in range(len(xyxy_norm)):
            track = track_of(tracker_ids, i)
            if track is not None:
                found[i] = next(
                    (k for k, v in self._objects.items() if v[2] == track and k not in taken), None
                )
                if found[i] is not None:
                    taken.add(str(found[i]))
        free = [i for i, key in enumerate(found) if key is None]
        known = [k for k in self._objects if k not in taken]
        if free and known:
            overlaps = box_iou_batch(
                np.asarray(xyxy_norm)[free], np.array([self._objects[k][0] for k in known])
            )
            pairs = np.argwhere(overlaps >= self.min_iou)
            for row, col in sorted(pairs.tolist(), key=lambda p: -overlaps[p[0], p[1]]):
                if found[free[row]] is None and known[col] not in taken:
                    found[free[row]] = known[col]
                    taken.add(known[col])
        keys: list[str] = []
        for i, box in enumerate(xyxy_norm):
            track = track_of(tracker_ids, i)
            key = found[i]
            if key is None:
                key = f"obj{self._next}@{self._run}" if track is None else f"track{track}@{self._run}"
                if key in self._objects:
                    key = f"{key}-{self._next}"
                self._next += 1
            self._objects[key] = (box, now, track)
            keys.append(key)
        return keys


@dataclass(frozen=True, slots=True)
class ObjectState:
    """One object's confirmation state on this frame.

    Attributes:
        key: Stable key of the object (see ``ObjectMatcher``).
        index: Index of its box in this frame's candidates.
        is_hit: The condition holds for it on this frame.
        is_confirmed: Its confirmation holds.
        since: Start of its current spell, epoch seconds.
        track_id: Tracker id of its box, if tracked.
    """

    key: str
    index: int
    is_hit: bool
    is_confirmed: bool
    since: float | None
    track_id: int | None


class PerObjectConfirmation:
    """A ``Confirmation`` per object, objects followed across frames by ``ObjectMatcher``.

    Objects not seen on a frame count a miss (so k-of-n counts frames, not sightings)
    and are forgotten once their window holds no hit.
    """

    def __init__(
        self,
        *,
        k: int,
        n: int,
        min_duration_s: float = 0.0,
        min_iou: float = 0.3,
        forget_after_s: float = 30.0,
    ) -> None:
        self._make: Callable[[], Confirmation] = lambda: Confirmation(k=k, n=n, min_duration_s=min_duration_s)
        self.matcher = ObjectMatcher(min_iou=min_iou, forget_after_s=forget_after_s)
        self._states: dict[str, Confirmation] = {}

    def step(
        self, now: float, xyxy_norm: np.ndarray, hits: np.ndarray, tracker_ids: np.ndarray | None
    ) -> list[ObjectState]:
        """Feed this frame's candidate boxes and whether each meets the condition."""
        keys = self.matcher.match(xyxy_norm, tracker_ids, now)
        out = []
        for i, key in enumerate(keys):
            state = self._states.get(key)
            if state is None:
                if not hits[i]:
                    continue
                state = self._states[key] = self._make()
            confirmed = state.update(now, bool(hits[i]))
            out.append(ObjectState(key, i, bool(hits[i]), confirmed, state.since, track_of(tracker_ids, i)))
        seen = set(keys)
        for key, state in list(self._states.items()):
            if key not in seen:
                state.update(now, False)
            if state.hits == 0:
                del self._states[key]
        return out

    def reset(self, key: str) -> None:
        """Forget ``key``'s confirmation (its incident closed)."""
        self._states.pop(key, None)

    def attach(self, book: IncidentBook) -> None:
        """Tie the objects to the book of their incidents (again: a no-op).

        An object whose incident is open is never forgotten, however long it is unseen
        (the incident may last up to ``clear_after_s``, and the same person coming back
        must continue it, not raise a second one); its confirmation is forgotten when
        the incident closes, however it closes (a frame, ``expire``, ``close_all``).
        """
        self.matcher.is_held = book.is_open
        book.notify_closed(self.reset)


def sweep_closed(
    book: IncidentBook, objects: PerObjectConfirmation, now: float, *, keep: set[str]
) -> list[IncidentUpdate]:
    """Close the book's stale incidents other than ``keep``, forgetting their objects' confirmations."""
    objects.attach(book)
    return book.sweep(now, keep=keep)


def observe_object(
    book: IncidentBook,
    objects: PerObjectConfirmation,
    state: ObjectState,
    *,
    now: float,
    confidence: float,
    boxes: tuple[EventBox, ...],
    zone_id: str | None,
    message: str,
) -> IncidentUpdate | None:
    """Feed one followed object's frame to ``book``; forget its confirmation once its incident closes.

    ``confidence`` and ``boxes`` count only on a frame where the condition holds for the
    object (``state.is_hit``); the incident starts with the object's spell and carries its
    track id.
    """
    objects.attach(book)
    return book.observe(
        state.key,
        now=now,
        is_confirmed=state.is_confirmed,
        is_present=state.is_hit,
        confidence=confidence if state.is_hit else 0.0,
        boxes=boxes if state.is_hit else (),
        started_at=state.since,
        zone_id=zone_id,
        track_id=state.track_id,
        message=message,
        is_followed=True,
    )


@dataclass(frozen=True, slots=True)
class ObjectEvidence:
    """What one followed object shows on this frame, for ``observe_objects``.

    Attributes:
        confidence: Confidence of the frame's evidence for the object.
        boxes: The detections behind it (the object's box, and what it holds).
        zone_id: Zone of the object, if any.
        message: Sentence for the control room.
    """

    confidence: float
    boxes: tuple[EventBox, ...]
    zone_id: str | None
    message: str


def observe_objects(
    book: IncidentBook,
    objects: PerObjectConfirmation,
    states: Iterable[ObjectState],
    *,
    now: float,
    evidence: Callable[[ObjectState], ObjectEvidence],
) -> list[IncidentUpdate]:
    """Feed every followed object of this frame to ``book`` (``observe_object``), then close the rest.

    For a rule with one incident per object (a smoker, a fallen person): ``states`` are
    what its ``PerObjectConfirmation.step`` returned for the frame, and ``evidence``
    says what each object shows; incidents of objects no longer followed end
    (``sweep_closed``). An object whose incident is open is timed (``state.since``) from
    the incident's start, whatever its confirmation went through since.
    """
    updates: list[IncidentUpdate] = []
    seen: set[str] = set()
    for state in states:
        seen.add(state.key)
        event = book.event_of(state.key)
        if event is not None:
            state = replace(state, since=event.started_at)
        shown = evidence(state)
        update = observe_object(
            book,
            objects,
            state,
            now=now,
            confidence=shown.confidence,
            boxes=shown.boxes,
            zone_id=shown.zone_id,
            message=shown.message,
        )
        if update is not None:
            updates.append(update)
    return updates + sweep_closed(book, objects, now, keep=seen)


def concat(a: Detections, b: Detections) -> Detections:
    """Concatenate two detections of the same model (tracker ids kept only when both have them)."""
    if not len(b):
        return a
    if not len(a):
        return b
    tracks = None
    if a.tracker_id is not None and b.tracker_id is not None:
        tracks = np.concatenate([a.tracker_id, b.tracker_id])
    return Detections(
        xyxy=np.concatenate([a.xyxy, b.xyxy]),
        confidence=np.concatenate([a.confidence, b.confidence]),
        class_id=np.concatenate([a.class_id, b.class_id]),
        class_names=a.class_names,
        tracker_id=tracks,
    )


class BaseRule:
    """Machinery every rule shares: incident books, schedule, ``tick``, ``amend``, ``close``.

    Subclasses set ``behaviour`` and implement ``process``; ``books`` holds one book
    per behaviour the rule raises (absence from post also raises overcrowding).
    """

    behaviour: Behaviour

    def __init__(self, config: RuleConfig, env: RuleEnvironment | EventContext) -> None:
        if isinstance(env, EventContext):
            env = RuleEnvironment(context=env)
        self.config = config
        self.env = env
        self.context = env.context
        self.schedule = env.schedules[config.schedule] if config.schedule else None
        self.books: dict[Behaviour, IncidentBook] = {
            self.behaviour: self._new_book(self.behaviour, config.severity)
        }
        self.references: dict[str, ZoneReference] = {}
        """Learned zone images (clear exit, clean floor) by zone id, for rules that keep them."""

    def say(self, key: str, **values: object) -> str:
        """The event text ``key`` in the site's language (``anjian.pipeline.messages``)."""
        return text(key, self.context.language, **values)

    def where(self, zone_id: str | None) -> str:
        """`` in zone X`` (or its Chinese) for a message, empty without a zone."""
        return self.say("where.zone", zone=zone_id) if zone_id else ""

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Feed one analysed frame; return the revisions to publish (each rule implements it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement process()")

    def floors(self, classes: Iterable[str]) -> dict[str, float]:
        """Score each of ``classes`` needs (see ``RuleConfig.min_confidence_for``), for ``select``."""
        return {name: self.config.min_confidence_for(name, self.env.class_thresholds) for name in classes}

    def set_class_thresholds(self, thresholds: Mapping[str, float]) -> None:
        """Use a swapped-in model's calibrated thresholds from the next frame on (site settings still win)."""
        self.env = replace(self.env, class_thresholds=dict(thresholds))

    def set_context(self, context: EventContext) -> None:
        """Stamp later revisions with ``context`` (a swapped model's version); open incidents go on."""
        self.context = context
        self.env = replace(self.env, context=context)
        for book in self.books.values():
            book.context = context

    def reset_reference(self, zone_id: str) -> bool:
        """Forget the learned image of ``zone_id`` (relearned when next seen clear); False if none is kept."""
        reference = self.references.get(zone_id)
        if reference is None:
            return False
        reference.reset()
        return True

    @property
    def book(self) -> IncidentBook:
        """The book of the rule's main behaviour."""
        return self.books[self.behaviour]

    def _new_book(self, behaviour: Behaviour, severity: RiskLevel) -> IncidentBook:
        escalation = self.config.escalate
        return IncidentBook(
            behaviour=behaviour,
            severity=severity,
            clear_after_s=self.config.clear_after_s,
            update_interval_s=self.config.update_interval_s,
            context=self.context,
            cooldown_s=self.config.cooldown_s,
            escalation=None if escalation is None else (escalation.after_s, escalation.severity),
        )

    def is_active(self, now: float) -> bool:
        """True when the rule's schedule (if any) is on at ``now``."""
        return self.schedule is None or self.schedule.is_active(now)

    def tick(self, now: float) -> list[IncidentUpdate]:
        """Advance time without a frame; default: end what no frame keeps alive (``expire``)."""
        return self.expire(now)

    def expire(self, now: float) -> list[IncidentUpdate]:
        """End the incidents nothing keeps alive: the camera sends no frames (it is down, or stalled).

        Every book closes its incidents unseen for ``clear_after_s`` while fed nothing
        for as long, each ended at its last sighting (``IncidentBook.expire``): a smoker,
        a flame or a fallen person last seen before an outage is not reported ongoing
        through it. The analyzer calls this about once a second for a camera that is
        down; ``tick`` does by default. A rule with its own ``tick`` (absence from post,
        uncleaned dust) decides from time and its last frame, not from sightings, and
        keeps its incidents through an outage (nothing shows them gone either) unless
        it overrides this too (blocked exit).

        Args:
            now: The wall clock, epoch seconds.
        """
        if type(self).tick is not BaseRule.tick:
            return []
        return self._expire_books(now)

    def _expire_books(self, now: float) -> list[IncidentUpdate]:
        """``IncidentBook.expire`` of every book."""
        return [u for book in self.books.values() for u in book.expire(now)]

    def amend(self, event_id: str, **changes: object) -> Event | None:
        """One more revision of one of this rule's incidents (see ``IncidentBook.amend``)."""
        for book in self.books.values():
            event = book.amend(event_id, **changes)
            if event is not None:
                return event
        return None

    def close(self, now: float) -> list[IncidentUpdate]:
        """Close every open incident."""
        return [u for book in self.books.values() for u in book.close_all(now)]
