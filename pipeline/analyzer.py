"""Everything the pipeline does with one camera's analysed frames after detection.

The runner owns cameras, batching, detection and tracking; a ``CameraAnalyzer`` owns
one camera's rules and evidence, and turns each frame's (tracked) detections into
the event revisions to publish:

- a new incident (revision 1) carries the snapshot: the confirming frame with its
  boxes and the camera's zones drawn;
- ``clip_pre_s`` + ``clip_post_s`` later, one more revision of the same event carries
  ``clip_mp4`` (an H.264 MP4 cut from the camera's ring buffer of analysed frames);
- updates, escalations and the end of the incident are further revisions.

What the runner calls, all from its one analysis thread (the analyzer is not
thread-safe):

- ``process(frame, detections)`` for every analysed frame (``detections.tracker_id``
  set when tracking is on, ``None`` otherwise);
- ``tick(now)`` about once a second per *live* camera with the wall clock, frames or
  not: absence from post and blocked exits keep counting while a motion-gated camera
  sends nothing, cleaning-window checks run, clips finish (``clip_grace_s`` after
  their end, as frames captured before it may still be on their way to the rules).
  Do not tick a camera that is offline (that is a camera fault, and an absence would
  be invented);
- ``expire(now)`` instead, about once a second, for a camera that is down (offline,
  stalled): incidents no frame keeps alive end at their last sighting, clips finish;
- ``close(now)`` when the camera is removed or the pipeline stops (or
  ``close_incidents`` then ``finish_clips``, to encode the last clips outside a lock);
- ``set_camera(camera)`` when only the camera's source, engine or evidence settings
  changed: the rules and their open incidents carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import replace

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.event import Event
from anjian.pipeline.evidence import ClipRecorder, EvidenceStats
from anjian.pipeline.incidents import EventContext, IncidentUpdate, UpdateKind
from anjian.pipeline.rules import BaseRule, build_rules
from anjian.pipeline.snapshot import render_snapshot

__all__ = ["CameraAnalyzer"]

logger = logging.getLogger(__name__)


class CameraAnalyzer:
    """Applies one camera's behaviour rules to its analysed frames and builds the evidence.

    Args:
        camera: The camera's config (zones, schedules, behaviours, evidence).
        context: Site, workshop, camera, model and time zone of the events.
        clip_executor: Encodes clips in the background when given (share one across
            cameras); inline in ``process``/``tick`` otherwise.
        class_thresholds: The model's calibrated score per class (``Detector.class_thresholds``);
            rules whose ``min_confidence`` is unset use them.
        clip_grace_s: How long after a clip's end ``tick`` waits for frames captured
            before that end which are still being analysed (the runner's bound on its
            capture → rules latency). A frame captured after the end finishes the clip at
            once. 0 where frames are fed before the time passes them (replay).

    Example:
        >>> analyzer = CameraAnalyzer(camera_config, context)
        >>> for event in analyzer.process(frame, detections):
        ...     sink.publish(event)
        >>> for event in analyzer.tick(time.time()):   # about once a second
        ...     sink.publish(event)
    """

    def __init__(
        self,
        camera: CameraPipelineConfig,
        context: EventContext,
        *,
        clip_executor: Executor | None = None,
        class_thresholds: Mapping[str, float] | None = None,
        clip_grace_s: float = 0.0,
    ) -> None:
        self.camera = camera
        self.context = context
        self.clip_grace_s = clip_grace_s
        self.rules: list[BaseRule] = build_rules(camera, context, class_thresholds)
        self._clip_executor = clip_executor
        self.clips = (
            ClipRecorder(camera.evidence, camera.id, executor=clip_executor)
            if camera.evidence.is_clip
            else None
        )
        self._clip_owner: dict[str, BaseRule] = {}
        self._last_frame: Frame | None = None

    def process(self, frame: Frame, detections: Detections) -> list[Event]:
        """Feed one analysed frame and its detections; return the event revisions to publish.

        A rule that raises is logged and skipped for this frame, so one rule's bug
        cannot silence the others.
        """
        self._last_frame = frame
        if self.clips is not None:
            self.clips.add_frame(frame)
        events = self._run(lambda rule: rule.process(frame, detections), f"frame {frame.index}", frame)
        return events + self._finished_clips(frame.captured_at)

    def tick(self, now: float) -> list[Event]:
        """Advance time without a frame (see the module docstring); return the revisions to publish.

        A clip is cut only ``clip_grace_s`` after its end: at ``now`` the frames captured
        just before the end may still be batched, on the model or queued for the rules,
        and cutting earlier would lose the clip's last seconds.
        """
        events = self._run(lambda rule: rule.tick(now), "tick", self._last_frame)
        if self.clips is not None:
            self.clips.observe_clock(now)
        return events + self._finished_clips(now - self.clip_grace_s)

    def expire(self, now: float) -> list[Event]:
        """The camera sends no frames (it is down): end what nothing keeps alive (see the module docstring).

        Without it a smoker, a flame or a fallen person seen before an outage would stay
        open through it and end only with the first frame back, at the recovery's time.
        """
        events = self._run(lambda rule: rule.expire(now), "expire", self._last_frame)
        if self.clips is not None:
            self.clips.observe_clock(now)
        return events + self._finished_clips(now)

    def close(self, now: float) -> list[Event]:
        """Close every open incident and finish pending clips with the frames buffered so far."""
        return self.close_incidents(now) + self.finish_clips(now)

    def close_incidents(self, now: float) -> list[Event]:
        """Close every open incident (quick: the incidents' pending clips wait for ``finish_clips``)."""
        return [update.event for rule in self.rules for update in rule.close(now)]

    def finish_clips(self, now: float) -> list[Event]:
        """Encode every pending clip with the frames buffered so far, waiting for it (seconds of H.264)."""
        return self._finished_clips(now, is_final=True)

    def set_camera(self, camera: CameraPipelineConfig) -> None:
        """Take the camera's new config when its rules stay: same zones, anchors, schedules, behaviours.

        The rules and their open incidents carry on (a reload that only turns on motion
        gating or changes the clip length must not end an ongoing alert and raise it
        again). New clip settings apply to the clips requested from now on; a clip
        already requested is still delivered, even when clips were turned off.
        """
        self.camera = camera
        if self.clips is not None:
            self.clips.reconfigure(camera.evidence)
            self._drop_clips_if_off()
        elif camera.evidence.is_clip:
            self.clips = ClipRecorder(camera.evidence, camera.id, executor=self._clip_executor)

    def _drop_clips_if_off(self) -> None:
        """Forget the clip buffer once clips are turned off and no clip is still to come."""
        if self.clips is not None and not self.camera.evidence.is_clip and not self.clips.pending_ids():
            self.clips = None

    def set_model_version(self, version: str) -> None:
        """Stamp the events raised or updated from now on with a new model version (after a swap)."""
        self.context = replace(self.context, model_version=version)
        for rule in self.rules:
            rule.set_context(self.context)

    def set_class_thresholds(self, thresholds: Mapping[str, float]) -> None:
        """Apply a swapped-in model's calibrated per-class thresholds to every rule (after a swap)."""
        for rule in self.rules:
            rule.set_class_thresholds(thresholds)

    def reset_reference(self, zone_id: str) -> bool:
        """Forget the learned clear/clean image of ``zone_id`` (relearned when next seen clear).

        Returns:
            True when a rule of this camera keeps a reference for that zone.
        """
        return sum(rule.reset_reference(zone_id) for rule in self.rules) > 0  # every rule, no short cut

    def evidence_stats(self) -> EvidenceStats | None:
        """Memory and counters of the clip buffer (``None`` when clips are off)."""
        return None if self.clips is None else self.clips.stats()

    def _run(
        self, step: Callable[[BaseRule], Iterable[IncidentUpdate]], what: str, frame: Frame | None
    ) -> list[Event]:
        events: list[Event] = []
        for rule in self.rules:
            try:
                updates = list(step(rule))
            except Exception:
                logger.exception("%s: rule %s failed on %s", self.camera.id, rule.behaviour, what)
                continue
            events.extend(self._with_evidence(rule, update, frame) for update in updates)
        return events

    def _with_evidence(self, rule: BaseRule, update: IncidentUpdate, frame: Frame | None) -> Event:
        event = update.event
        if update.kind != UpdateKind.OPENED:
            return event
        if self.clips is not None and self.camera.evidence.is_clip:
            self.clips.request(event.id, confirmed_at=event.last_seen_at)
            self._clip_owner[event.id] = rule
        if frame is None:
            return event
        try:
            caption = f"{event.behaviour.value} [{event.severity.value}] {event.message}"
            snapshot = render_snapshot(
                frame.host_image(),
                event.boxes,
                self.camera.zones,
                highlight_zone=event.zone_id,
                caption=caption,
            )
        except Exception:
            logger.exception("%s: snapshot failed for %s", self.camera.id, event.id)
            return event
        return replace(event, snapshot_jpeg=snapshot)

    def _finished_clips(self, now: float, *, is_final: bool = False) -> list[Event]:
        if self.clips is None:
            return []
        events = []
        for event_id, mp4 in self.clips.poll(now, is_final=is_final):
            rule = self._clip_owner.pop(event_id, None)
            event = None if rule is None else rule.amend(event_id, clip_mp4=mp4)
            if event is None:
                logger.warning(
                    "%s: clip of %s is ready but its incident is long gone", self.camera.id, event_id
                )
                continue
            events.append(event)
        for event_id in set(self._clip_owner) - self.clips.pending_ids():  # clips that failed: none will come
            del self._clip_owner[event_id]
        self._drop_clips_if_off()
        return events
