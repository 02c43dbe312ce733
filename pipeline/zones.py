"""Zones: normalised polygons of a camera view, and which detections are in them.

A detection is *in* a zone when its anchor point is: the bottom-centre of a person
box (where the feet are, so a person walking in front of a zone is not in it), the
centre of most other boxes. Zones also answer how much of their area a set of boxes
covers (for obstructed exits), and give a pixel mask at any resolution (for
reference-image comparisons).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from anjian.pipeline.config import Anchor, BaseZoneConfig

__all__ = ["Zone", "ZoneSet", "anchor_points", "box_mask"]

_COVERAGE_GRID = 64  # coverage is measured on a grid this many cells wide over the zone's bounding box


def anchor_points(xyxy: np.ndarray, anchors: Sequence[Anchor]) -> np.ndarray:
    """Return the anchor point of each box.

    Args:
        xyxy: ``(n, 4)`` boxes, any units.
        anchors: One anchor per box.

    Returns:
        ``(n, 2) float64`` points in the boxes' units.
    """
    if len(xyxy) != len(anchors):
        raise ValueError(f"expected one anchor per box, got {len(anchors)} anchors for {len(xyxy)} boxes")
    points = np.zeros((len(xyxy), 2), np.float64)
    for i, (box, anchor) in enumerate(zip(xyxy, anchors, strict=True)):
        x = (float(box[0]) + float(box[2])) / 2
        y = {
            "bottom_center": float(box[3]),
            "center": (float(box[1]) + float(box[3])) / 2,
            "top_center": float(box[1]),
        }[anchor]
        points[i] = (x, y)
    return points


class Zone:
    """One zone of a camera, in normalised coordinates.

    Example:
        >>> zone = Zone(ZoneConfig(id="desk", kind="post", polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)]))
        >>> zone.contains(np.array([[0.25, 0.5], [0.75, 0.5]])).tolist()
        [True, False]
    """

    def __init__(self, config: BaseZoneConfig) -> None:
        self.config = config
        self.id = config.id
        self.kind = config.kind
        self.polygon = np.array(config.polygon, np.float64)
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    @property
    def label(self) -> str:
        """Name shown in the control room (the id when unnamed)."""
        return self.config.name or self.config.id

    def contains(self, points_norm: np.ndarray) -> np.ndarray:
        """Return an ``(n,) bool`` mask of the normalised ``(n, 2)`` points inside the polygon (edges count)."""
        if len(points_norm) == 0:
            return np.zeros((0,), bool)
        import cv2  # on first use: the site config imports the rules, and must not load OpenCV

        contour = self.polygon.astype(np.float32).reshape(-1, 1, 2)
        return np.array(
            [cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0 for x, y in points_norm],
            dtype=bool,
        )

    def mask(self, resolution_wh: tuple[int, int]) -> np.ndarray:
        """Return the zone as an ``(h, w) bool`` pixel mask at ``resolution_wh`` (cached per size)."""
        cached = self._masks.get(resolution_wh)
        if cached is None:
            import cv2  # on first use: the site config imports the rules, and must not load OpenCV

            w, h = resolution_wh
            canvas = np.zeros((h, w), np.uint8)
            pts = np.round(self.polygon * [w - 1, h - 1]).astype(np.int32)
            cv2.fillPoly(canvas, [pts], 1)
            cached = canvas.astype(bool)
            cached.flags.writeable = False
            self._masks[resolution_wh] = cached
        return cached

    def coverage(self, xyxy_norm: np.ndarray) -> float:
        """Fraction of the zone's area covered by the union of the normalised ``(n, 4)`` boxes, 0..1."""
        if len(xyxy_norm) == 0:
            return 0.0
        zone_mask = self.mask((_COVERAGE_GRID, _COVERAGE_GRID))
        area = int(zone_mask.sum())
        if area == 0:
            return 0.0
        covered = box_mask(xyxy_norm, (_COVERAGE_GRID, _COVERAGE_GRID))
        return float((covered & zone_mask).sum()) / area


def box_mask(xyxy_norm: np.ndarray, resolution_wh: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """Return an ``(h, w) bool`` mask of the union of normalised boxes, each widened by ``margin`` of its size."""
    w, h = resolution_wh
    out = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in xyxy_norm:
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        c1, c2 = max(0, int(np.floor((x1 - mx) * w))), min(w, int(np.ceil((x2 + mx) * w)))
        r1, r2 = max(0, int(np.floor((y1 - my) * h))), min(h, int(np.ceil((y2 + my) * h)))
        out[r1:r2, c1:c2] = True
    return out


class ZoneSet:
    """The zones of one camera, with its per-class anchors and its exclusion zones.

    Args:
        zones: The camera's zone configs.
        anchors: Anchor per class name; other classes use the box centre.
    """

    def __init__(self, zones: Sequence[BaseZoneConfig], anchors: Mapping[str, Anchor] | None = None) -> None:
        self.zones = [Zone(z) for z in zones]
        self.by_id = {z.id: z for z in self.zones}
        self.anchors: dict[str, Anchor] = dict(anchors or {})

    def of_kind(self, kind: str, ids: Sequence[str] = ()) -> list[Zone]:
        """Zones of ``kind``, or exactly ``ids`` when given."""
        if ids:
            return [self.by_id[i] for i in ids]
        return [z for z in self.zones if z.kind == kind]

    def anchors_norm(
        self, xyxy: np.ndarray, class_names: Sequence[str], resolution_wh: tuple[int, int]
    ) -> np.ndarray:
        """Normalised ``(n, 2)`` anchor point of each pixel box, by its class."""
        w, h = resolution_wh
        points = anchor_points(xyxy, [self.anchors.get(name, "center") for name in class_names])
        return points / [w, h] if len(points) else points

    def excluded(self, points_norm: np.ndarray, behaviour: str) -> np.ndarray:
        """``(n,) bool``: points inside an exclusion zone that applies to ``behaviour``."""
        out = np.zeros((len(points_norm),), bool)
        for zone in self.zones:
            if zone.kind == "exclusion" and (not zone.config.excludes or behaviour in zone.config.excludes):
                out |= zone.contains(points_norm)
        return out
