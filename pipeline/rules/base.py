"""What every behaviour rule looks like to the runner."""

from __future__ import annotations

from typing import Protocol

from cameras.frame import Frame
from models.detections import Detections
from pipeline.event import Behaviour, EventBox
from pipeline.incidents import IncidentUpdate

__all__ = ["Rule", "boxes_of"]


class Rule(Protocol):
    """A behaviour rule for one camera: sees each analysed frame, returns event revisions."""

    behaviour: Behaviour

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Update the rule's state with one frame and return the revisions to publish."""
        ...

    def close(self, now: float) -> list[IncidentUpdate]:
        """Close every open incident (camera removed, pipeline stopping)."""
        ...


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
