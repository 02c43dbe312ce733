"""Scene specifications of the synthetic workshop: what is where, and how it moves.

Random scenes for the demo detector's training set (:func:`random_scene_spec`) and the
fixed scene of the demo clip (:func:`demo_scene_spec`); :mod:`anjian.datasets.synthetic.drawing`
renders them.
"""

from __future__ import annotations

import dataclasses
import math
from enum import Enum

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "BlockKind",
    "BlockSpec",
    "ConeSpec",
    "DustSpec",
    "ExitSpec",
    "FigureSpec",
    "FlameSpec",
    "LabeledBox",
    "LampKind",
    "LampSpec",
    "Pose",
    "SceneSpec",
    "demo_scene_spec",
    "random_color",
    "random_scene_spec",
]

CLASS_NAMES: tuple[str, ...] = ("fire", "smoke", "person", "fallen_person", "cigarette", "pallet")
"""Class names of the synthetic labels, in class-id order (anjian's taxonomy names, fire and smoke first)."""

Color = tuple[int, int, int]


class LampKind(str, Enum):
    """Shapes of static light sources (negatives: bright and orange, but not fire)."""

    BULB = "bulb"
    STRIP = "strip"
    BEACON = "beacon"
    FLOODLIGHT = "floodlight"


class BlockKind(str, Enum):
    """Shapes of the solid furniture of the workshop."""

    MACHINE = "machine"
    BENCH = "bench"
    CABINET = "cabinet"
    CRATE = "crate"
    PALLET = "pallet"  # a loaded pallet: labelled, the obstacle of the blocked-exit behaviour


@dataclasses.dataclass(frozen=True)
class LabeledBox:
    """One labelled object in a rendered image.

    Attributes:
        class_name: One of :data:`CLASS_NAMES`.
        xyxy: ``x1, y1, x2, y2`` in pixels of the rendered image, inside its bounds.
    """

    class_name: str
    xyxy: tuple[float, float, float, float]

    @property
    def class_id(self) -> int:
        """Index of ``class_name`` in :data:`CLASS_NAMES`."""
        return CLASS_NAMES.index(self.class_name)


@dataclasses.dataclass(frozen=True)
class FlameSpec:
    """An animated flame standing on a point of the scene.

    Attributes:
        base_xy: Pixel at the bottom centre of the flame.
        height_px: Nominal height; each frame varies it by about ±20 %.
        width_px: Nominal width at the widest point.
        appear_s: Time the flame ignites (it grows to full size over ~0.8 s).
        disappear_s: Time it is out; ``math.inf`` for never.
        flicker_seed: Seeds the flicker, tongues and smoke of this flame.
        has_smoke: Whether a grey plume rises above it.
        palette_shift: Shifts the colour towards yellow (> 0) or deep red (< 0).
    """

    base_xy: tuple[float, float]
    height_px: float
    width_px: float
    appear_s: float = 0.0
    disappear_s: float = math.inf
    flicker_seed: int = 0
    has_smoke: bool = False
    palette_shift: float = 0.0

    def is_active(self, t_s: float) -> bool:
        """Whether the flame burns at time ``t_s`` (seconds)."""
        return self.appear_s <= t_s < self.disappear_s


