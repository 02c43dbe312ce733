"""Open flame: a fire-class detection confirmed in k of the last n analysed frames, that flickers."""

from __future__ import annotations

from collections import deque

import numpy as np

from cameras.frame import Frame
from models.detections import Detections
from pipeline.config import OpenFlameConfig
from pipeline.event import Behaviour
from pipeline.incidents import EventContext, IncidentUpdate
from pipeline.rules.base import (
    BaseRule,
    Confirmation,
    RuleEnvironment,
    boxes_of,
    normalised,
    region_mean,
    select,
)

__all__ = ["OpenFlameRule", "flicker"]

_KEY = "frame"


def flicker(areas: list[float], intensities: list[float]) -> float:
    """How much a flame box varies: the larger coefficient of variation (std / mean) of area and brightness."""
    if len(areas) < 2:
        return 0.0
    out = 0.0
    for series in (np.asarray(areas, np.float64), np.asarray(intensities, np.float64)):
        mean = float(series.mean())
        if mean > 0:
            out = max(out, float(series.std()) / mean)
    return out


class OpenFlameRule(BaseRule):
    """Raises ``open_flame`` when flame is seen in ``k`` of the last ``n`` frames and flickers.

    A single-frame flash (a welding spark, a reflection) never fills the window. With
    ``is_temporal_check``, the largest flame box of each hit frame is measured (area
    and mean brightness); a box that stays the same size and brightness across the
    window — a static orange lamp, a painted sign, a steady reflection — is not a
    flame. Flames inside exclusion zones (a furnace mouth) are ignored. The incident
    stays open while flame keeps appearing and closes after ``clear_after_s``
    without any; the next one needs a fresh confirmation.
    """

    behaviour = Behaviour.OPEN_FLAME

    def __init__(self, config: OpenFlameConfig, env: RuleEnvironment | EventContext) -> None:
        super().__init__(config, env)
        self.config: OpenFlameConfig = config
        self._confirm = Confirmation(k=config.k, n=config.n, min_duration_s=config.min_duration_s)
        self._samples: deque[tuple[float, float] | None] = deque(maxlen=config.n)
        self._zones = self.env.zones.of_kind("", config.zones) if config.zones else []

    def _flames(self, frame: Frame, detections: Detections) -> tuple[Detections, str | None]:
        flames = select(detections, self.config.classes, self.config.min_confidence)
        if not len(flames):
            return flames, None
        points = self.env.zones.anchors_norm(flames.xyxy, flames.names(), frame.resolution_wh)
        keep = ~self.env.zones.excluded(points, self.behaviour.value)
        zone_id = None
        if self._zones:
            inside = np.zeros(len(flames), bool)
            for zone in self._zones:
                hit = zone.contains(points) & keep
                if hit.any() and zone_id is None:
                    zone_id = zone.id
                inside |= hit
            keep &= inside
        return flames.filter(keep), zone_id

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Feed one analysed frame; return the event revisions to publish."""
        now = frame.captured_at
        flames, zone_id = (
            self._flames(frame, detections) if self.is_active(now) else (Detections.empty(), None)
        )
        is_present = len(flames) > 0
        if is_present:
            largest = int(
                np.argmax((flames.xyxy[:, 2] - flames.xyxy[:, 0]) * (flames.xyxy[:, 3] - flames.xyxy[:, 1]))
            )
            box = normalised(flames, frame.resolution_wh)[largest]
            area = float((box[2] - box[0]) * (box[3] - box[1]))
            self._samples.append((area, region_mean(frame.image, flames.xyxy[largest])))
        else:
            self._samples.append(None)
        is_confirmed = self._confirm.update(now, is_present)
        variation = flicker(*self._series())
        if (
            self.config.is_temporal_check
            and self._confirm.hits >= 2
            and variation < self.config.min_variation
        ):
            is_confirmed = False
        confidence = float(flames.confidence.max()) if is_present else 0.0
        update = self.book.observe(
            _KEY,
            now=now,
            is_confirmed=is_confirmed,
            is_present=is_present and (self.book.is_open(_KEY) or is_confirmed),
            confidence=confidence,
            boxes=boxes_of(flames, frame.resolution_wh),
            started_at=self._confirm.since,
            zone_id=zone_id,
            message=f"Open flame seen in {self._confirm.hits} of the last {len(self._samples)} frames"
            + (f" in zone {zone_id}" if zone_id else ""),
        )
        if update is None:
            return []
        if not self.book.is_open(_KEY):
            self._confirm.reset()
            self._samples.clear()
        return [update]

    def _series(self) -> tuple[list[float], list[float]]:
        hits = [s for s in self._samples if s is not None]
        return [a for a, _ in hits], [i for _, i in hits]

    def close(self, now: float) -> list[IncidentUpdate]:
        """Close the open incident, if any."""
        self._confirm.reset()
        self._samples.clear()
        return super().close(now)
