"""Scripted detections and frames for rule tests: what a detector and tracker would have said."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.incidents import EventContext, IncidentUpdate
from anjian.pipeline.rules import build_environment
from anjian.pipeline.rules.base import BaseRule, RuleEnvironment

NAMES = {
    0: "person",
    1: "fallen_person",
    2: "fire",
    3: "smoke",
    4: "cigarette",
    5: "pallet",
    6: "forklift",
    7: "dust",
}
CONTEXT = EventContext(site_id="s", workshop_id="w", camera_id="cam", model_version="m@1")
SIZE_WH = (200, 100)
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC, a Tuesday

Obj = (
    tuple[str, tuple[float, float, float, float]] | tuple[str, tuple[float, float, float, float], float, int]
)
"""``(class, xyxy_px)`` or ``(class, xyxy_px, confidence, track_id)``."""


def dets(*objects: Obj, is_tracked: bool = False) -> Detections:
    """Detections of ``objects`` (confidence 0.9 and no track unless given)."""
    ids = {v: k for k, v in NAMES.items()}
    return Detections(
        xyxy=np.array([o[1] for o in objects], np.float32).reshape(-1, 4),
        confidence=np.array([o[2] if len(o) > 2 else 0.9 for o in objects], np.float32),
        class_id=np.array([ids[o[0]] for o in objects], np.int32),
        class_names=NAMES,
        tracker_id=np.array([o[3] for o in objects], np.int64) if is_tracked else None,
    )


def frame(t: float, index: int = 0, image: np.ndarray | None = None) -> Frame:
    """A frame captured at ``t`` (black 200x100 unless ``image``)."""
    if image is None:
        image = np.zeros((SIZE_WH[1], SIZE_WH[0], 3), np.uint8)
    return Frame(camera_id="cam", image=image, captured_at=t, pts_s=t - T0, index=index)


def environment(**camera: object) -> RuleEnvironment:
    """The rule environment of a camera built from keyword config (zones, schedules, anchors)."""
    return build_environment(CameraPipelineConfig(id="cam", url="x.mp4", **camera), CONTEXT)  # type: ignore[arg-type]


def run(
    rule: BaseRule, script: Sequence[Detections], *, fps: float = 1.0, t0: float = T0
) -> list[tuple[int, IncidentUpdate]]:
    """Feed ``script`` (one entry per frame at ``fps``); return ``(frame index, update)`` pairs."""
    out = []
    for i, d in enumerate(script):
        out += [(i, u) for u in rule.process(frame(t0 + i / fps, i), d)]
    return out


def kinds(updates: list[tuple[int, IncidentUpdate]]) -> list[tuple[int, str]]:
    """``(frame index, kind)`` of each update, for compact asserts."""
    return [(i, u.kind.value) for i, u in updates]
