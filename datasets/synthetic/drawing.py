"""Render a synthetic workshop scene at a time: the static layer, then figures, flames and smoke.

Deterministic from the scene's seed and the timestamp; the boxes returned are the
labels of what is visible (a flame counts above an opacity threshold).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from anjian.datasets.synthetic.specs import (
    BlockKind,
    BlockSpec,
    ConeSpec,
    DustSpec,
    ExitSpec,
    FigureSpec,
    FlameSpec,
    LabeledBox,
    LampKind,
    LampSpec,
    Pose,
    SceneSpec,
    random_color,
)

__all__ = ["clear_static_layer_cache", "render_scene"]

_FIRE_MIN_ALPHA = 0.4  # a flame pixel counts towards the box above this opacity
_SMOKE_MIN_ALPHA = 0.2
_MIN_BOX_PX = 3


# --------------------------------------------------------------------------- static layer


def _draw_block(img: np.ndarray, block: BlockSpec, rng: np.random.Generator) -> None:
    """Draw one block with a lighter top, a darker side and a few details."""
    x1, y1, x2, y2 = block.xyxy
    c = np.array(block.color_bgr, np.float64)
    depth = max(2, int(0.12 * (x2 - x1)))
    top = [(x1, y1), (x1 + depth, y1 - depth // 2), (x2 + depth, y1 - depth // 2), (x2, y1)]
    side = [(x2, y1), (x2 + depth, y1 - depth // 2), (x2 + depth, y2 - depth // 2), (x2, y2)]
    if block.kind is BlockKind.PALLET:
        _draw_pallet(img, block)
        return
    if block.kind is BlockKind.BENCH:
        slab = max(2, (y2 - y1) // 8)
        cv2.fillPoly(img, [np.array(top, np.int32)], _c(c * 1.25))
        cv2.rectangle(img, (x1, y1), (x2, y1 + slab), _c(c), -1)
        leg = max(2, (x2 - x1) // 20)
        for lx in (x1 + leg, x2 - 2 * leg):
            cv2.rectangle(img, (lx, y1 + slab), (lx + leg, y2), _c(c * 0.6), -1)
        cv2.rectangle(img, (x1 + leg, (y1 + y2) // 2), (x2 - leg, (y1 + y2) // 2 + leg), _c(c * 0.7), -1)
        for _ in range(int(rng.integers(0, 3))):  # items lying on the bench
            iw = int(rng.uniform(0.1, 0.25) * (x2 - x1))
            ix = int(rng.uniform(x1, max(x1 + 1, x2 - iw)))
            ih = int(rng.uniform(0.1, 0.4) * (y2 - y1))
            cv2.rectangle(
                img, (ix, y1 - ih), (ix + iw, y1), _c(np.array(random_color(rng, 40, 200), float)), -1
            )
        return
    cv2.fillPoly(img, [np.array(top, np.int32)], _c(c * 1.2))
    cv2.fillPoly(img, [np.array(side, np.int32)], _c(c * 0.65))
    cv2.rectangle(img, (x1, y1), (x2, y2), _c(c), -1)
    cv2.rectangle(img, (x1, y1), (x2, y2), _c(c * 0.5), 1)
    if block.kind is BlockKind.MACHINE:
        px1, py1 = x1 + (x2 - x1) // 8, y1 + (y2 - y1) // 6
        px2, py2 = px1 + (x2 - x1) // 3, py1 + (y2 - y1) // 4
        cv2.rectangle(img, (px1, py1), (px2, py2), _c(c * 0.45), -1)
        r = max(1, (py2 - py1) // 8)
        for i, led in enumerate(((60, 200, 60), (40, 40, 220), (200, 200, 200))):
            cv2.circle(img, (px1 + (2 * i + 1) * (px2 - px1) // 6, (py1 + py2) // 2), r, led, -1)
        for k in range(1, 5):  # vents
            vy = y1 + k * (y2 - y1) // 10 + (y2 - y1) // 2
            cv2.line(img, ((x1 + x2) // 2, vy), (x2 - (x2 - x1) // 10, vy), _c(c * 0.5), 1)
    elif block.kind is BlockKind.CABINET:
        mx = (x1 + x2) // 2
        cv2.line(img, (mx, y1), (mx, y2), _c(c * 0.5), 1)
        for hx in (mx - 4, mx + 3):
            cv2.line(img, (hx, (y1 + y2) // 2 - 4), (hx, (y1 + y2) // 2 + 4), _c(c * 0.3), 1)
    else:  # crate
        cv2.line(img, (x1, y1), (x2, y2), _c(c * 0.7), 2)
        cv2.line(img, (x1, y2), (x2, y1), _c(c * 0.7), 2)


def _draw_pallet(img: np.ndarray, block: BlockSpec) -> None:
    """Draw a wooden pallet with a shrink-wrapped load of boxes stacked on it."""
    x1, y1, x2, y2 = block.xyxy
    wood = np.array((70, 130, 170), np.float64)
    base = max(3, (y2 - y1) // 7)
    cv2.rectangle(img, (x1, y2 - base), (x2, y2), _c(wood), -1)
    for k in range(4):  # the openings between the blocks of the pallet
        bx = x1 + (k * 2 + 1) * (x2 - x1) // 8
        cv2.rectangle(img, (bx, y2 - base // 2), (bx + (x2 - x1) // 10, y2), (25, 25, 25), -1)
    cv2.line(img, (x1, y2 - base), (x2, y2 - base), _c(wood * 0.6), 1)
    load = np.array(block.color_bgr, np.float64)
    top = y2 - base
    rows = 2 if (y2 - y1) > 3 * base else 1
    row_h = (top - y1) // rows
    for r in range(rows):
        cols = 2 + (r + x1) % 2
        for c in range(cols):
            cx1 = x1 + 1 + c * (x2 - x1) // cols
            cx2 = x1 - 1 + (c + 1) * (x2 - x1) // cols
            ry2 = top - r * row_h
            shade = 1.0 - 0.08 * ((c + r) % 3)
            cv2.rectangle(img, (cx1, ry2 - row_h + 1), (cx2, ry2), _c(load * shade), -1)
            cv2.rectangle(img, (cx1, ry2 - row_h + 1), (cx2, ry2), _c(load * 0.55), 1)
            tape_y = ry2 - row_h // 2
            cv2.line(img, (cx1, tape_y), (cx2, tape_y), _c(load * 0.75 + 40), max(1, row_h // 12))
    cv2.line(img, (x1, y1), (x2, top), (235, 235, 235), 1)  # the shine of the wrap


def _draw_exit(img: np.ndarray, door: ExitSpec) -> None:
    """Draw an emergency exit door with a green running-man sign above it."""
    x1, y1, x2, y2 = door.door_xyxy
    cv2.rectangle(img, (x1 - 3, y1 - 3), (x2 + 3, y2), (60, 60, 60), -1)
    cv2.rectangle(img, (x1, y1), (x2, y2), (95, 120, 80), -1)
    cv2.line(img, ((x1 + x2) // 2, y1), ((x1 + x2) // 2, y2), (50, 70, 45), 1)
    bar_y = y1 + int(0.55 * (y2 - y1))
    cv2.rectangle(img, (x1 + 3, bar_y), (x2 - 3, bar_y + max(2, (y2 - y1) // 40)), (190, 190, 190), -1)
    sw, sh = max(8, int(0.8 * (x2 - x1))), max(4, int(0.3 * (x2 - x1)))
    sx, sy = (x1 + x2) // 2 - sw // 2, max(0, y1 - sh - 6)
    cv2.rectangle(img, (sx, sy), (sx + sw, sy + sh), (60, 170, 30), -1)
    man = (sx + sw // 3, sy + sh // 2)
    cv2.circle(img, (man[0], sy + sh // 4), max(1, sh // 8), (250, 250, 250), -1)
    cv2.line(
        img, (man[0], man[1] - sh // 8), (man[0] - sh // 5, sy + sh - 2), (250, 250, 250), max(1, sh // 8)
    )
    cv2.line(
        img, (man[0], man[1] - sh // 8), (man[0] + sh // 4, sy + sh - 2), (250, 250, 250), max(1, sh // 8)
    )
    cv2.arrowedLine(img, (sx + sw // 2, sy + sh // 2), (sx + sw - 3, sy + sh // 2), (250, 250, 250), 1)


def _c(color: np.ndarray) -> tuple[int, int, int]:
    """Clip a float colour into a cv2 BGR tuple."""
    b, g, r = np.clip(color, 0, 255)
    return (int(b), int(g), int(r))


def _draw_cone(img: np.ndarray, cone: ConeSpec) -> None:
    """Draw an orange safety cone with a white stripe."""
    x, y = cone.base_xy
    hgt = cone.height_px
    half = 0.3 * hgt
    pts = np.array(
        [(x - half, y), (x + half, y), (x + 0.06 * hgt, y - hgt), (x - 0.06 * hgt, y - hgt)], np.int32
    )
    cv2.rectangle(
        img, (int(x - 1.3 * half), int(y - 0.08 * hgt)), (int(x + 1.3 * half), int(y)), (30, 30, 30), -1
    )
    cv2.fillPoly(img, [pts], (20, 100, 235))
    s1, s2 = 0.45, 0.62
    stripe = np.array(
        [
            (x - half * (1 - s1), y - s1 * hgt),
            (x + half * (1 - s1), y - s1 * hgt),
            (x + half * (1 - s2), y - s2 * hgt),
            (x - half * (1 - s2), y - s2 * hgt),
        ],
        np.int32,
    )
    cv2.fillPoly(img, [stripe], (235, 235, 235))


def _draw_lamp(img: np.ndarray, glow: np.ndarray, lamp: LampSpec, horizon_y: float) -> None:
    """Draw a lamp's fixture into ``img`` and its light into the additive ``glow`` layer."""
    x, y = lamp.center_xy
    r = max(1.5, lamp.size_px)
    col = np.array(lamp.color_bgr, np.float32)
    core = np.minimum(255, col * 0.4 + 180)
    pt = (int(x), int(y))
    if lamp.kind is LampKind.BULB:
        cv2.rectangle(
            img, (int(x - 1.4 * r), int(y - 2.2 * r)), (int(x + 1.4 * r), int(y - 0.8 * r)), (40, 40, 40), -1
        )
        cv2.line(img, (pt[0], 0), (pt[0], int(y - 2.2 * r)), (30, 30, 30), 1)
        cv2.circle(glow, pt, int(2.6 * r), tuple(float(v) * 0.6 for v in col), -1)
        cv2.circle(img, pt, int(r), _c(core), -1)
    elif lamp.kind is LampKind.STRIP:
        hw = int(3 * r)
        cv2.rectangle(
            img, (pt[0] - hw - 2, pt[1] - int(r) - 2), (pt[0] + hw + 2, pt[1] + int(r) + 2), (50, 50, 50), -1
        )
        cv2.rectangle(
            glow,
            (pt[0] - hw - int(r), pt[1] - 2 * int(r)),
            (pt[0] + hw + int(r), pt[1] + 2 * int(r)),
            tuple(float(v) * 0.45 for v in col),
            -1,
        )
        cv2.rectangle(
            img, (pt[0] - hw, pt[1] - int(r)), (pt[0] + hw, pt[1] + int(r)), _c(col * 0.5 + 120), -1
        )
    elif lamp.kind is LampKind.BEACON:
        cv2.rectangle(img, (int(x - 1.2 * r), int(y)), (int(x + 1.2 * r), int(y + 0.6 * r)), (30, 30, 30), -1)
        cv2.ellipse(img, pt, (int(r), int(r)), 0, 180, 360, _c(col), -1)
        cv2.circle(img, (int(x - 0.3 * r), int(y - 0.5 * r)), max(1, int(0.3 * r)), _c(core), -1)
        cv2.circle(glow, pt, int(2 * r), tuple(float(v) * 0.4 for v in col), -1)
    else:  # floodlight with a light cone
        cv2.rectangle(img, (int(x - 2 * r), int(y - r)), (int(x + 2 * r), int(y + r)), (45, 45, 45), -1)
        cone = np.array(
            [(x - 2 * r, y + r), (x + 2 * r, y + r), (x + 7 * r, y + 14 * r), (x - 7 * r, y + 14 * r)],
            np.int32,
        )
        cv2.fillPoly(glow, [cone], tuple(float(v) * 0.12 for v in col))
        cv2.rectangle(
            img, (int(x - 1.7 * r), int(y - 0.7 * r)), (int(x + 1.7 * r), int(y + 0.7 * r)), _c(core), -1
        )
    if lamp.has_reflection:
        ry = int(horizon_y + (img.shape[0] - horizon_y) * 0.35 + (horizon_y - y) * 0.3)
        ry = int(np.clip(ry, horizon_y + 2, img.shape[0] - 2))
        cv2.ellipse(
            glow,
            (pt[0], ry),
            (int(4 * r), max(1, int(0.7 * r))),
            0,
            0,
            360,
            tuple(float(v) * 0.35 for v in col),
            -1,
        )