@dataclasses.dataclass(frozen=True)
class LampSpec:
    """A static, emissive light: an orange/yellow distractor that must not count as fire.

    Attributes:
        kind: Shape of the lamp.
        center_xy: Pixel centre of the glowing part.
        size_px: Radius of the glowing part (strips are four to eight times as wide).
        color_bgr: Colour of the light.
        has_reflection: Whether a soft reflection lies on the floor below it.
    """

    kind: LampKind
    center_xy: tuple[float, float]
    size_px: float
    color_bgr: Color
    has_reflection: bool = False


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """A machine, bench, cabinet, crate or loaded pallet drawn as shaded rectangles.

    Attributes:
        kind: What the block represents.
        xyxy: Front face, ``x1, y1, x2, y2`` pixels (``y2`` rests on the floor).
        color_bgr: Paint colour of the front face.
        appear_s: Time the block is put down (0: always there).
        disappear_s: Time it is taken away; ``math.inf`` for never.
    """

    kind: BlockKind
    xyxy: tuple[int, int, int, int]
    color_bgr: Color
    appear_s: float = 0.0
    disappear_s: float = math.inf

    def is_present(self, t_s: float) -> bool:
        """Whether the block stands in the scene at ``t_s`` (a pallet may be moved in and out)."""
        return self.appear_s <= t_s < self.disappear_s

    @property
    def is_static(self) -> bool:
        """Whether the block is there all the time (drawn once into the cached background)."""
        return self.appear_s <= 0.0 and math.isinf(self.disappear_s)


class Pose(str, Enum):
    """What a figure is doing at an instant; each pose has its own label (or none)."""

    STANDING = "standing"  # labelled person
    LYING = "lying"  # on the floor, labelled fallen_person
    SMOKING = "smoking"  # standing, a lit cigarette at the mouth: person + cigarette
    PHONING = "phoning"  # standing, a phone at the ear (a hand at the head that is not smoking)


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """A person-like figure on the floor: standing, walking, lying, smoking, on the phone.

    Attributes:
        foot_xy: Pixel between the feet (for a lying figure: the middle of the body on the floor).
        height_px: Height from feet to top of head.
        shirt_bgr: Torso colour.
        trousers_bgr: Leg colour.
        vest_bgr: Hi-vis vest colour, or ``None`` for none.
        sway_px: Amplitude of the walk along x.
        period_s: Period of the walk.
        appear_s: Time the figure comes into view.
        disappear_s: Time it has left; ``math.inf`` for never.
        walk: ``(t_s, foot x)`` keyframes; between two the figure walks in a straight line (replaces
            the sway while it lasts).
        poses: ``(start_s, end_s, pose)`` windows; standing outside them.
        facing: ``1`` faces right (the hand, cigarette and a lying head go right), ``-1`` left.
    """

    foot_xy: tuple[float, float]
    height_px: float
    shirt_bgr: Color
    trousers_bgr: Color
    vest_bgr: Color | None = None
    sway_px: float = 0.0
    period_s: float = 10.0
    appear_s: float = 0.0
    disappear_s: float = math.inf
    walk: tuple[tuple[float, float], ...] = ()
    poses: tuple[tuple[float, float, Pose], ...] = ()
    facing: int = 1

    def is_visible(self, t_s: float) -> bool:
        """Whether the figure is in the scene at ``t_s``."""
        return self.appear_s <= t_s < self.disappear_s

    def pose_at(self, t_s: float) -> Pose:
        """The figure's pose at ``t_s``."""
        for start, end, pose in self.poses:
            if start <= t_s < end:
                return pose
        return Pose.STANDING

    def foot_x_at(self, t_s: float) -> tuple[float, bool]:
        """Foot x at ``t_s`` and whether the figure is walking then."""
        if self.walk:
            times = [k[0] for k in self.walk]
            xs = [k[1] for k in self.walk]
            x = float(np.interp(t_s, times, xs))
            i = int(np.searchsorted(times, t_s))
            is_walking = 0 < i < len(times) and xs[i] != xs[i - 1]
            return x, is_walking
        moving = self.sway_px > 0 and self.pose_at(t_s) is not Pose.LYING
        return self.foot_xy[0] + (
            self.sway_px * math.sin(2 * math.pi * t_s / self.period_s) if moving else 0.0
        ), moving


