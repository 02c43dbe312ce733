"""Camera faults as alerts: offline too long, frozen image, black or covered lens.

A camera that stops watching is itself a safety problem, so its faults travel the
same way as behaviour events: ``CameraFaultMonitor`` feeds an ``IncidentBook`` of
``Behaviour.CAMERA_FAULT`` and returns its ``IncidentUpdate``s, which the runner
publishes to the ``EventSink`` like any rule's. Each fault kind is its own
incident (key ``offline``, ``frozen`` or ``black``), raised once, re-published
while it lasts and closed (``ended_at``) once the camera has been fine for
``faults.clear_after_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from anjian.cameras.config import CameraConfig
from anjian.cameras.decode import is_live_url
from anjian.cameras.frame import Frame
from anjian.cameras.health import CameraHealth, CameraState
from anjian.cameras.url import mask_credentials
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.incidents import CLOCK_STEP_S, EventContext, IncidentBook, IncidentUpdate
from anjian.pipeline.messages import text

__all__ = ["AnalysisFailure", "CameraFaultMonitor", "FaultKind", "ImageStats", "image_stats"]

_THUMB_WIDTH = 160  # analysed pixels per row: enough to see a change, cheap at 1080p
_GREY_WEIGHTS_BGR = np.array([[0.114, 0.587, 0.299]], np.float32)  # luma (BT.601) of a B, G, R pixel

FaultKind = str
"""Incident key of a camera fault: ``"offline"``, ``"frozen"``, ``"black"`` or ``"not_analysed"``."""


@dataclass(frozen=True, slots=True)
class AnalysisFailure:
    """The pipeline's detector has failed on every batch since ``since``: no camera's frames are analysed.

    Attributes:
        since: Wall clock, epoch seconds, of the first failure of the run.
        reason: The latest failure, one line.
    """

    since: float
    reason: str


@dataclass(frozen=True, slots=True)
class ImageStats:
    """What the fault checks need from one frame.

    Attributes:
        grey: ``(h', w') float32`` grey levels of a strided subsample (no averaging, so
            sensor noise stays visible and a live image never looks frozen).
        mean: Mean grey level, 0-255.
        std: Standard deviation of the grey levels.
    """

    grey: np.ndarray
    mean: float
    std: float


def image_stats(frame: Frame) -> ImageStats:
    """Subsample ``frame`` to about 160 px wide, in grey, and measure it (works on GPU frames too).

    Args:
        frame: A decoded frame, its image on the host or on the GPU.

    Returns:
        The frame's ``ImageStats``.
    """
    width = frame.resolution_wh[0]
    step = max(1, width // _THUMB_WIDTH)
    small = frame.image[::step, ::step]
    if not isinstance(small, np.ndarray):  # a GPU tensor: bring back only the subsample
        small = small.cpu().numpy()
    # the float copy is contiguous: OpenCV's weighted channel sum and mean/std on it take a third of numpy's time
    grey = cv2.transform(small.astype(np.float32), _GREY_WEIGHTS_BGR)
    mean, std = cv2.meanStdDev(grey)
    return ImageStats(grey=grey, mean=float(mean[0, 0]), std=float(std[0, 0]))


class CameraFaultMonitor:
    """Watches one camera's health and frames and raises ``camera_fault`` incidents.

    * ``offline``: the camera has delivered no frame for ``offline_after_s`` (any
      state but online: connecting, stalled, offline, failed_config).
    * ``frozen``: a live camera's image has not changed (mean absolute grey-level
      change at most ``frozen_max_diff``) for ``frozen_after_s``.
    * ``black``: the image has been black (mean grey at most ``black_max_luma``) or
      uniform (grey std at most ``uniform_max_std``: lens covered) for ``black_after_s``.
      A black or uniform image is not reported as frozen as well.
    * ``not_analysed``: the camera delivers video but the pipeline's detector has failed on
      every batch for ``offline_after_s`` (a model that loads but cannot run): the camera
      looked healthy while nothing was analysed and no alert could rise.

    Call ``observe`` for the camera on every pass of the analysis loop, with the frame
    just analysed or ``None`` (at least about once a second, so offline is noticed
    without frames); publish what it returns; call ``close`` when the camera is
    removed or the pipeline stops.

    Example:
        >>> monitor = CameraFaultMonitor(camera_config, context)
        >>> for update in monitor.observe(source.health(), frame, clock()):
        ...     sink.publish(update.event)
    """

    def __init__(self, config: CameraConfig, context: EventContext) -> None:
        """Create the monitor of ``config``'s camera.

        Args:
            config: The camera; its ``faults`` section sets thresholds and severity.
            context: Site, workshop, camera and model of the events.
        """
        self.config = config
        self._language = context.language
        faults = config.faults
        self._book = IncidentBook(
            behaviour=Behaviour.CAMERA_FAULT,
            severity=RiskLevel(faults.severity),
            clear_after_s=faults.clear_after_s,
            update_interval_s=faults.update_interval_s,
            context=context,
        )
        self._is_live = is_live_url(config.url.get_secret_value())
        self._previous: ImageStats | None = None
        self._previous_at: float | None = None
        self._unchanged_since: float | None = None
        self._blank_since: float | None = None

    def is_open(self, kind: FaultKind) -> bool:
        """True while a fault of ``kind`` (``offline``, ``frozen``, ``black``) is open."""
        return self._book.is_open(kind)

    def observe(
        self,
        health: CameraHealth,
        frame: Frame | None,
        now: float,
        *,
        analysis_failure: AnalysisFailure | None = None,
    ) -> list[IncidentUpdate]:
        """Feed the camera's current health and, if one was analysed, its frame.

        Args:
            health: The camera's health snapshot.
            frame: The frame analysed on this pass, or ``None``.
            now: Wall clock, epoch seconds.
            analysis_failure: The pipeline's detector failing, if it is.

        Returns:
            Event revisions to publish (raised, updated or resolved faults), possibly none.
        """
        if not self.config.faults.enabled or health.state == CameraState.STOPPED:
            return []
        if health.state != CameraState.ONLINE:  # a black or still picture does not span an outage
            self._previous = self._previous_at = self._unchanged_since = self._blank_since = None
        updates = [
            self._observe_offline(health, now),
            self._observe_not_analysed(health, analysis_failure, now),
        ]
        if frame is not None:
            updates += self._observe_image(frame)
        return [u for u in updates if u is not None]

    def close(self, now: float) -> list[IncidentUpdate]:
        """Close every open fault (the camera is removed or the pipeline stops)."""
        return self._book.close_all(now)

    def _observe_offline(self, health: CameraHealth, now: float) -> IncidentUpdate | None:
        is_down = health.state != CameraState.ONLINE
        down_since = health.down_since if health.down_since is not None else health.since
        reason = mask_credentials(health.last_error or "no frame yet")
        return self._observe_fault(
            "offline",
            "camera.no_video",
            now=now,
            is_present=is_down,
            since=down_since,
            after_s=self.config.faults.offline_after_s,
            state=health.state,
            reason=reason,
        )

    def _observe_not_analysed(
        self, health: CameraHealth, failure: AnalysisFailure | None, now: float
    ) -> IncidentUpdate | None:
        """A camera online while the detector fails (an offline camera has its own fault)."""
        is_present = failure is not None and health.state == CameraState.ONLINE
        return self._observe_fault(
            "not_analysed",
            "camera.not_analysed",
            now=now,
            is_present=is_present,
            since=failure.since if failure is not None else None,
            after_s=self.config.faults.offline_after_s,
            reason=mask_credentials(failure.reason) if failure is not None else "",
        )

    def _observe_fault(
        self,
        key: str,
        message_key: str,
        *,
        now: float,
        is_present: bool,
        since: float | None,
        after_s: float,
        **message_values: object,
    ) -> IncidentUpdate | None:
        """Feed one fault to the book: present since ``since``, confirmed once it has lasted ``after_s``.

        Its sentence is the text ``message_key`` naming the camera, filled with ``message_values``.
        """
        message = text(message_key, self._language, camera=self.config.display_name, **message_values)
        if since is not None and since - now > CLOCK_STEP_S:
            since = now  # the clock went back: the fault is timed from here
        return self._book.observe(
            key,
            now=now,
            is_confirmed=is_present and since is not None and now - since >= after_s,
            is_present=is_present,
            confidence=1.0,
            started_at=since,
            message=message,
        )

    def _observe_image(self, frame: Frame) -> list[IncidentUpdate | None]:
        faults = self.config.faults
        at = frame.captured_at
        stats = image_stats(frame)
        is_black = stats.mean <= faults.black_max_luma
        is_blank = is_black or stats.std <= faults.uniform_max_std
        previous = self._previous
        is_unchanged = (
            not is_blank
            and previous is not None
            and previous.grey.shape == stats.grey.shape
            and float(np.abs(previous.grey - stats.grey).mean()) <= faults.frozen_max_diff
        )
        if is_unchanged:
            if self._unchanged_since is None:
                self._unchanged_since = self._previous_at if self._previous_at is not None else at
        else:
            self._unchanged_since = None
        if not is_blank:
            self._blank_since = None
        elif self._blank_since is None:
            self._blank_since = at
        self._previous, self._previous_at = stats, at
        blank_what = text("camera.black" if is_black else "camera.covered", self._language)
        updates = [
            self._observe_fault(
                "black",
                "camera.blank",
                now=at,
                is_present=is_blank,
                since=self._blank_since,
                after_s=faults.black_after_s,
                what=blank_what,
                mean=stats.mean,
                std=stats.std,
            )
        ]
        if self._is_live:  # a file may legitimately show a still scene
            updates.append(
                self._observe_fault(
                    "frozen",
                    "camera.frozen",
                    now=at,
                    is_present=is_unchanged,
                    since=self._unchanged_since,
                    after_s=faults.frozen_after_s,
                )
            )
        return updates
