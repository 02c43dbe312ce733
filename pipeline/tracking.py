"""Per-camera object tracking with ByteTrack (roboflow ``trackers``), so rules follow one object over time.

``CameraTracker.update`` takes one analysed frame's ``Detections`` and returns the
same detections, in the same order, with ``tracker_id`` filled: a stable id per
object for as long as ByteTrack keeps its track, ``-1`` for a detection not (yet)
part of a confirmed track. Frames are timestamped with their capture time, so the
Kalman prediction and the lost-track budget work in seconds whatever the camera's
analysis rate or the frames motion gating skipped.

A box with a NaN or infinite coordinate (a detector fault) is dropped there, counted
and logged, so that one bad box costs neither the tracker nor any rule the frame:
every frame reaches the rules through ``update`` (the runner and ``anjian replay``).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from anjian.models.detections import Detections
from anjian.pipeline.engine_config import TrackingConfig
from anjian.pipeline.log_throttle import LogThrottle

__all__ = ["UNTRACKED", "CameraTracker"]

logger = logging.getLogger(__name__)

UNTRACKED = -1
"""``tracker_id`` of a detection that belongs to no confirmed track."""

_MIN_STEP_S = 1e-3
_BACKWARDS_TOLERANCE_S = 1.0
_DROP_LOG_INTERVAL_S = 300.0  # capture time between two logs of dropped non-finite boxes


class CameraTracker:
    """ByteTrack over one camera's detections (all classes together).

    Track ids are unique per camera for the tracker's lifetime, also across a
    restart of the underlying tracker (when capture time jumps backwards: a file
    looping or a camera clock reset; or ``restart()``, when another model's detections
    follow).

    Example:
        >>> tracker = CameraTracker(TrackingConfig(), fps=5.0, camera_id="cam-1")
        >>> tracked = tracker.update(detections, frame.captured_at)
        >>> tracked.tracker_id
        array([ 1, -1])
    """

    def __init__(self, config: TrackingConfig, *, fps: float, camera_id: str = "") -> None:
        """Create the tracker of one camera.

        Args:
            config: Track lifetime and thresholds.
            fps: The camera's analysis rate (ByteTrack's nominal frame rate).
            camera_id: For logs.
        """
        self.config = config
        self.camera_id = camera_id
        self._fps = fps
        self._id_offset = 0
        self._next_id = 0  # one past the largest id handed out, offset included
        self._last_at: float | None = None
        self._tracker = self._new_tracker()
        self.dropped_non_finite = 0
        """Boxes dropped so far because a coordinate was NaN or infinite."""
        self._drop_log = LogThrottle(_DROP_LOG_INTERVAL_S)

    def _new_tracker(self) -> ByteTrackTracker:
        c = self.config
        return ByteTrackTracker(
            lost_track_buffer=max(1, round(c.lost_track_s * 30)),  # the library counts 30 fps frames
            frame_rate=self._fps,
            track_activation_threshold=c.activation_confidence,
            minimum_consecutive_frames=c.min_consecutive_frames,
            minimum_iou_threshold=c.min_iou,
            high_conf_det_threshold=c.high_confidence,
        )

    def update(self, detections: Detections, at: float) -> Detections:
        """Track one frame's detections.

        Boxes with a non-finite coordinate are dropped first (tracking on or off): the
        tracker and the rules' pixel maths cannot use them, and one of them must not
        fail the whole frame. They are counted in ``dropped_non_finite`` and logged at
        most once per ``_DROP_LOG_INTERVAL_S`` of capture time.

        Args:
            detections: The frame's detections (their ``tracker_id`` is ignored).
            at: The frame's capture time, seconds.

        Returns:
            The same detections, same order, less any non-finite box, with
            ``tracker_id`` ``(n,) int64`` set.
        """
        detections = self._finite(detections, at)
        if not self.config.enabled:
            return self._with_ids(detections, np.full(len(detections), UNTRACKED, np.int64))
        at = self._monotonic(at)
        sv_detections = sv.Detections(
            xyxy=detections.xyxy.astype(np.float32, copy=False),
            confidence=detections.confidence,
            class_id=detections.class_id,
            data={"index": np.arange(len(detections))},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # timestamps are kept increasing above
            tracked = self._tracker.update(sv_detections, timestamp=at)
        ids = np.full(len(detections), UNTRACKED, np.int64)
        if len(tracked):
            raw = np.asarray(tracked.tracker_id, np.int64)
            shifted = np.where(raw >= 0, raw + self._id_offset, UNTRACKED)
            ids[np.asarray(tracked.data["index"], np.int64)] = shifted
            self._next_id = max(self._next_id, int(shifted.max()) + 1)
        return self._with_ids(detections, ids)

    def _finite(self, detections: Detections, at: float) -> Detections:
        """Drop the boxes with a NaN or infinite coordinate; count and (rate-limited) log them."""
        is_finite = np.isfinite(detections.xyxy).all(axis=1)
        dropped = len(detections) - int(is_finite.sum())
        if dropped == 0:
            return detections
        self.dropped_non_finite += dropped
        if self._drop_log.admit(now=at) is not None:
            logger.warning(
                "%s: dropped %d detection(s) with a non-finite box (%d so far); check the detector",
                self.camera_id,
                dropped,
                self.dropped_non_finite,
            )
        return detections.filter(is_finite)

    def restart(self) -> None:
        """End every track: the next frame's objects start new ones, under ids never handed out before.

        For detections that no longer continue the previous ones (another model: its classes
        may be ordered or named differently, its boxes drawn differently). A rule that follows
        an object keyed by track id finds it again by box overlap, as after an id switch.
        """
        self._id_offset = self._next_id
        self._tracker = self._new_tracker()

    def reconfigure(self, config: TrackingConfig, *, fps: float) -> None:
        """Track with other settings from the next frame: every track ends (``restart()``), ids keep counting."""
        self.config = config
        self._fps = fps
        self.restart()

    def _monotonic(self, at: float) -> float:
        """Keep timestamps strictly increasing; restart the tracker if time went back (ids stay unique)."""
        last = self._last_at
        if last is not None and at < last - _BACKWARDS_TOLERANCE_S:
            logger.info("%s: capture time went back %.1fs; tracks restart", self.camera_id, last - at)
            self.restart()
        elif last is not None and at <= last:
            at = last + _MIN_STEP_S
        self._last_at = at
        return at

    @staticmethod
    def _with_ids(detections: Detections, ids: np.ndarray) -> Detections:
        return Detections(
            xyxy=detections.xyxy,
            confidence=detections.confidence,
            class_id=detections.class_id,
            class_names=detections.class_names,
            tracker_id=ids,
        )