@dataclasses.dataclass(frozen=True)
class DustSpec:
    """Dust settling on the floor and swept away: unlabelled, seen by the dust zone's clean reference.

    Attributes:
        center_xy: Centre of the patch, pixels.
        radius_xy: Half axes of the patch, pixels.
        start_s: Dust starts to settle.
        full_s: The patch is at full density.
        swept_s: It is swept away; ``math.inf`` for never.
        seed: Seeds the speckle texture.
    """

    center_xy: tuple[float, float]
    radius_xy: tuple[float, float]
    start_s: float = 0.0
    full_s: float = 0.0
    swept_s: float = math.inf
    seed: int = 0

    def density(self, t_s: float) -> float:
        """Opacity of the patch at ``t_s``, 0 to 1."""
        if t_s < self.start_s or t_s >= self.swept_s:
            return 0.0
        if self.full_s <= self.start_s:
            return 1.0
        return min(1.0, (t_s - self.start_s) / (self.full_s - self.start_s))


@dataclasses.dataclass(frozen=True)
class ExitSpec:
    """An emergency exit door in the wall with its green sign (static).

    Attributes:
        door_xyxy: The door, ``x1, y1, x2, y2`` pixels (``y2`` on the floor line).
    """

    door_xyxy: tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class ConeSpec:
    """An orange safety cone (a distractor) standing on the floor.

    Attributes:
        base_xy: Pixel at the bottom centre.
        height_px: Height of the cone.
    """

    base_xy: tuple[float, float]
    height_px: float


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    """Everything needed to render a workshop scene at any time.

    Attributes:
        seed: Seeds the textures and the per-frame sensor noise.
        size_wh: Image size ``(width, height)`` in pixels.
        horizon_frac: Height of the wall/floor boundary as a fraction of the image height.
        wall_bgr: Wall colour.
        floor_bgr: Floor colour.
        light_gain: Global brightness of the unlit parts (``1.0`` is neutral).
        tint_bgr: Per-channel colour cast of the ambient light.
        noise_sigma: Standard deviation of the per-frame sensor noise, in grey levels.
        has_floor_marking: Whether yellow safety lines are painted on the floor.
        blocks: Machines, benches, cabinets and crates.
        lamps: Static lights.
        figures: People-like figures.
        cones: Safety cones.
        flames: Flames, each with its own time window.
        dust: Dust patches on the floor, each with its own time window.
        exits: Emergency exit doors.
    """

    seed: int
    size_wh: tuple[int, int]
    horizon_frac: float = 0.45
    wall_bgr: Color = (150, 150, 145)
    floor_bgr: Color = (110, 115, 110)
    light_gain: float = 1.0
    tint_bgr: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise_sigma: float = 3.0
    has_floor_marking: bool = False
    blocks: tuple[BlockSpec, ...] = ()
    lamps: tuple[LampSpec, ...] = ()
    figures: tuple[FigureSpec, ...] = ()
    cones: tuple[ConeSpec, ...] = ()
    flames: tuple[FlameSpec, ...] = ()
    dust: tuple[DustSpec, ...] = ()
    exits: tuple[ExitSpec, ...] = ()

    def __post_init__(self) -> None:
        w, h = self.size_wh
        if w < 16 or h < 16:
            raise ValueError(f"size_wh must be at least (16, 16), got {self.size_wh}")
        if not 0.1 <= self.horizon_frac <= 0.9:
            raise ValueError(f"horizon_frac must be in [0.1, 0.9], got {self.horizon_frac}")


# --------------------------------------------------------------------------- random specs


def random_color(rng: np.random.Generator, lo: int, hi: int) -> Color:
    """A random BGR colour with channels in ``[lo, hi)``."""
    b, g, r = rng.integers(lo, hi, size=3)
    return (int(b), int(g), int(r))


_PAINTS: tuple[Color, ...] = (
    (90, 110, 60),  # machine green
    (140, 100, 50),  # blue
    (120, 120, 120),  # grey
    (40, 170, 210),  # safety yellow
    (40, 110, 200),  # orange
    (60, 60, 150),  # dark red
    (170, 170, 165),  # light grey
)
_LAMP_COLORS: tuple[Color, ...] = ((40, 150, 255), (80, 200, 255), (30, 110, 240), (150, 220, 255))
_VESTS: tuple[Color, ...] = ((30, 140, 255), (40, 230, 220), (30, 200, 250))


