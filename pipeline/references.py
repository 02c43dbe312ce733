"""Learned reference images of zones: what a clear exit or a clean floor looks like.

``ZoneReference`` learns a zone's reference automatically the first time the zone is
seen unobstructed (no detection on it) and still (nothing moving) for
``learn_after_s``; afterwards it reports the *changed fraction*: the share of the
zone's visible pixels whose grey level differs from the reference by more than
``pixel_threshold`` on average over their 5x5 neighbourhood. People (and other moving objects the rules name) are masked
out of both the comparison and the learning, so a person walking through an exit
neither blocks it nor spoils its reference. While the zone stays clear the
reference follows slow lighting drift (``adapt_rate``).

Limits, by design: an object already standing in a zone when the camera starts is
learned as part of "clear" — the control room resets the reference
(``CameraAnalyzer.reset_reference``) once the zone is really clear. A lighting or
exposure change larger than ``pixel_threshold`` (lights switched, a camera's
auto-exposure reacting to a dark coat) looks like a change too: while the zone is
clear and still, ``adapt_rate`` follows slow drift only. (Normalising by the
brightness outside the zone was tried and made real footage worse: the saturated
white walls of the test footage do not follow the floor's exposure.)

Rules that refresh a reference at checks instead of adapting it every frame (the dust
rule without a cleaning schedule) keep an *anchor*: the image last known clean (first
learned, or adopted at the end of a cleaning window). ``refresh`` takes a new image
only if it differs from the anchor by lighting alone (a gain and an offset over the
zone), so dust that creeps in a little between checks is not learned as clean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anjian.pipeline.config import ReferenceConfig
from anjian.pipeline.zones import Zone

__all__ = ["ReferenceReading", "ZoneReference", "small_grey"]

_MIN_VISIBLE = 0.1  # below this fraction of the zone visible, no reading


def small_grey(image: object, width_px: int) -> np.ndarray:
    """Scale a BGR ``(h, w, 3)`` frame (numpy or GPU tensor) to ``width_px`` wide, grey, lightly blurred.

    Returns:
        ``(h', w') float32`` grey levels 0-255.
    """
    height, width = int(image.shape[0]), int(image.shape[1])  # type: ignore[attr-defined]
    step = max(1, width // (width_px * 2))
    small = image[::step, ::step]  # type: ignore[index]
    if not isinstance(small, np.ndarray):
        small = small.cpu().numpy()
    small = np.ascontiguousarray(small)
    out_h = max(1, round(height * width_px / width))
    import cv2  # on first use: the site config imports the rules, and must not load OpenCV

    grey = cv2.cvtColor(
        cv2.resize(small, (width_px, out_h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY
    )
    return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)


@dataclass(frozen=True, slots=True)
class ReferenceReading:
    """One comparison of a zone with its reference.

    Attributes:
        changed_fraction: Share of the zone's visible pixels that differ from the reference, 0..1.
        visible_fraction: Share of the zone not masked out (people), 0..1.
        changed_xyxy_norm: Bounding box of the changed pixels, normalised, or ``None`` if none changed.
        is_still: The zone did not change since the previous frame (nothing moving in it).
    """

    changed_fraction: float
    visible_fraction: float
    changed_xyxy_norm: tuple[float, float, float, float] | None = None
    is_still: bool = True


class ZoneReference:
    """The learned reference image of one zone.

    Args:
        zone: The zone.
        config: Learning and comparison parameters.

    Example:
        >>> ref = ZoneReference(zone, ReferenceConfig(learn_after_s=10))
        >>> reading = ref.observe(small_grey(frame.image, 160), now, is_obstructed=False, masked=None)
    """

    def __init__(self, zone: Zone, config: ReferenceConfig) -> None:
        self.zone = zone
        self.config = config
        self.image: np.ndarray | None = None
        self.anchor: np.ndarray | None = None
        self.learned_at: float | None = None
        self._previous: np.ndarray | None = None
        self._calm_since: float | None = None

    @property
    def is_learned(self) -> bool:
        """True once a reference exists."""
        return self.image is not None

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the reference, its anchor and the previous frame."""
        return sum(a.nbytes for a in (self.image, self.anchor, self._previous) if a is not None)

    def reset(self) -> None:
        """Forget the reference; a new one is learned the next time the zone is seen clear."""
        self.image = None
        self.anchor = None
        self.learned_at = None
        self._calm_since = None

    def observe(
        self, grey: np.ndarray, now: float, *, is_obstructed: bool, masked: np.ndarray | None
    ) -> ReferenceReading | None:
        """Compare one frame with the reference, learning or adapting it when the zone is clear and still.

        Args:
            grey: ``(h', w') float32`` output of ``small_grey``.
            now: Capture time, epoch seconds.
            is_obstructed: A detection (of any class) covers the zone: do not learn.
            masked: ``(h', w') bool`` pixels to ignore (people), or ``None``.

        Returns:
            The reading, or ``None`` while no reference exists or the zone is hidden.
        """
        h, w = grey.shape
        zone = self.zone.mask((w, h))
        visible = zone if masked is None else zone & ~masked
        zone_area = max(1, int(zone.sum()))
        visible_fraction = float(visible.sum()) / zone_area
        if self.image is not None and self.image.shape != grey.shape:
            self.reset()  # the stream changed resolution
        is_still = (
            self._previous is not None
            and self._previous.shape == grey.shape
            and float(np.abs(grey - self._previous)[zone].mean()) < self.config.still_max_diff
        )
        self._previous = grey
        is_calm = is_still and not is_obstructed and visible_fraction >= 1.0 - 1e-9
        if self.image is None:
            self._calm_since = (
                (self._calm_since if self._calm_since is not None else now) if is_calm else None
            )
            if self._calm_since is not None and now - self._calm_since >= self.config.learn_after_s:
                self.adopt(grey, now)
            return None
        if visible_fraction < _MIN_VISIBLE:
            return None
        changed = self._changed(grey, self.image, visible)
        fraction = float(changed.sum()) / max(1, int(visible.sum()))
        if is_calm and fraction < 0.05 and self.config.adapt_rate > 0:
            a = self.config.adapt_rate
            self.image[zone] = (1 - a) * self.image[zone] + a * grey[zone]
        box = None
        if changed.any():
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            box = (cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h)
        return ReferenceReading(fraction, visible_fraction, box, is_still)

    def adopt(self, grey: np.ndarray, now: float) -> None:
        """Take ``grey`` as the reference and the anchor now (the zone is known to be clean)."""
        self.image = grey.copy()
        self.anchor = grey.copy()  # its own copy: ``observe`` blends lighting drift into ``image`` in place
        self.learned_at = now

    def refresh(self, grey: np.ndarray, now: float, *, masked: np.ndarray | None, max_change: float) -> bool:
        """Take ``grey`` as the reference if it differs from the anchor by lighting alone; say whether it did.

        Follows lighting drift between known-clean moments without learning dust that creeps in: the
        anchor, fitted to ``grey`` by one gain and offset over the zone's visible pixels, must leave
        less than ``max_change`` of them changed. The anchor itself stays.
        """
        if self.anchor is None or self.anchor.shape != grey.shape:
            return False
        h, w = grey.shape
        zone = self.zone.mask((w, h))
        visible = zone if masked is None else zone & ~masked
        if visible.sum() < 2:
            return False
        gain, offset = np.polyfit(self.anchor[visible], grey[visible], 1)
        relit = (gain * self.anchor + offset).astype(np.float32)
        fraction = float(self._changed(grey, relit, visible).sum()) / max(1, int(visible.sum()))
        if fraction >= max_change:
            return False
        self.image = grey.copy()
        self.learned_at = now
        return True

    def _changed(self, grey: np.ndarray, reference: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """Visible pixels whose mean difference from ``reference`` over a 5x5 neighbourhood passes the threshold.

        Averaging over the neighbourhood lets sensor noise cancel, while a flat object over a textured
        floor (whose pixels differ from the floor's by a varying amount) shows whole.
        """
        import cv2  # on first use: the site config imports the rules, and must not load OpenCV

        difference: np.ndarray = cv2.blur(np.abs(grey - reference), (5, 5))
        changed: np.ndarray = (difference > self.config.pixel_threshold) & visible
        return changed
