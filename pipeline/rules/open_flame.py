"""Open flame: a fire-class detection confirmed in k of the last n analysed frames, that flickers."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator

from anjian.cameras.fields import FractionOrZero
from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.config import Severity, UpdateIntervalS, WindowedConfig
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.incidents import EventContext, IncidentUpdate
from anjian.pipeline.rules.base import (
    BaseRule,
    Confirmation,
    RuleEnvironment,
    boxes_of,
    normalised,
    region_mean,
    select,
)
from anjian.pipeline.rules.spec import BehaviourSpec

__all__ = ["SPEC", "OpenFlameConfig", "OpenFlameRule", "flicker", "grey_patch", "moving_fraction"]


class OpenFlameConfig(WindowedConfig):
    """Open flame: a fire-class detection seen in ``k`` of the last ``n`` analysed frames, that flickers."""

    severity: Severity = RiskLevel.RED
    classes: list[str] = Field(
        ["fire"],
        min_length=1,
        description="Detector classes that count as flame (add 'smoke' to count smoke).",
    )
    update_interval_s: UpdateIntervalS = 5.0
    is_temporal_check: bool = Field(
        True,
        description="Reject flames that do not change over the window (a static orange lamp, a painted sign, "
        "a steady reflection): a real flame flickers, in its box's size and brightness or in the pixels inside.",
    )
    min_variation: FractionOrZero = Field(
        0.03,
        description="Smallest coefficient of variation (std/mean) of box area or brightness that counts as "
        "flickering.",
    )
    min_moving_fraction: FractionOrZero = Field(
        0.015,
        description="Smallest median fraction of the flame box's pixels that move between flame frames (grey "
        "level changed by more than 25, brightness shifts and one-pixel camera shake discounted) that counts as "
        "flickering. Real flames measure 0.018 to 0.55, a still scene under sensor noise 0.000, shaken by a "
        "pixel 0.013. It is what a flame filling the view passes on: its box clipped by the border, bright all "
        "over.",
    )
    zones: list[str] = Field(default_factory=list, description="Only flames in these zones; empty: anywhere.")

    @model_validator(mode="after")
    def _window_holds_two_flames(self) -> OpenFlameConfig:
        if self.is_temporal_check and self.n < 2:
            raise ValueError(
                f"is_temporal_check compares at least two flame frames, so the window must hold two: "
                f"got n={self.n}; set n >= 2 or is_temporal_check: false"
            )
        return self

    def named_zones(self) -> list[tuple[str, list[str], str]]:
        """The zones flames are looked for in (any kind)."""
        return [("zones", self.zones, "")]


_KEY = "frame"
_PATCH_SIDE_PX = 64
_MOVING_LEVEL = 25.0  # grey levels: above sensor noise after the mean is removed


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


def grey_patch(image: object, xyxy_norm: np.ndarray, shape_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Grey levels of a normalised box of an ``(h, w, 3)`` BGR image, scaled down to a small patch.

    Args:
        image: numpy array, or a GPU tensor (cropped there, only the crop is downloaded).
        xyxy_norm: ``(4,)`` box in ``[0, 1]`` image coordinates.
        shape_hw: Patch size; by default the box's own size, its longer side capped at 64 px.

    Returns:
        ``(h, w) float32`` grey patch (0-255).
    """
    h, w = int(image.shape[0]), int(image.shape[1])  # type: ignore[attr-defined]
    x1, y1 = min(w - 1, max(0, int(xyxy_norm[0] * w))), min(h - 1, max(0, int(xyxy_norm[1] * h)))
    x2 = min(w, max(x1 + 1, int(np.ceil(xyxy_norm[2] * w))))
    y2 = min(h, max(y1 + 1, int(np.ceil(xyxy_norm[3] * h))))
    crop = image[y1:y2, x1:x2]  # type: ignore[index]
    if not isinstance(crop, np.ndarray):
        crop = crop.cpu().numpy()
    import cv2  # on first use: the site config imports the rules, and must not load OpenCV

    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2GRAY)
    if shape_hw is None:
        scale = min(1.0, _PATCH_SIDE_PX / max(grey.shape))
        shape_hw = (max(1, round(grey.shape[0] * scale)), max(1, round(grey.shape[1] * scale)))
    if grey.shape != shape_hw:
        grey = cv2.resize(grey, (shape_hw[1], shape_hw[0]), interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32)