def _random_flame(
    rng: np.random.Generator, w: int, h: int, floor_y: float, window_s: tuple[float, float]
) -> FlameSpec:
    """A flame of random size standing on the floor."""
    height = float(rng.uniform(0.08, 0.42) * h)
    width = float(height * rng.uniform(0.35, 0.75))
    x = float(rng.uniform(0.05 * w + width / 2, 0.95 * w - width / 2))
    y = float(rng.uniform(floor_y + 0.05 * (h - floor_y), h - 1))
    return FlameSpec(
        base_xy=(x, y),
        height_px=height,
        width_px=width,
        appear_s=window_s[0],
        disappear_s=window_s[1],
        flicker_seed=int(rng.integers(0, 2**31)),
        palette_shift=float(rng.uniform(-0.08, 0.12)),
    )


def random_scene_spec(
    rng: np.random.Generator,
    size_wh: tuple[int, int],
    *,
    n_flames: int | None = None,
    negative_probability: float = 0.35,
    smoke_probability: float = 0.3,
    flame_window_s: tuple[float, float] = (0.0, math.inf),
) -> SceneSpec:
    """Draw a random workshop scene.

    Args:
        rng: Source of randomness; the spec depends only on its state.
        size_wh: Image size ``(width, height)`` in pixels.
        n_flames: Number of flames; ``None`` draws 0 with ``negative_probability``, else 1 or 2.
        negative_probability: Chance of a scene without flames when ``n_flames`` is ``None``.
        smoke_probability: Chance that each flame carries a smoke plume.
        flame_window_s: ``(appear_s, disappear_s)`` given to every flame.

    Returns:
        A spec for :func:`render_scene`. Scenes without flames get extra lamps so that the
        training set holds many static orange lights labelled as background.

    Raises:
        ValueError: If ``n_flames`` is negative or a probability lies outside ``[0, 1]``.
    """
    if n_flames is not None and n_flames < 0:
        raise ValueError(f"n_flames must be >= 0, got {n_flames}")
    for name, p in (("negative_probability", negative_probability), ("smoke_probability", smoke_probability)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    w, h = size_wh
    if n_flames is None:
        n_flames = 0 if rng.random() < negative_probability else int(rng.choice([1, 1, 1, 2]))
    horizon = float(rng.uniform(0.3, 0.6))
    floor_y = horizon * h
    gain = float(rng.uniform(0.55, 1.25))
    warm = float(rng.uniform(-0.12, 0.15))

    blocks = []
    for _ in range(int(rng.integers(1, 6))):
        kind = BlockKind(rng.choice([k.value for k in BlockKind]))
        bw = rng.uniform(0.1, 0.35) * w
        bh = rng.uniform(0.1, 0.4) * h * (1.6 if kind is BlockKind.CABINET else 1.0)
        y2 = rng.uniform(floor_y + 0.02 * h, min(h * 1.02, floor_y + 0.45 * h))
        x1 = rng.uniform(-0.1 * w, w - 0.5 * bw)
        color = _PAINTS[int(rng.integers(len(_PAINTS)))]
        blocks.append(BlockSpec(kind, (int(x1), int(y2 - bh), int(x1 + bw), int(y2)), color))

    n_lamps = int(rng.integers(1, 5)) if n_flames == 0 else int(rng.integers(0, 3))
    lamps = []
    for _ in range(n_lamps):
        lamp_kind = LampKind(rng.choice([k.value for k in LampKind]))
        r = float(rng.uniform(0.015, 0.05) * h)
        y = float(rng.uniform(0.05 * h, max(0.06 * h, floor_y - 2 * r)))
        if lamp_kind is LampKind.BEACON and rng.random() < 0.7:
            y = float(rng.uniform(floor_y, 0.9 * h))
        color = _LAMP_COLORS[int(rng.integers(len(_LAMP_COLORS)))]
        lamps.append(
            LampSpec(lamp_kind, (float(rng.uniform(0.05, 0.95) * w), y), r, color, bool(rng.random() < 0.5))
        )

    figures = [_random_figure(rng, w, h, floor_y) for _ in range(int(rng.choice([0, 1, 1, 2, 2, 3])))]

    cones = [
        ConeSpec(
            (float(rng.uniform(0.05, 0.95) * w), float(rng.uniform(floor_y + 0.1 * h, h))),
            float(rng.uniform(0.05, 0.15) * h),
        )
        for _ in range(int(rng.choice([0, 0, 0, 1, 2])))
    ]

    flames = []
    for _ in range(n_flames):
        flame = _random_flame(rng, w, h, floor_y, flame_window_s)
        if rng.random() < smoke_probability:
            flame = dataclasses.replace(flame, has_smoke=True)
        flames.append(flame)

    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):  # loaded pallets, the blocked-exit obstacle
        pw = float(rng.uniform(0.1, 0.3) * w)
        ph = float(pw * rng.uniform(0.5, 1.1))
        py2 = float(rng.uniform(floor_y + 0.1 * (h - floor_y), h))
        px1 = float(rng.uniform(-0.05 * w, w - 0.7 * pw))
        blocks.append(
            BlockSpec(BlockKind.PALLET, (int(px1), int(py2 - ph), int(px1 + pw), int(py2)), _random_load(rng))
        )
    blocks.sort(key=lambda b: b.xyxy[3])
    dust = [
        DustSpec(
            (float(rng.uniform(0.1, 0.9) * w), float(rng.uniform(floor_y + 0.15 * (h - floor_y), 0.95 * h))),
            (float(rng.uniform(0.06, 0.2) * w), float(rng.uniform(0.03, 0.08) * h)),
            seed=int(rng.integers(0, 2**31)),
        )
        for _ in range(int(rng.choice([0, 0, 0, 1, 2])))
    ]
    exits = []
    if rng.random() < 0.3:
        dw = float(rng.uniform(0.08, 0.14) * w)
        dx = float(rng.uniform(0.02, 0.9) * w)
        exits.append(
            ExitSpec((int(dx), int(floor_y - min(2.2 * dw, 0.8 * floor_y)), int(dx + dw), int(floor_y)))
        )

    return SceneSpec(
        seed=int(rng.integers(0, 2**31)),
        size_wh=(int(w), int(h)),
        horizon_frac=horizon,
        wall_bgr=random_color(rng, 70, 200),
        floor_bgr=random_color(rng, 50, 150),
        light_gain=gain,
        tint_bgr=(1.0 - warm, 1.0, 1.0 + warm),
        noise_sigma=float(rng.uniform(1.0, 7.0)),
        has_floor_marking=bool(rng.random() < 0.4),
        blocks=tuple(sorted(blocks, key=lambda b: b.xyxy[3])),
        lamps=tuple(lamps),
        figures=tuple(figures),
        cones=tuple(cones),
        flames=tuple(flames),
        dust=tuple(dust),
        exits=tuple(exits),
    )


