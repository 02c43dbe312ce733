"""Open flame: a fire-class detection confirmed in k of the last n analysed frames."""

from __future__ import annotations

from collections import deque

from cameras.frame import Frame
from models.detections import Detections
from pipeline.config import OpenFlameConfig
from pipeline.event import Behaviour
from pipeline.incidents import EventContext, IncidentBook, IncidentUpdate
from pipeline.rules.base import boxes_of

__all__ = ["OpenFlameRule"]

_KEY = "frame"


class OpenFlameRule:
    """Raises ``open_flame`` when flame is seen in ``k`` of the last ``n`` frames.

    A single-frame flash (a welding spark, a reflection) never fills the window; the
    incident stays open while flame keeps appearing and closes after
    ``clear_after_s`` without any. After it closes the window starts empty, so the
    next incident needs a fresh confirmation.
    """

    behaviour = Behaviour.OPEN_FLAME

    def __init__(self, config: OpenFlameConfig, context: EventContext) -> None:
        self.config = config
        self._classes = frozenset(config.classes)
        self._window: deque[tuple[float, bool]] = deque(maxlen=config.n)
        self._book = IncidentBook(
            behaviour=self.behaviour,
            severity=config.severity,
            clear_after_s=config.clear_after_s,
            update_interval_s=config.update_interval_s,
            context=context,
        )

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Feed one analysed frame; return the event revisions to publish."""
        flames = detections.with_classes(self._classes)
        flames = flames.filter(flames.confidence >= self.config.min_confidence) if len(flames) else flames
        is_present = len(flames) > 0
        self._window.append((frame.captured_at, is_present))
        hits = [t for t, seen in self._window if seen]
        is_confirmed = len(hits) >= self.config.k
        confidence = float(flames.confidence.max()) if is_present else 0.0
        update = self._book.observe(
            _KEY,
            now=frame.captured_at,
            is_confirmed=is_confirmed,
            is_present=is_present,
            confidence=confidence,
            boxes=boxes_of(flames, frame.resolution_wh),
            started_at=hits[0] if hits else None,
            message=f"Open flame seen in {len(hits)} of the last {len(self._window)} frames",
        )
        if update is None:
            return []
        if not self._book.is_open(_KEY):
            self._window.clear()
        return [update]

    def close(self, now: float) -> list[IncidentUpdate]:
        """Close the open incident, if any."""
        self._window.clear()
        return self._book.close_all(now)
