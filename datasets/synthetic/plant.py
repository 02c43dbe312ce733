"""The demo plant: four generated cameras whose footage plays one safety incident each few minutes.

``make demo`` shows the product, not one alert: within about three minutes of start the
four cameras of the demo plant show all six behaviours anjian watches, spaced like a
shift, each starting and ending so that its incident is raised and then ends:

=====  ==========================  =============================================================
 s     camera                      what happens
=====  ==========================  =============================================================
15     polishing line              a worker lights a cigarette by the line (until 45 s)
40     polishing workshop exit     a loaded pallet is put down in front of the exit (until 110 s)
55     ammonia machine room        the operator leaves the control panel post (back at 125 s)
60     polishing line              a small fire flares up at the machine (out at 85 s)
100    polishing line              dust spills on the floor by the line (swept at 160 s)
140    compressor hall             a worker walking through falls and lies still (up at 170 s)
=====  ==========================  =============================================================

Each clip is :data:`PLANT_LOOP_S` long and its first and last frames show the same quiet
scene, so the demo's looping cameras replay the shift seamlessly.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from anjian.datasets.synthetic.specs import (
    BlockKind,
    BlockSpec,
    Color,
    ConeSpec,
    DustSpec,
    ExitSpec,
    FigureSpec,
    FlameSpec,
    LampKind,
    LampSpec,
    Pose,
    SceneSpec,
)

__all__ = ["PLANT_CAMERAS", "PLANT_LOOP_S", "PlantCamera", "plant_scene_spec"]

PLANT_LOOP_S = 200.0
"""Length of each demo camera's clip; the cameras loop it."""


@dataclasses.dataclass(frozen=True)
class PlantCamera:
    """One generated camera of the demo plant and what it shows.

    Attributes:
        camera_id: The camera's id in the demo site config.
        script: What happens on it and when, for the README and the demo's banner.
    """

    camera_id: str
    script: str


PLANT_CAMERAS: tuple[PlantCamera, ...] = (
    PlantCamera("polishing-1-cam-1", "15 s smoking, 60 s open flame, 100 s dust by the line"),
    PlantCamera("polishing-1-cam-2", "40 s a pallet blocks the exit"),
    PlantCamera("refrigeration-1-cam-1", "55 s the operator leaves the control panel"),
    PlantCamera("refrigeration-1-cam-2", "140 s a worker falls"),
)


def plant_scene_spec(camera_id: str, size_wh: tuple[int, int] = (640, 360)) -> SceneSpec:
    """The scripted scene of one demo camera.

    Args:
        camera_id: One of :data:`PLANT_CAMERAS`' ids.
        size_wh: Image size ``(width, height)`` in pixels.

    Returns:
        The scene, to render at any time in ``[0, PLANT_LOOP_S)``.

    Raises:
        KeyError: If ``camera_id`` is not a demo camera.
    """
    builders = {
        "polishing-1-cam-1": _polishing_line,
        "polishing-1-cam-2": _workshop_exit,
        "refrigeration-1-cam-1": _machine_room,
        "refrigeration-1-cam-2": _compressor_hall,
    }
    if camera_id not in builders:
        raise KeyError(f"no demo camera {camera_id!r}; known: {', '.join(builders)}")
    return builders[camera_id](*size_wh)


_Look = tuple[int, float, Color, Color, float, tuple[float, float, float], float, bool]
_LOOKS: dict[str, _Look] = {
    # seed, horizon, wall, floor, light gain, tint, sensor noise, floor marking
    "polishing-1-cam-1": (11, 0.4, (150, 155, 150), (100, 108, 104), 0.95, (0.97, 1.0, 1.04), 2.5, False),
    "polishing-1-cam-2": (12, 0.5, (160, 160, 150), (95, 100, 110), 1.0, (1.0, 1.0, 1.0), 2.5, True),
    "refrigeration-1-cam-1": (13, 0.45, (140, 150, 160), (90, 110, 100), 0.9, (1.05, 1.0, 0.96), 3.0, False),
    "refrigeration-1-cam-2": (14, 0.38, (135, 140, 140), (105, 105, 100), 1.0, (1.0, 1.0, 1.0), 2.5, True),
}


def _room(camera_id: str, wh: tuple[int, int]) -> SceneSpec:
    """The empty room a demo camera looks at: walls, floor and light."""
    seed, horizon, wall, floor, gain, tint, noise, marking = _LOOKS[camera_id]
    return SceneSpec(seed, wh, horizon, wall, floor, gain, tint, noise, marking)


def _block(
    kind: BlockKind,
    frac_xyxy: tuple[float, float, float, float],
    color: Color,
    wh: tuple[int, int],
    window_s: tuple[float, float] = (0.0, math.inf),
) -> BlockSpec:
    """A block placed in fractions of the image, present in ``window_s``."""
    (x1, y1, x2, y2), (w, h) = frac_xyxy, wh
    return BlockSpec(kind, (int(x1 * w), int(y1 * h), int(x2 * w), int(y2 * h)), color, *window_s)


def _figure(
    wh: tuple[int, int],
    foot: tuple[float, float],
    height: float,
    colours: tuple[Color, Color, Color | None],
    **script: Any,
) -> FigureSpec:
    """A figure placed in fractions of the image (``height`` of the image height) with its script."""
    (w, h), (shirt, trousers, vest) = wh, colours
    return FigureSpec((foot[0] * w, foot[1] * h), height * h, shirt, trousers, vest, **script)