_LOADS: tuple[Color, ...] = ((60, 110, 160), (80, 130, 180), (200, 200, 200), (50, 90, 140), (150, 110, 70))
"""Cardboard, shrink-wrap and blue-drum colours of what stands on a pallet."""


def _random_load(rng: np.random.Generator) -> Color:
    """The colour of a pallet's load."""
    return _LOADS[int(rng.integers(len(_LOADS)))]


def _random_figure(rng: np.random.Generator, w: int, h: int, floor_y: float) -> FigureSpec:
    """A figure in a random pose: mostly standing or walking, some lying, smoking or on the phone.

    A smoker is drawn large enough for its cigarette to be visible (a cigarette on a 60-pixel
    figure is a pixel or two and would teach the detector noise).
    """
    fh = float(rng.uniform(0.25, 0.7) * h)
    fy = float(rng.uniform(floor_y + 0.1 * (h - floor_y), h * 1.02))
    vest = _VESTS[int(rng.integers(len(_VESTS)))] if rng.random() < 0.5 else None
    roll = rng.random()
    if roll < 0.25:
        pose = Pose.LYING
    elif roll < 0.55:
        pose = Pose.SMOKING
        fh = float(rng.uniform(0.5, 0.95) * h)  # close to the camera: the cigarette is a dozen pixels
    elif roll < 0.65:
        pose = Pose.PHONING
    else:
        pose = Pose.STANDING
    is_still = pose is not Pose.STANDING or rng.random() < 0.4
    return FigureSpec(
        (float(rng.uniform(0.05, 0.95) * w), fy),
        fh,
        random_color(rng, 30, 200),
        random_color(rng, 20, 110),
        vest,
        0.0 if is_still else float(rng.uniform(0, 0.1) * w),
        float(rng.uniform(6, 14)),
        poses=((-math.inf, math.inf, pose),) if pose is not Pose.STANDING else (),
        facing=1 if rng.random() < 0.5 else -1,
    )