def moving_fraction(before: np.ndarray, after: np.ndarray, *, max_shift_px: int = 1) -> float:
    """Fraction of a region's pixels that moved: grey level changed by more than 25 between two patches.

    Each patch's mean is removed first (a change of exposure moves every pixel alike),
    and the patches are compared at their best alignment within ``max_shift_px`` (a
    vibrating camera shifts a still object by a pixel; a flame changes shape).

    Measured on real footage (patches of 64 px, frames 0.2-2 s apart): flames 0.018 to
    0.55 (median per video); a still frame under sensor noise (sigma 3-8 grey levels) and
    JPEG 0.000, shaken by up to one pixel 0.013.

    Args:
        before: ``(h, w) float32`` grey patch of the region on an earlier frame.
        after: Same region, same shape, on a later frame.
        max_shift_px: Largest alignment shift tried, in patch pixels.

    Returns:
        The smallest fraction over the alignments tried, in ``[0, 1]``.

    Raises:
        ValueError: The patches differ in shape.
    """
    if before.shape != after.shape:
        raise ValueError(f"patches must have one shape, got {before.shape} and {after.shape}")
    h, w = before.shape
    best = 1.0
    for dy in range(-max_shift_px, max_shift_px + 1):
        for dx in range(-max_shift_px, max_shift_px + 1):
            a = before[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            b = after[max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
            if a.size:
                moved = np.abs((b - b.mean()) - (a - a.mean())) > _MOVING_LEVEL
                best = min(best, float(moved.mean()))
    return best


@dataclass(frozen=True, slots=True)
class _Sample:
    """The largest flame box of one hit frame."""

    area: float
    brightness: float
    moving: float | None  # vs the previous flame frame, same region (moving_fraction); None for the first


class OpenFlameRule(BaseRule):
    """Raises ``open_flame`` when flame is seen in ``k`` of the last ``n`` frames and flickers.

    A single-frame flash (a welding spark, a reflection) never fills the window. With
    ``is_temporal_check``, the largest flame box of each hit frame is measured: its area,
    its mean brightness, and how many pixels inside the previous flame frame's box
    moved since (``moving_fraction``). Flame whose box keeps its size and brightness
    *and* whose pixels stay still across the window — a static orange lamp, a painted
    sign, a steady reflection — is not a flame; one flame frame shows no change, so the
    check needs at least two in the window whatever ``k`` is (``k: 1`` would otherwise
    raise on a static lamp at once). The pixel measure is what a flame filling
    the view passes on: its box is clipped by the image border (the area cannot grow) and
    it is bright all over (the mean barely moves), but its tongues keep moving. Flames
    inside exclusion zones (a furnace mouth) are ignored. Detections count from the
    site's ``min_confidence``, else the model's calibrated fire threshold. The incident
    stays open while flame keeps appearing and closes after ``clear_after_s``
    without any; the next one needs a fresh confirmation.
    """

    behaviour = Behaviour.OPEN_FLAME

    def __init__(self, config: OpenFlameConfig, env: RuleEnvironment | EventContext) -> None:
        super().__init__(config, env)
        self.config: OpenFlameConfig = config
        self._confirm = Confirmation(k=config.k, n=config.n, min_duration_s=config.min_duration_s)
        self._samples: deque[_Sample | None] = deque(maxlen=config.n)
        self._patch: tuple[np.ndarray, np.ndarray] | None = None  # last flame box (normalised) and its pixels
        self._zones = self.env.zones.of_kind("", config.zones) if config.zones else []
        self.book.notify_closed(lambda _key: self._forget())  # ended by expire too: the next needs confirming

    def _flames(self, frame: Frame, detections: Detections) -> tuple[Detections, str | None]:
        flames = select(detections, self.config.classes, self.floors(self.config.classes))
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
            box = np.clip(normalised(flames, frame.resolution_wh)[largest], 0.0, 1.0)
            area = float((box[2] - box[0]) * (box[3] - box[1]))
            brightness = region_mean(frame.image, flames.xyxy[largest])
            moving = self._moving(frame, box) if self.config.is_temporal_check else None
            self._samples.append(_Sample(area, brightness, moving))
        else:
            self._samples.append(None)
            if not any(self._samples):
                self._patch = None  # no flame in the window: a later one is compared with nothing stale
        is_confirmed = self._confirm.update(now, is_present)
        if self.config.is_temporal_check and not self._is_flickering():
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
            message=self.say(
                "flame.seen", hits=self._confirm.hits, frames=len(self._samples), where=self.where(zone_id)
            ),
        )
        if update is None:
            return []
        if not self.book.is_open(_KEY):
            self._forget()
        return [update]

    def _moving(self, frame: Frame, box: np.ndarray) -> float | None:
        """Moving fraction inside the previous flame box since that frame; remembers this frame's box."""
        moving = None
        if self._patch is not None:
            before_box, before = self._patch
            after = grey_patch(frame.image, before_box, (before.shape[0], before.shape[1]))
            moving = moving_fraction(before, after)
        self._patch = (box, grey_patch(frame.image, box))
        return moving

    def _is_flickering(self) -> bool:
        """Whether the window's (two or more) flame boxes vary in size or brightness, or their pixels move."""
        hits = [s for s in self._samples if s is not None]
        if len(hits) < 2:
            return False  # one flame frame shows no change: not yet a flicker
        if flicker([s.area for s in hits], [s.brightness for s in hits]) >= self.config.min_variation:
            return True
        moving = [s.moving for s in hits if s.moving is not None]
        return bool(moving) and float(np.median(moving)) >= self.config.min_moving_fraction

    def close(self, now: float) -> list[IncidentUpdate]:
        """Close the open incident, if any."""
        self._forget()
        return super().close(now)

    def _forget(self) -> None:
        """Drop the confirmation and the flicker measurements (the next incident starts afresh)."""
        self._confirm.reset()
        self._samples.clear()
        self._patch = None


SPEC = BehaviourSpec(
    key="open_flame",
    config=OpenFlameConfig,
    rule=OpenFlameRule,
    description="Fire seen in k of n frames, flickering.",
    raises=(Behaviour.OPEN_FLAME,),
    zone_kinds=(),
)
