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
100    polishing line              dust settles on the floor by the line (swept at 160 s)
140    compressor hall             a worker walking through falls and lies still (up at 170 s)
=====  ==========================  =============================================================

Each clip is :data:`PLANT_LOOP_S` long and its first and last frames show the same quiet
scene, so the demo's looping cameras replay the shift seamlessly.
"""

from __future__ import annotations

import dataclasses

from anjian.datasets.synthetic.specs import (
    BlockKind,
    BlockSpec,
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


def _polishing_line(w: int, h: int) -> SceneSpec:
    """Smoking at 15-45 s in the foreground, a fire at the machine 60-85 s, dust 100-160 s."""
    return SceneSpec(
        seed=11,
        size_wh=(w, h),
        horizon_frac=0.4,
        wall_bgr=(150, 155, 150),
        floor_bgr=(100, 108, 104),
        light_gain=0.95,
        tint_bgr=(0.97, 1.0, 1.04),
        noise_sigma=2.5,
        has_floor_marking=False,
        blocks=(
            BlockSpec(
                BlockKind.MACHINE, (int(0.03 * w), int(0.26 * h), int(0.3 * w), int(0.62 * h)), (90, 110, 60)
            ),
            BlockSpec(
                BlockKind.BENCH, (int(0.36 * w), int(0.44 * h), int(0.6 * w), int(0.56 * h)), (70, 90, 120)
            ),
        ),
        lamps=(LampSpec(LampKind.BULB, (0.5 * w, 0.12 * h), 0.03 * h, (40, 150, 255), True),),
        figures=(
            FigureSpec(
                (0.82 * w, 0.98 * h),
                0.78 * h,
                (140, 90, 60),
                (60, 50, 40),
                None,
                poses=((15.0, 45.0, Pose.SMOKING),),
                facing=-1,
            ),
            FigureSpec(
                (0.45 * w, 0.5 * h), 0.3 * h, (60, 60, 150), (50, 50, 50), (30, 200, 250), 0.05 * w, 10.0
            ),
        ),
        cones=(),
        flames=(
            FlameSpec(
                base_xy=(0.17 * w, 0.7 * h),
                height_px=0.26 * h,
                width_px=0.13 * h,
                appear_s=60.0,
                disappear_s=85.0,
                flicker_seed=4242,
                has_smoke=True,
            ),
        ),
        dust=(
            DustSpec(
                (0.5 * w, 0.76 * h), (0.12 * w, 0.07 * h), start_s=100.0, full_s=112.0, swept_s=160.0, seed=5
            ),
        ),
    )


def _workshop_exit(w: int, h: int) -> SceneSpec:
    """A loaded pallet stands in front of the emergency exit from 40 s to 110 s."""
    return SceneSpec(
        seed=12,
        size_wh=(w, h),
        horizon_frac=0.5,
        wall_bgr=(160, 160, 150),
        floor_bgr=(95, 100, 110),
        light_gain=1.0,
        noise_sigma=2.5,
        has_floor_marking=True,
        blocks=(
            BlockSpec(
                BlockKind.CABINET,
                (int(0.82 * w), int(0.18 * h), int(0.97 * w), int(0.7 * h)),
                (120, 120, 120),
            ),
            BlockSpec(
                BlockKind.PALLET,
                (int(0.4 * w), int(0.46 * h), int(0.64 * w), int(0.74 * h)),
                (60, 110, 160),
                40.0,
                110.0,
            ),
        ),
        exits=(ExitSpec((int(0.44 * w), int(0.16 * h), int(0.58 * w), int(0.5 * h))),),
        lamps=(LampSpec(LampKind.STRIP, (0.2 * w, 0.1 * h), 0.02 * h, (150, 220, 255)),),
        figures=(
            FigureSpec(
                (0.16 * w, 0.92 * h), 0.5 * h, (120, 120, 60), (60, 50, 40), (40, 230, 220), 0.06 * w, 20.0
            ),
        ),
        cones=(ConeSpec((0.75 * w, 0.95 * h), 0.1 * h),),
    )


def _machine_room(w: int, h: int) -> SceneSpec:
    """The operator at the control panel walks out at 50 s and is back at 130 s."""
    return SceneSpec(
        seed=13,
        size_wh=(w, h),
        horizon_frac=0.45,
        wall_bgr=(140, 150, 160),
        floor_bgr=(90, 110, 100),
        light_gain=0.9,
        tint_bgr=(1.05, 1.0, 0.96),
        noise_sigma=3.0,
        blocks=(
            BlockSpec(
                BlockKind.MACHINE, (int(0.02 * w), int(0.3 * h), int(0.4 * w), int(0.75 * h)), (140, 100, 50)
            ),
            BlockSpec(
                BlockKind.CABINET,
                (int(0.66 * w), int(0.14 * h), int(0.82 * w), int(0.62 * h)),
                (170, 170, 165),
            ),
        ),
        lamps=(LampSpec(LampKind.BEACON, (0.9 * w, 0.3 * h), 0.025 * h, (30, 110, 240)),),
        figures=(
            FigureSpec(
                (0.72 * w, 0.95 * h),
                0.62 * h,
                (150, 110, 70),
                (50, 50, 60),
                (30, 140, 255),
                walk=(
                    (0.0, 0.72 * w),
                    (50.0, 0.72 * w),
                    (56.0, 1.2 * w),
                    (124.0, 1.2 * w),
                    (130.0, 0.72 * w),
                ),
            ),
        ),
    )


def _compressor_hall(w: int, h: int) -> SceneSpec:
    """A worker walks in at 120 s, falls at 140 s, lies still, gets up at 170 s and walks out."""
    return SceneSpec(
        seed=14,
        size_wh=(w, h),
        horizon_frac=0.38,
        wall_bgr=(135, 140, 140),
        floor_bgr=(105, 105, 100),
        light_gain=1.0,
        noise_sigma=2.5,
        has_floor_marking=True,
        blocks=(
            BlockSpec(
                BlockKind.MACHINE, (int(0.55 * w), int(0.2 * h), int(0.95 * w), int(0.55 * h)), (90, 110, 60)
            ),
            BlockSpec(
                BlockKind.CRATE, (int(0.05 * w), int(0.3 * h), int(0.2 * w), int(0.5 * h)), (60, 110, 170)
            ),
        ),
        lamps=(LampSpec(LampKind.FLOODLIGHT, (0.3 * w, 0.08 * h), 0.02 * h, (150, 220, 255)),),
        figures=(
            FigureSpec(
                (0.5 * w, 0.86 * h),
                0.5 * h,
                (60, 60, 150),
                (60, 50, 40),
                (40, 230, 220),
                appear_s=118.0,
                disappear_s=188.0,
                walk=((118.0, -0.15 * w), (136.0, 0.45 * w), (172.0, 0.45 * w), (188.0, 1.2 * w)),
                poses=((140.0, 170.0, Pose.LYING),),
            ),
        ),
    )