def _polishing_line(w: int, h: int) -> SceneSpec:
    """Smoking at 15-45 s in the foreground, a fire at the machine 60-85 s, dust 100-160 s."""
    wh = (w, h)
    flame = FlameSpec((0.17 * w, 0.7 * h), 0.26 * h, 0.13 * h, 60.0, 85.0, flicker_seed=4242, has_smoke=True)
    return dataclasses.replace(
        _room("polishing-1-cam-1", wh),
        blocks=(
            _block(BlockKind.MACHINE, (0.03, 0.26, 0.3, 0.62), (90, 110, 60), wh),
            _block(BlockKind.BENCH, (0.36, 0.44, 0.6, 0.56), (70, 90, 120), wh),
        ),
        lamps=(LampSpec(LampKind.BULB, (0.5 * w, 0.12 * h), 0.03 * h, (40, 150, 255), True),),
        figures=(
            _figure(
                wh,
                (0.82, 0.98),
                0.78,
                ((140, 90, 60), (60, 50, 40), None),
                poses=((15.0, 45.0, Pose.SMOKING),),
                facing=-1,
            ),
            _figure(wh, (0.45, 0.5), 0.3, ((60, 60, 150), (50, 50, 50), (30, 200, 250)), sway_px=0.05 * w),
        ),
        flames=(flame,),
        # spilled at once, so the dust is whole at the first check after it (a check landing mid-settle
        # would score thin dust; the rule's anchor keeps that from being learned as clean, but the
        # incident would then wait for the next check)
        dust=(DustSpec((0.5 * w, 0.76 * h), (0.12 * w, 0.07 * h), 100.0, 100.5, 160.0, seed=5),),
    )


def _workshop_exit(w: int, h: int) -> SceneSpec:
    """A loaded pallet stands in front of the emergency exit from 40 s to 110 s."""
    wh = (w, h)
    return dataclasses.replace(
        _room("polishing-1-cam-2", wh),
        blocks=(
            _block(BlockKind.CABINET, (0.82, 0.18, 0.97, 0.7), (120, 120, 120), wh),
            _block(BlockKind.PALLET, (0.4, 0.46, 0.64, 0.74), (60, 110, 160), wh, (40.0, 110.0)),
        ),
        exits=(ExitSpec((int(0.44 * w), int(0.16 * h), int(0.58 * w), int(0.5 * h))),),
        lamps=(LampSpec(LampKind.STRIP, (0.2 * w, 0.1 * h), 0.02 * h, (150, 220, 255)),),
        figures=(
            _figure(
                wh,
                (0.16, 0.92),
                0.5,
                ((120, 120, 60), (60, 50, 40), (40, 230, 220)),
                sway_px=0.06 * w,
                period_s=20.0,
            ),
        ),
        cones=(ConeSpec((0.75 * w, 0.95 * h), 0.1 * h),),
    )


def _machine_room(w: int, h: int) -> SceneSpec:
    """The operator at the control panel walks out at 50 s and is back at 130 s."""
    wh = (w, h)
    away = ((0.0, 0.72 * w), (50.0, 0.72 * w), (56.0, 1.2 * w), (124.0, 1.2 * w), (130.0, 0.72 * w))
    return dataclasses.replace(
        _room("refrigeration-1-cam-1", wh),
        blocks=(
            _block(BlockKind.MACHINE, (0.02, 0.3, 0.4, 0.75), (140, 100, 50), wh),
            _block(BlockKind.CABINET, (0.66, 0.14, 0.82, 0.62), (170, 170, 165), wh),
        ),
        lamps=(LampSpec(LampKind.BEACON, (0.9 * w, 0.3 * h), 0.025 * h, (30, 110, 240)),),
        figures=(_figure(wh, (0.72, 0.95), 0.62, ((150, 110, 70), (50, 50, 60), (30, 140, 255)), walk=away),),
    )


def _compressor_hall(w: int, h: int) -> SceneSpec:
    """A worker walks in at 120 s, falls at 140 s, lies still, gets up at 170 s and walks out."""
    wh = (w, h)
    through = ((118.0, -0.15 * w), (136.0, 0.45 * w), (172.0, 0.45 * w), (188.0, 1.2 * w))
    return dataclasses.replace(
        _room("refrigeration-1-cam-2", wh),
        blocks=(
            _block(BlockKind.MACHINE, (0.55, 0.2, 0.95, 0.55), (90, 110, 60), wh),
            _block(BlockKind.CRATE, (0.05, 0.3, 0.2, 0.5), (60, 110, 170), wh),
        ),
        lamps=(LampSpec(LampKind.FLOODLIGHT, (0.3 * w, 0.08 * h), 0.02 * h, (150, 220, 255)),),
        figures=(
            _figure(
                wh,
                (0.5, 0.86),
                0.5,
                ((60, 60, 150), (60, 50, 40), (40, 230, 220)),
                appear_s=118.0,
                disappear_s=188.0,
                walk=through,
                poses=((140.0, 170.0, Pose.LYING),),
            ),
        ),
    )
