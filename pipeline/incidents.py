"""Turn per-frame rule decisions into one event per incident, updated while it lasts."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from anjian.pipeline.event import Behaviour, Event, EventBox, RiskLevel, SensorFacts, new_event_id

if TYPE_CHECKING:
    from anjian.pipeline.incident_journal import IncidentJournal

__all__ = ["CLOCK_STEP_S", "EventContext", "IncidentBook", "IncidentUpdate", "UpdateKind"]


@dataclass(frozen=True, slots=True)
class EventContext:
    """Who and what an event is about, fixed per camera and model."""

    site_id: str
    workshop_id: str
    camera_id: str
    model_version: str
    time_zone: str = "UTC"
    """IANA time zone of the site, for schedules that name none."""
    language: str = "en"
    """Language of the event messages (``anjian.pipeline.messages``): ``en`` or ``zh-CN``."""
    journal: IncidentJournal | None = field(default=None, compare=False, repr=False)
    """Where open incidents outlive a restart (``anjian.pipeline.incident_journal``); ``None``: they end with the process."""


class UpdateKind(StrEnum):
    """What happened to an incident on this frame."""

    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """An event revision to publish, and why."""

    kind: UpdateKind
    event: Event


CLOCK_STEP_S = 5.0
"""A time this far before one already seen means the wall clock went back (an NTP step): frame times
of one camera never run backwards otherwise. Durations measured across such a step would be
negative, so a rule or book that sees one starts its timing again instead."""

_RECENTLY_CLOSED = 64  # closed incidents that may still receive a late revision (their clip)


@dataclass(slots=True)
class _Incident:
    event: Event
    last_published_at: float
    is_resumed: bool = False
    """Taken over from the previous run (``IncidentJournal``)."""
    resumed_at: float | None = None
    """When this run first looked at it: absence is counted from then."""
    is_matched: bool = True
    """Seen again in this run (a resumed incident starts unmatched)."""


class IncidentBook:
    """Keeps the open incidents of one behaviour on one camera, keyed by zone/track.

    A rule decides per frame whether its condition is *confirmed* (enough evidence to
    raise) and whether it is *present* (still seen). The book raises one event when a
    key is first confirmed, re-publishes it at most every ``update_interval_s`` while
    present (new ``last_seen_at`` and peak confidence), and closes it with
    ``ended_at`` once absent for ``clear_after_s``. After a close, the same key may
    not raise again for ``cooldown_s``. An incident lasting ``escalation[0]`` seconds
    is re-published at once with the ``escalation[1]`` colour, if that is higher.

    With a journal in its context (``anjian.pipeline.incident_journal``) the book starts
    with the incidents the previous run left open for its camera and behaviour,
    reports every published revision and close to it, and, once the journal is
    suspended (the pipeline stops), ``close_all`` keeps its incidents open.

    Frames end an incident once they show it gone; when no frames come (the camera is
    down or stalled), ``expire`` ends it at its last sighting.

    Example:
        >>> book = IncidentBook(behaviour=Behaviour.OPEN_FLAME, severity=RiskLevel.RED,
        ...                     clear_after_s=10, update_interval_s=5, context=context)
        >>> update = book.observe("frame", now=t, is_confirmed=True, is_present=True, confidence=0.8)
    """

    def __init__(
        self,
        *,
        behaviour: Behaviour,
        severity: RiskLevel,
        clear_after_s: float,
        update_interval_s: float,
        context: EventContext,
        cooldown_s: float = 0.0,
        escalation: tuple[float, RiskLevel] | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.severity = severity
        self.clear_after_s = clear_after_s
        self.update_interval_s = update_interval_s
        self.context = context
        self.cooldown_s = cooldown_s
        self.escalation = escalation
        self._open: dict[str, _Incident] = {}
        self._closed_at: dict[str, float] = {}
        self._recently_closed: OrderedDict[str, Event] = OrderedDict()
        self._fed_at: float | None = None  # time of the latest decision fed (observe, sweep)
        self._close_listeners: list[Callable[[str], None]] = []
        journal = context.journal
        if journal is not None:
            for key, event in journal.claim(context.camera_id, behaviour).items():
                self._open[key] = _Incident(
                    event=event, last_published_at=float("-inf"), is_resumed=True, is_matched=False
                )

    def is_open(self, key: str) -> bool:
        """True while the incident for ``key`` is open."""
        return key in self._open

    def observe(
        self,
        key: str,
        *,
        now: float,
        is_confirmed: bool,
        is_present: bool,
        confidence: float = 0.0,
        boxes: tuple[EventBox, ...] = (),
        started_at: float | None = None,
        zone_id: str | None = None,
        message: str = "",
        track_id: int | None = None,
        severity: RiskLevel | None = None,
        sensor: SensorFacts | None = None,
        is_followed: bool = False,
    ) -> IncidentUpdate | None:
        """Feed one frame's decision for ``key``; return the revision to publish, if any.

        Args:
            key: Incident key within this behaviour and camera (zone id, track id, ...).
            now: Capture time of the frame, epoch seconds.
            is_confirmed: The rule's confirmation holds (raise if not open yet).
            is_present: The condition is seen on this frame (keeps an open incident alive).
            confidence: Confidence of this frame's evidence.
            boxes: Detections supporting it on this frame.
            started_at: When the condition began (defaults to ``now``).
            zone_id: Zone of the incident, if any.
            message: Sentence for the control room.
            track_id: Tracker id of the object the incident is about, if any.
            severity: This observation's colour, for rules whose colour follows a measure (a
                sensor's limits); the incident takes the highest seen, published at once when it
                rises. ``None``: the book's ``severity``.
            sensor: The reading behind a sensor incident (kept while absent, for the closing revision).
            is_followed: ``key`` names an object followed across frames (``ObjectMatcher``), not
                a zone: a resumed incident of the same zone is taken over even without track
                ids (see ``_adopt``).
        """
        self._start_resumed_clocks(now)
        self._fed_at = now
        incident = self._open.get(key)
        if incident is None and is_confirmed and not self.in_cooldown(key, now):
            incident = self._adopt(key, zone_id=zone_id, track_id=track_id, is_followed=is_followed)
        if incident is None:
            if not is_confirmed or self.in_cooldown(key, now):
                return None
            began = min(started_at if started_at is not None else now, now)
            event = Event(
                id=new_event_id(),
                revision=1,
                site_id=self.context.site_id,
                workshop_id=self.context.workshop_id,
                camera_id=self.context.camera_id,
                behaviour=self.behaviour,
                severity=self._severity_at(severity or self.severity, began, now),
                started_at=began,
                last_seen_at=now,
                confidence=confidence,
                boxes=boxes,
                zone_id=zone_id,
                model_version=self.context.model_version,
                message=message,
                track_id=track_id,
                sensor=sensor,
            )
            self._open[key] = _Incident(event=event, last_published_at=now)
            self._journal_record(key, event)
            return IncidentUpdate(UpdateKind.OPENED, event)
        current = incident.event
        if is_present:
            incident.is_matched = True
            escalated = self._escalated(current, now)
            if severity is not None and severity.rank > escalated.rank:
                escalated = severity
            incident.event = replace(
                current,
                last_seen_at=max(now, current.last_seen_at),
                confidence=max(confidence, current.confidence),
                boxes=boxes or current.boxes,
                message=message or current.message,
                severity=escalated,
                model_version=self.context.model_version,  # the model that saw it last
                snapshot_jpeg=None,
                sensor=sensor or current.sensor,
            )
            if escalated != current.severity or now - incident.last_published_at >= self.update_interval_s:
                incident.event = replace(incident.event, revision=current.revision + 1)
                incident.last_published_at = now
                self._journal_record(key, incident.event)
                return IncidentUpdate(UpdateKind.UPDATED, incident.event)
            return None
        if sensor is not None:
            incident.event = replace(current, sensor=sensor)
        if self._is_absent_long_enough(incident, now):
            return self._close(key, now)
        return None

    def _is_absent_long_enough(self, incident: _Incident, now: float) -> bool:
        """Absent ``clear_after_s`` or more, or the clock went back (its absence can no longer be timed: it ends now)."""
        absent_s = now - _seen_at(incident)
        return absent_s >= self.clear_after_s or absent_s < -CLOCK_STEP_S

    def in_cooldown(self, key: str, now: float) -> bool:
        """True while ``key`` closed less than ``cooldown_s`` ago."""
        closed_at = self._closed_at.get(key)
        return closed_at is not None and 0 <= now - closed_at < self.cooldown_s  # a clock gone back ends it

    def open_keys(self) -> list[str]:
        """Keys of the open incidents."""
        return list(self._open)

    def event_of(self, key: str) -> Event | None:
        """The latest revision of the open incident for ``key``, if any."""
        incident = self._open.get(key)
        return None if incident is None else incident.event

    def sweep(self, now: float, *, keep: frozenset[str] | set[str] = frozenset()) -> list[IncidentUpdate]:
        """Close the open incidents (other than ``keep``) last seen ``clear_after_s`` or more before ``now``.

        Rules keyed by track call this each frame: a track that vanished is never
        observed again, so only a sweep can close its incident.
        """
        self._start_resumed_clocks(now)
        self._fed_at = now
        return [
            self._close(key, now)
            for key, incident in list(self._open.items())
            if key not in keep and self._is_absent_long_enough(incident, now)
        ]

    def expire(self, now: float) -> list[IncidentUpdate]:
        """Close the incidents no frame can end: unseen ``clear_after_s``, and the book fed nothing for as long.

        A rule closes its incidents from frames (``observe``, ``sweep``); while its camera
        sends none (offline, stalled) nothing would, and an incident would stay open
        through the outage, to close with the recovery's time. Each incident closed here
        ends at its last sighting, the last time anything showed it. While decisions
        still come (frames in flight behind the wall clock) nothing is closed here.

        Args:
            now: The wall clock, epoch seconds.
        """
        self._start_resumed_clocks(now)
        if self._fed_at is not None and -CLOCK_STEP_S <= now - self._fed_at < self.clear_after_s:
            return []
        return [
            self._close(key, now, ended_at=incident.event.last_seen_at)
            for key, incident in list(self._open.items())
            if self._is_absent_long_enough(incident, now)
        ]

    def notify_closed(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(key)`` whenever an incident closes, however it closes (once per listener).

        A rule keeping per-key state (a confirmation) forgets it there, so that the next
        incident of the key needs a fresh confirmation even when ``expire`` or
        ``close_all`` ended the last one.
        """
        if listener not in self._close_listeners:
            self._close_listeners.append(listener)

    def amend(self, event_id: str, **changes: object) -> Event | None:
        """Publish one more revision of an incident with ``changes`` (e.g. ``clip_mp4``), open or just closed.

        The changed fields ride on this revision only; later revisions do not repeat
        them (like the snapshot). Returns ``None`` when the book no longer knows the id.
        """
        for key, incident in self._open.items():
            if incident.event.id == event_id:
                incident.event = replace(incident.event, revision=incident.event.revision + 1)
                self._journal_record(key, incident.event)
                return replace(incident.event, **changes)  # type: ignore[arg-type]
        closed = self._recently_closed.get(event_id)
        if closed is None:
            return None
        closed = replace(closed, revision=closed.revision + 1)
        self._recently_closed[event_id] = closed
        return replace(closed, **changes)  # type: ignore[arg-type]

    def _escalated(self, event: Event, now: float) -> RiskLevel:
        return self._severity_at(event.severity, event.started_at, now)

    def _severity_at(self, severity: RiskLevel, started_at: float, now: float) -> RiskLevel:
        if self.escalation is None:
            return severity
        after_s, level = self.escalation
        return level if now - started_at >= after_s and level.rank > severity.rank else severity

    def _close(self, key: str, now: float, *, ended_at: float | None = None) -> IncidentUpdate:
        """Close ``key``'s incident, ended at ``ended_at`` (default ``now``, never before its last sighting)."""
        current = self._open.pop(key).event
        if self.context.journal is not None:
            self.context.journal.forget(self.context.camera_id, self.behaviour, key)
        closed = replace(
            current,
            revision=current.revision + 1,
            ended_at=max(now if ended_at is None else ended_at, current.last_seen_at),
            snapshot_jpeg=None,
        )
        self._closed_at[key] = now
        self._remember_closed(closed)
        for listener in self._close_listeners:
            listener(key)
        return IncidentUpdate(UpdateKind.CLOSED, closed)

    def _remember_closed(self, event: Event) -> None:
        self._recently_closed[event.id] = event
        while len(self._recently_closed) > _RECENTLY_CLOSED:
            self._recently_closed.popitem(last=False)
        if len(self._closed_at) > _RECENTLY_CLOSED * 8:  # forget cooldowns long over
            newest = sorted(self._closed_at.items(), key=lambda kv: kv[1])[-_RECENTLY_CLOSED:]
            self._closed_at = dict(newest)

    def close_all(self, now: float) -> list[IncidentUpdate]:
        """Close every open incident (the camera was removed or the pipeline stops).

        While the context's journal is suspended (the pipeline stops and will resume
        them) or the camera is handed over to another node, nothing is closed: the
        incidents stay open in the journal.
        """
        journal = self.context.journal
        if journal is not None and journal.keeps_open(self.context.camera_id):
            return []
        return [self._close(key, now) for key in list(self._open)]

    def _journal_record(self, key: str, event: Event) -> None:
        """Tell the journal (if any) the latest published revision of an open incident."""
        if self.context.journal is not None:
            self.context.journal.record(self.context.camera_id, self.behaviour, key, event)

    def _start_resumed_clocks(self, now: float) -> None:
        """Resumed incidents count their absence from the first time this run looks at them."""
        for incident in self._open.values():
            if incident.is_resumed and incident.resumed_at is None:
                incident.resumed_at = now

    def _adopt(
        self, key: str, *, zone_id: str | None, track_id: int | None, is_followed: bool = False
    ) -> _Incident | None:
        """Move a resumed, not yet matched incident about a followed object to ``key`` (its new key).

        Track ids and object keys start again after a restart (object keys are unique per
        run, so they never meet the old ones), so the smoker or fallen person of the
        previous run comes back under a new key: the first new incident of the same
        zone takes the old one over instead of raising another. A book fed followed
        objects (``is_followed``) holds nothing else, so its untracked incidents are
        taken over too; otherwise only a tracked incident, by a tracked one.
        """
        if track_id is None and not is_followed:
            return None
        for old_key, incident in list(self._open.items()):
            if (
                incident.is_resumed
                and not incident.is_matched
                and (is_followed or incident.event.track_id is not None)
                and incident.event.zone_id == zone_id
            ):
                del self._open[old_key]
                if self.context.journal is not None:
                    self.context.journal.forget(self.context.camera_id, self.behaviour, old_key)
                incident.event = replace(incident.event, track_id=track_id)
                self._open[key] = incident
                return incident
        return None


def _seen_at(incident: _Incident) -> float:
    """When the incident was last seen, or, for one resumed after a restart, when this run took it over."""
    if incident.resumed_at is None:
        return incident.event.last_seen_at
    return max(incident.event.last_seen_at, incident.resumed_at)
