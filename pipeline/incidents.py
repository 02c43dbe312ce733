"""Turn per-frame rule decisions into one event per incident, updated while it lasts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from pipeline.event import Behaviour, Event, EventBox, RiskLevel, new_event_id

__all__ = ["EventContext", "IncidentBook", "IncidentUpdate", "UpdateKind"]


@dataclass(frozen=True, slots=True)
class EventContext:
    """Who and what an event is about, fixed per camera and model."""

    site_id: str
    workshop_id: str
    camera_id: str
    model_version: str


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


@dataclass(slots=True)
class _Incident:
    event: Event
    last_published_at: float


class IncidentBook:
    """Keeps the open incidents of one behaviour on one camera, keyed by zone/track.

    A rule decides per frame whether its condition is *confirmed* (enough evidence to
    raise) and whether it is *present* (still seen). The book raises one event when a
    key is first confirmed, re-publishes it at most every ``update_interval_s`` while
    present (new ``last_seen_at`` and peak confidence), and closes it with
    ``ended_at`` once absent for ``clear_after_s``.
    """

    def __init__(
        self,
        *,
        behaviour: Behaviour,
        severity: RiskLevel,
        clear_after_s: float,
        update_interval_s: float,
        context: EventContext,
    ) -> None:
        self.behaviour = behaviour
        self.severity = severity
        self.clear_after_s = clear_after_s
        self.update_interval_s = update_interval_s
        self.context = context
        self._open: dict[str, _Incident] = {}

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
        """
        incident = self._open.get(key)
        if incident is None:
            if not is_confirmed:
                return None
            event = Event(
                id=new_event_id(),
                revision=1,
                site_id=self.context.site_id,
                workshop_id=self.context.workshop_id,
                camera_id=self.context.camera_id,
                behaviour=self.behaviour,
                severity=self.severity,
                started_at=min(started_at if started_at is not None else now, now),
                last_seen_at=now,
                confidence=confidence,
                boxes=boxes,
                zone_id=zone_id,
                model_version=self.context.model_version,
                message=message,
            )
            self._open[key] = _Incident(event=event, last_published_at=now)
            return IncidentUpdate(UpdateKind.OPENED, event)
        current = incident.event
        if is_present:
            incident.event = replace(
                current,
                last_seen_at=max(now, current.last_seen_at),
                confidence=max(confidence, current.confidence),
                boxes=boxes or current.boxes,
                message=message or current.message,
                snapshot_jpeg=None,
            )
            if now - incident.last_published_at >= self.update_interval_s:
                incident.event = replace(incident.event, revision=current.revision + 1)
                incident.last_published_at = now
                return IncidentUpdate(UpdateKind.UPDATED, incident.event)
            return None
        if now - current.last_seen_at >= self.clear_after_s:
            del self._open[key]
            closed = replace(current, revision=current.revision + 1, ended_at=now, snapshot_jpeg=None)
            return IncidentUpdate(UpdateKind.CLOSED, closed)
        return None

    def close_all(self, now: float) -> list[IncidentUpdate]:
        """Close every open incident (the camera was removed or the pipeline stops)."""
        updates = [
            IncidentUpdate(
                UpdateKind.CLOSED,
                replace(i.event, revision=i.event.revision + 1, ended_at=max(now, i.event.last_seen_at)),
            )
            for i in self._open.values()
        ]
        self._open.clear()
        return updates