def demo_scene_spec(
    size_wh: tuple[int, int] = (640, 360), *, seconds: float = 25.0, seed: int = 7
) -> SceneSpec:
    """The fixed scene of the demo clip: quiet, then a flame for the middle stretch, then quiet.

    Args:
        size_wh: Image size ``(width, height)`` in pixels.
        seconds: Length of the clip; the flame burns from 5 s until 5 s before the end.
        seed: Seeds textures, noise and flicker.

    Returns:
        A spec with a static amber wall lamp (with its floor reflection), a machine, a bench,
        a cone, a worker in a hi-vis vest walking to and fro, and one smoking flame.

    Raises:
        ValueError: If ``seconds`` is shorter than 12 s.
    """
    if seconds < 12.0:
        raise ValueError(f"seconds must be >= 12 for a quiet-flame-quiet clip, got {seconds}")
    w, h = size_wh
    horizon = 0.42
    return SceneSpec(
        seed=seed,
        size_wh=(w, h),
        horizon_frac=horizon,
        wall_bgr=(150, 155, 150),
        floor_bgr=(100, 108, 104),
        light_gain=0.95,
        tint_bgr=(0.97, 1.0, 1.04),
        noise_sigma=3.0,
        has_floor_marking=True,
        blocks=(
            BlockSpec(
                BlockKind.CABINET,
                (int(0.86 * w), int(0.08 * h), int(0.98 * w), int(0.6 * h)),
                (120, 120, 120),
            ),
            BlockSpec(
                BlockKind.MACHINE, (int(0.04 * w), int(0.3 * h), int(0.3 * w), int(0.7 * h)), (90, 110, 60)
            ),
            BlockSpec(
                BlockKind.BENCH, (int(0.58 * w), int(0.55 * h), int(0.86 * w), int(0.75 * h)), (70, 90, 120)
            ),
        ),
        lamps=(LampSpec(LampKind.BULB, (0.72 * w, 0.16 * h), 0.035 * h, (40, 150, 255), True),),
        figures=(
            FigureSpec(
                (0.2 * w, 0.95 * h), 0.5 * h, (140, 90, 60), (60, 50, 40), (30, 200, 250), 0.06 * w, 12.0
            ),
        ),
        cones=(ConeSpec((0.92 * w, 0.93 * h), 0.12 * h),),
        flames=(
            FlameSpec(
                base_xy=(0.44 * w, 0.86 * h),
                height_px=0.3 * h,
                width_px=0.14 * h,
                appear_s=5.0,
                disappear_s=seconds - 5.0,
                flicker_seed=seed * 7919 + 1,
                has_smoke=True,
            ),
        ),
    )