@functools.lru_cache(maxsize=4)
def _static_layer(spec: SceneSpec) -> np.ndarray:
    """Render the parts of the scene that do not change over time, ``(h, w, 3) float32``."""
    w, h = spec.size_wh
    rng = np.random.default_rng([spec.seed, 1])
    hy = int(spec.horizon_frac * h)
    img = np.zeros((h, w, 3), np.uint8)
    img[:hy] = spec.wall_bgr
    img[hy:] = spec.floor_bgr
    wall = np.array(spec.wall_bgr, float)
    floor = np.array(spec.floor_bgr, float)
    for x in range(int(rng.integers(0, w // 6 + 1)), w, max(8, int(rng.uniform(0.08, 0.25) * w))):
        cv2.line(img, (x, 0), (x, hy), _c(wall * 0.8), 1)  # wall panels
    cv2.rectangle(img, (0, hy - max(2, h // 40)), (w, hy), _c(wall * 0.6), -1)  # skirting
    if rng.random() < 0.4:  # a window
        wx, ww = int(rng.uniform(0, 0.8) * w), int(rng.uniform(0.1, 0.2) * w)
        cv2.rectangle(img, (wx, int(0.08 * h)), (wx + ww, int(0.6 * hy)), (215, 205, 185), -1)
        cv2.line(img, (wx + ww // 2, int(0.08 * h)), (wx + ww // 2, int(0.6 * hy)), (90, 90, 90), 2)
    vx = w * rng.uniform(0.3, 0.7)
    for k in range(-6, 7):  # floor tiles in perspective
        cv2.line(img, (int(vx + k * w * 0.03), hy), (int(vx + k * w * 0.35), h), _c(floor * 0.8), 1)
    for k in range(1, 6):
        fy = hy + int((h - hy) * (k / 6) ** 1.6)
        cv2.line(img, (0, fy), (w, fy), _c(floor * 0.85), 1)
    if spec.has_floor_marking:
        my = hy + int((h - hy) * rng.uniform(0.2, 0.6))
        thick = max(2, h // 60)
        cv2.line(img, (0, my), (w, my + int(rng.uniform(-0.1, 0.1) * h)), (30, 190, 220), thick)
    for door in spec.exits:
        _draw_exit(img, door)
    for block in spec.blocks:
        if block.is_static:
            _draw_block(img, block, rng)
    for cone in spec.cones:
        _draw_cone(img, cone)

    out = img.astype(np.float32)
    texture = cv2.resize(
        rng.normal(1.0, 0.06, (9, 16)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.0, 0.5) * h
    falloff = 1.0 - 0.35 * np.sqrt(((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2)
    out *= (texture * falloff * spec.light_gain)[..., None]
    out *= np.array(spec.tint_bgr, np.float32)

    glow = np.zeros((h, w, 3), np.float32)
    lit = np.clip(out, 0, 255).astype(np.uint8)
    for lamp in spec.lamps:
        _draw_lamp(lit, glow, lamp, hy)
    halo = cv2.GaussianBlur(glow, (0, 0), max(1.0, 0.02 * h))
    static: np.ndarray = np.clip(lit.astype(np.float32) + halo, 0, 255)
    static.setflags(write=False)
    return static


# --------------------------------------------------------------------------- dynamic parts


def _trapezoid(
    x: float, y: float, hgt: float, *, top: tuple[float, float], bottom: tuple[float, float]
) -> np.ndarray:
    """A body part of a figure standing at ``(x, y)``, ``hgt`` pixels tall, as an ``(4, 2) int32`` polygon.

    ``top`` and ``bottom`` are ``(height above the feet, half width)`` of its two edges, in figure heights.
    """
    (top_up, top_half), (bottom_up, bottom_half) = top, bottom
    corners = [
        (x - top_half * hgt, y - top_up * hgt),
        (x + top_half * hgt, y - top_up * hgt),
        (x + bottom_half * hgt, y - bottom_up * hgt),
        (x - bottom_half * hgt, y - bottom_up * hgt),
    ]
    return np.array(corners, np.int32)


def _draw_figure(img: np.ndarray, fig: FigureSpec, t_s: float, gain: float) -> list[LabeledBox]:
    """Draw a stick-and-block person in its pose at ``t_s``; return its labels (person or fallen, cigarette)."""
    if not fig.is_visible(t_s):
        return []
    x, is_walking = fig.foot_x_at(t_s)
    y, hgt = fig.foot_xy[1], fig.height_px
    pose = fig.pose_at(t_s)
    skin = _c(np.array((90, 130, 175)) * gain)
    trousers = _c(np.array(fig.trousers_bgr, float) * gain)
    shirt = _c(np.array(fig.shirt_bgr, float) * gain)
    if pose is Pose.LYING:
        return [_draw_lying_figure(img, fig, x, skin, trousers, shirt, gain)]
    lw = max(1, int(0.06 * hgt))
    stride = 0.08 * hgt * math.sin(2 * math.pi * t_s * 1.5) if is_walking else 0.0
    hip = (int(x), int(y - 0.48 * hgt))
    cv2.line(img, hip, (int(x - 0.07 * hgt + stride), int(y)), trousers, lw)
    cv2.line(img, hip, (int(x + 0.07 * hgt - stride), int(y)), trousers, lw)
    torso = _trapezoid(x, y, hgt, top=(0.8, 0.12), bottom=(0.46, 0.1))
    cv2.fillPoly(img, [torso], shirt)
    if fig.vest_bgr is not None:
        vest = _trapezoid(x, y, hgt, top=(0.78, 0.1), bottom=(0.5, 0.09))
        cv2.fillPoly(img, [vest], _c(np.array(fig.vest_bgr, float) * min(1.2, gain * 1.1)))
        sy = int(y - 0.6 * hgt)
        cv2.line(img, (int(x - 0.1 * hgt), sy), (int(x + 0.1 * hgt), sy), (210, 210, 210), max(1, lw // 2))
    f = 1 if fig.facing >= 0 else -1
    hand_up = pose in (Pose.SMOKING, Pose.PHONING)
    for side in (-1, 1):
        shoulder = (int(x + side * 0.12 * hgt), int(y - 0.78 * hgt))
        if hand_up and side == f:  # the forearm folded up to the face
            elbow = (int(x + f * 0.2 * hgt), int(y - 0.62 * hgt))
            hand = (int(x + f * 0.07 * hgt), int(y - 0.85 * hgt))
            cv2.line(img, shoulder, elbow, skin, max(1, lw - 1))
            cv2.line(img, elbow, hand, skin, max(1, lw - 1))
        else:
            cv2.line(img, shoulder, (int(x + side * 0.16 * hgt), int(y - 0.5 * hgt)), skin, max(1, lw - 1))
    head = (int(x), int(y - 0.88 * hgt))
    cv2.circle(img, head, max(2, int(0.08 * hgt)), skin, -1)
    boxes = [_clip_box(img, "person", (x - 0.17 * hgt, y - 0.97 * hgt, x + 0.17 * hgt, y))]
    if pose is Pose.PHONING:
        px = x + f * 0.07 * hgt
        cv2.rectangle(
            img,
            (int(px - 0.02 * hgt), int(y - 0.93 * hgt)),
            (int(px + 0.02 * hgt), int(y - 0.83 * hgt)),
            (25, 25, 25),
            -1,
        )
    elif pose is Pose.SMOKING:
        boxes.append(_draw_cigarette(img, x, y, hgt, f, t_s))
    return [b for b in boxes if b is not None]


def _draw_cigarette(img: np.ndarray, x: float, y: float, hgt: float, f: int, t_s: float) -> LabeledBox | None:
    """A white cigarette held at the mouth with a glowing tip and a thread of smoke; its label box.

    The box takes the cigarette and the fingers holding it, as the smoking-photo labels do.
    """
    mouth = (x + f * 0.06 * hgt, y - 0.86 * hgt)
    tip = (x + f * 0.17 * hgt, y - 0.885 * hgt)
    thick = max(1, round(0.02 * hgt))
    cv2.line(img, (int(mouth[0]), int(mouth[1])), (int(tip[0]), int(tip[1])), (240, 245, 245), thick)
    glow = 0.75 + 0.25 * math.sin(2 * math.pi * 0.7 * t_s)
    cv2.circle(img, (int(tip[0]), int(tip[1])), max(1, thick), (40, int(90 * glow), int(255 * glow)), -1)
    for k in range(3):  # a thin wisp rising from the tip
        wx = tip[0] + f * 0.01 * hgt * math.sin(2 * math.pi * (0.4 * t_s + k / 3))
        wy = tip[1] - (k + 1) * 0.03 * hgt
        cv2.circle(img, (int(wx), int(wy)), max(1, thick // 2), (200, 200, 200), -1)
    pad = 0.02 * hgt
    return _clip_box(
        img,
        "cigarette",
        (min(mouth[0], tip[0]) - pad, tip[1] - 2 * pad, max(mouth[0], tip[0]) + pad, mouth[1] + 2 * pad),
    )


def _draw_lying_figure(
    img: np.ndarray,
    fig: FigureSpec,
    x: float,
    skin: tuple[int, int, int],
    trousers: tuple[int, int, int],
    shirt: tuple[int, int, int],
    gain: float,
) -> LabeledBox:
    """A figure lying on the floor along x, head towards ``facing``; its fallen_person box."""
    y, hgt = fig.foot_xy[1], fig.height_px
    f = 1 if fig.facing >= 0 else -1
    lw = max(1, int(0.06 * hgt))
    thick = 0.1 * hgt  # the body seen from the side, lying
    hip = (int(x - f * 0.02 * hgt), int(y - 0.5 * thick))
    for dy in (-0.3, 0.3):
        cv2.line(img, hip, (int(x - f * 0.48 * hgt), int(y - 0.5 * thick + dy * thick)), trousers, lw)
    shoulder_x = x + f * 0.32 * hgt
    torso = np.array(
        [
            (hip[0], y - 0.05 * hgt),
            (shoulder_x, y - 0.02 * hgt),
            (shoulder_x, y - 1.15 * thick),
            (hip[0], y - 1.05 * thick),
        ],
        np.int32,
    )
    cv2.fillPoly(img, [torso], shirt)
    if fig.vest_bgr is not None:
        cv2.fillPoly(img, [torso], _c(np.array(fig.vest_bgr, float) * min(1.2, gain * 1.1)))
    cv2.line(
        img,
        (int(shoulder_x), int(y - thick)),
        (int(x + f * 0.2 * hgt), int(y - 0.1 * thick)),
        skin,
        max(1, lw - 1),
    )
    cv2.line(
        img,
        (int(shoulder_x), int(y - thick)),
        (int(shoulder_x + f * 0.1 * hgt), int(y - 1.6 * thick)),
        skin,
        max(1, lw - 1),
    )
    head = (int(x + f * 0.41 * hgt), int(y - 0.7 * thick))
    cv2.circle(img, head, max(2, int(0.08 * hgt)), skin, -1)
    x_lo, x_hi = sorted((x - f * 0.5 * hgt, x + f * 0.5 * hgt))
    box = _clip_box(img, "fallen_person", (x_lo, y - 1.7 * thick, x_hi, y + 0.05 * thick))
    assert box is not None  # a lying figure is never smaller than the minimum box
    return box


def _clip_box(img: np.ndarray, name: str, xyxy: tuple[float, float, float, float]) -> LabeledBox | None:
    """A label clipped to the image, or ``None`` where too little of it is inside."""
    h, w = img.shape[:2]
    x1, y1 = max(0.0, xyxy[0]), max(0.0, xyxy[1])
    x2, y2 = min(float(w), xyxy[2]), min(float(h), xyxy[3])
    if x2 - x1 < _MIN_BOX_PX or y2 - y1 < _MIN_BOX_PX:
        return None
    return LabeledBox(name, (x1, y1, x2, y2))


def _draw_dynamic_block(img: np.ndarray, block: BlockSpec, gain: float) -> None:
    """Draw a block that comes and goes (a pallet put down in front of an exit) into the lit frame."""
    before = np.clip(img, 0, 255).astype(np.uint8)
    canvas = before.copy()
    _draw_block(canvas, block, np.random.default_rng(0))
    changed = (canvas != before).any(axis=2)
    img[changed] = canvas[changed].astype(np.float32) * gain


def _draw_dust(img: np.ndarray, dust: DustSpec, t_s: float, gain: float) -> None:
    """Blend a speckled layer of pale dust onto the floor at its density for ``t_s``."""
    density = dust.density(t_s)
    if density <= 0.0:
        return
    h, w = img.shape[:2]
    (cx, cy), (rx, ry) = dust.center_xy, dust.radius_xy
    x1, x2 = max(0, int(cx - rx)), min(w, int(cx + rx) + 1)
    y1, y2 = max(0, int(cy - ry)), min(h, int(cy + ry) + 1)
    if x2 <= x1 or y2 <= y1:
        return
    yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32)
    inside = np.clip(1.0 - ((xx - cx) / rx) ** 2 - ((yy - cy) / ry) ** 2, 0.0, 1.0) ** 0.5
    speckle = np.random.default_rng(dust.seed).uniform(0.4, 1.0, inside.shape).astype(np.float32)
    alpha = (0.85 * density * inside * speckle)[..., None]
    colour = np.array((150, 165, 175), np.float32) * gain
    img[y1:y2, x1:x2] = img[y1:y2, x1:x2] * (1 - alpha) + colour * alpha


def _flicker(flame: FlameSpec, t_s: float) -> tuple[float, float, float, np.random.Generator]:
    """Per-frame height scale, width scale, sway phase and jitter generator of a flame."""
    p = np.random.default_rng([flame.flicker_seed, 0]).uniform(0, 2 * math.pi, 6)
    f = np.random.default_rng([flame.flicker_seed, 1]).uniform((0.3, 1.5, 5.0), (0.8, 4.0, 9.0))
    smooth = sum(math.sin(2 * math.pi * fi * t_s + pi) for fi, pi in zip(f, p[:3], strict=True)) / 3
    jitter = np.random.default_rng([flame.flicker_seed, 2, round(t_s * 1000)])
    grow = min(1.0, max(0.3, (t_s - flame.appear_s) / 0.8))
    if math.isfinite(flame.disappear_s):
        grow = min(grow, max(0.3, (flame.disappear_s - t_s) / 0.5))
    hs = grow * (1.0 + 0.18 * smooth + 0.1 * float(jitter.uniform(-1, 1)))
    ws = grow**0.5 * (1.0 + 0.08 * math.sin(2 * math.pi * f[1] * t_s + p[3]))
    return hs, ws, 2 * math.pi * f[1] * t_s + p[4], jitter


def _teardrop(cx: float, by: float, width: float, height: float, sway: float, phase: float) -> np.ndarray:
    """Polygon of a flame tongue: round bottom at ``(cx, by)``, pointed tip ``height`` above."""
    s = np.linspace(0.0, 1.0, 20)
    hw = 0.5 * width * np.sin(np.pi * s**0.4)
    xc = cx + sway * s**1.6 * np.sin(phase + 4.0 * s)
    y = by - s * height
    left = np.stack([xc - hw, y], 1)
    right = np.stack([xc + hw, y], 1)[::-1]
    return np.concatenate([left, right]).astype(np.int32)


_PALETTE_STOPS = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
_PALETTE_BGR = np.array(
    [(0, 0, 40), (10, 20, 150), (10, 70, 230), (20, 150, 255), (90, 225, 255), (220, 250, 255)], np.float32
)


def _render_flame(img: np.ndarray, flame: FlameSpec, t_s: float) -> LabeledBox | None:
    """Composite one flickering flame into ``img`` (float32, in place) and return its box."""
    h_img, w_img = img.shape[:2]
    hs, ws, phase, jit = _flicker(flame, t_s)
    fh, fw = flame.height_px * hs, flame.width_px * ws
    bx, by = flame.base_xy
    pad = int(0.5 * fw + 0.3 * fh + 4)
    x0, x1 = int(bx - fw) - pad, int(bx + fw) + pad
    y0, y1 = int(by - 1.5 * fh) - pad, int(by) + pad
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w_img, x1), min(h_img, y1)
    if cx1 - cx0 < 2 or cy1 - cy0 < 2:
        return None
    heat = np.zeros((y1 - y0, x1 - x0), np.float32)
    lx, ly = bx - x0, by - y0
    sway = 0.25 * fw
    for hsc, wsc, lift, val in (
        (1.0, 1.0, 0.0, 0.45),
        (0.78, 0.72, 0.03, 0.65),
        (0.55, 0.48, 0.06, 0.85),
        (0.32, 0.26, 0.08, 1.0),
    ):
        poly = _teardrop(lx, ly - lift * fh, wsc * fw, hsc * fh, sway * hsc, phase)
        cv2.fillPoly(heat, [poly], float(val))
    for _ in range(int(jit.integers(1, 4))):  # tongues licking up, different every frame
        tongue = np.zeros_like(heat)
        tx = lx + float(jit.uniform(-0.3, 0.3)) * fw
        ty = ly - float(jit.uniform(0.25, 0.5)) * fh
        poly = _teardrop(
            tx, ty, float(jit.uniform(0.2, 0.4)) * fw, float(jit.uniform(0.35, 0.7)) * fh, sway, phase + 1.0
        )
        cv2.fillPoly(tongue, [poly], float(jit.uniform(0.4, 0.6)))
        np.maximum(heat, tongue, out=heat)
    turb = cv2.resize(
        jit.uniform(0.8, 1.15, (6, 6)).astype(np.float32), heat.shape[::-1], interpolation=cv2.INTER_LINEAR
    )
    blurred = cv2.GaussianBlur(heat * turb, (0, 0), max(0.8, 0.06 * fw))
    heat = np.clip(blurred * float(jit.uniform(0.9, 1.12)), 0, 1).astype(np.float32)
    alpha = np.clip((heat - 0.05) / 0.25, 0, 1)
    lut_x = np.clip(heat + flame.palette_shift, 0, 1)
    color = np.stack([np.interp(lut_x, _PALETTE_STOPS, _PALETTE_BGR[:, k]) for k in range(3)], -1).astype(
        np.float32
    )
    glow = cv2.GaussianBlur(heat, (0, 0), max(2.0, 0.3 * fh)) * 0.6

    sl = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    region = img[cy0:cy1, cx0:cx1]
    a = alpha[sl][..., None]
    region[:] = region * (1 - a) + color[sl] * a + glow[sl][..., None] * np.array((25, 80, 140), np.float32)
    ys, xs = np.nonzero(alpha[sl] > _FIRE_MIN_ALPHA)
    if len(xs) == 0 or np.ptp(xs) + 1 < _MIN_BOX_PX or np.ptp(ys) + 1 < _MIN_BOX_PX:
        return None
    return LabeledBox(
        "fire",
        (float(cx0 + xs.min()), float(cy0 + ys.min()), float(cx0 + xs.max() + 1), float(cy0 + ys.max() + 1)),
    )


def _render_smoke(img: np.ndarray, flame: FlameSpec, t_s: float) -> LabeledBox | None:
    """Composite the grey plume above a flame into ``img`` (float32, in place) and return its box."""
    h_img, w_img = img.shape[:2]
    prm = np.random.default_rng([flame.flicker_seed, 3]).uniform(size=5)
    grow = min(1.0, max(0.0, (t_s - flame.appear_s) / 3.0))
    plume_h = flame.height_px * (1.5 + 1.5 * prm[0]) * grow
    if plume_h < 4:
        return None
    density = 0.55 + 0.35 * prm[2]
    drift = (prm[3] - 0.5) * flame.height_px
    rate = 0.25 + 0.25 * prm[4]
    bx, by = flame.base_xy
    top = by - 0.8 * flame.height_px
    mask = np.zeros((h_img, w_img), np.float32)
    n = 10
    for j in range(n):
        age = (t_s * rate + j / n) % 1.0
        y = top - age * plume_h
        x = bx + drift * age + 0.15 * flame.height_px * math.sin(2 * math.pi * (1.5 * age + 0.37 * j))
        r = (0.3 + 0.9 * age) * 0.8 * flame.width_px
        a = 0.6 * density * (1 - age) ** 0.6 * min(1.0, age * 6 + 0.3)
        puff = np.zeros_like(mask)
        cv2.circle(puff, (int(x), int(y)), max(1, int(r)), float(a), -1)
        mask += puff
    mask = np.minimum(cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.2 * flame.width_px)), density)
    behind = float(img[mask > _SMOKE_MIN_ALPHA].mean()) if (mask > _SMOKE_MIN_ALPHA).any() else 128.0
    contrast = 60.0 + 50.0 * prm[1]  # dark soot on bright walls, pale smoke on dark ones
    grey = behind - contrast if behind > 120 else behind + contrast
    img *= 1 - mask[..., None]
    img += (grey * mask)[..., None]
    ys, xs = np.nonzero(mask > _SMOKE_MIN_ALPHA)
    if len(xs) == 0 or np.ptp(xs) + 1 < _MIN_BOX_PX or np.ptp(ys) + 1 < _MIN_BOX_PX:
        return None
    return LabeledBox("smoke", (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)))


def render_scene(spec: SceneSpec, t_s: float) -> tuple[np.ndarray, list[LabeledBox]]:
    """Render the scene at time ``t_s`` and label what it shows.

    Rendering is deterministic in ``(spec, t_s)``. The static part of a scene is cached,
    so rendering consecutive frames of one spec is cheap.

    Args:
        spec: The scene.
        t_s: Time in seconds; flames animate with it and burn only inside their window.

    Returns:
        The image, ``(h, w, 3) uint8`` BGR, and one box per visible fire, smoke plume, pallet,
        figure (person, or fallen_person when lying) and cigarette, in pixels of that image.
    """
    w, h = spec.size_wh
    img = np.array(_static_layer(spec), np.float32)
    boxes: list[LabeledBox] = []
    for dust in spec.dust:
        _draw_dust(img, dust, t_s, spec.light_gain)
    for block in spec.blocks:
        if not block.is_static and block.is_present(t_s):
            _draw_dynamic_block(img, block, spec.light_gain)
        if block.kind is BlockKind.PALLET and block.is_present(t_s):
            x1, y1, x2, y2 = block.xyxy
            if (box := _clip_box(img, "pallet", (x1, y1, x2, y2))) is not None:
                boxes.append(box)
    for fig in sorted(spec.figures, key=lambda f: f.foot_xy[1]):
        boxes.extend(_draw_figure(img, fig, t_s, spec.light_gain))
    active = [f for f in spec.flames if f.is_active(t_s)]
    for flame in active:
        if flame.has_smoke and (box := _render_smoke(img, flame, t_s)) is not None:
            boxes.append(box)
    for flame in active:
        if (box := _render_flame(img, flame, t_s)) is not None:
            boxes.append(box)
    if spec.noise_sigma > 0:
        noise_rng = np.random.default_rng([spec.seed, 2, round(t_s * 1000)])
        img += noise_rng.normal(0.0, spec.noise_sigma, (h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), boxes


def clear_static_layer_cache() -> None:
    """Forget the cached static layers (each scene's background), e.g. after a large training set."""
    _static_layer.cache_clear()
