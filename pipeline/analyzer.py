"""Everything the pipeline does with one camera's analysed frames after detection.

The runner owns cameras, batching and detection; a ``CameraAnalyzer`` owns one
camera's rules and evidence, and turns each frame's detections into the event
revisions to publish (with the snapshot attached to a new incident).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from cameras.frame import Frame
from models.detections import Detections
from pipeline.config import CameraPipelineConfig
from pipeline.event import Event
from pipeline.incidents import EventContext, IncidentUpdate, UpdateKind
from pipeline.rules import Rule, build_rules
from pipeline.snapshot import render_snapshot

__all__ = ["CameraAnalyzer"]

logger = logging.getLogger(__name__)


class CameraAnalyzer:
    """Applies one camera's behaviour rules to its analysed frames and builds the evidence.

    Example:
        >>> analyzer = CameraAnalyzer(camera_config, context)
        >>> for event in analyzer.process(frame, detections):
        ...     sink.publish(event)
    """

    def __init__(self, camera: CameraPipelineConfig, context: EventContext) -> None:
        self.camera = camera
        self.context = context
        self.rules: list[Rule] = build_rules(camera, context)

    def process(self, frame: Frame, detections: Detections) -> list[Event]:
        """Feed one analysed frame and its detections; return the event revisions to publish.

        A rule that raises is logged and skipped for this frame, so one rule's bug
        cannot silence the others.
        """
        events: list[Event] = []
        for rule in self.rules:
            try:
                updates = rule.process(frame, detections)
            except Exception:
                logger.exception("%s: rule %s failed on frame %d", self.camera.id, rule.behaviour, frame.index)
                continue
            events.extend(self._with_evidence(update, frame) for update in updates)
        return events

    def close(self, now: float) -> list[Event]:
        """Close every open incident (camera removed or pipeline stopping)."""
        return [update.event for rule in self.rules for update in rule.close(now)]

    def _with_evidence(self, update: IncidentUpdate, frame: Frame) -> Event:
        if update.kind != UpdateKind.OPENED:
            return update.event
        snapshot = render_snapshot(frame.image, update.event.boxes, self.camera.zones)
        return replace(update.event, snapshot_jpeg=snapshot)
