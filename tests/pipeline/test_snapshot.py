"""Evidence snapshots: Chinese text renders (not as question marks), and the caption hides no zone label."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from anjian.pipeline import snapshot
from anjian.pipeline.config import ZoneConfig
from anjian.pipeline.event import EventBox
from anjian.pipeline.snapshot import render_snapshot

FRAME = np.full((360, 640, 3), 90, dtype=np.uint8)


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_chinese_captions_render_as_glyphs_not_question_marks() -> None:
    chinese = _decode(render_snapshot(FRAME, [], caption="明火 打磨工位", quality=100))
    marks = _decode(render_snapshot(FRAME, [], caption="?? ????", quality=100))

    strip = slice(0, 40)
    assert np.abs(chinese[strip].astype(int) - marks[strip].astype(int)).sum() > 50_000


def test_the_caption_does_not_cover_a_zone_label_at_the_top() -> None:
    zone = ZoneConfig(id="exit-1", name="安全出口", kind="exit", polygon=[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)])
    image = _decode(
        render_snapshot(FRAME, [], [zone], caption="Blocked exit · 2026-12-01 10:00:00", quality=100)
    )

    green = (
        (image[:, :, 1] > 150) & (image[:, :, 0] < 90) & (image[:, :, 2] < 90)
    )  # the exit zone's label text
    rows = np.flatnonzero(green[:, 5:300].any(axis=1))
    assert rows.size, "the zone's label is drawn"
    caption_bottom = int(np.flatnonzero((image[:, 600] < 40).all(axis=1))[-1])  # the dark strip, right edge
    assert caption_bottom < 60
    assert rows.min() > caption_bottom, "the label starts below the caption strip"


def test_box_labels_stay_inside_the_frame() -> None:
    box = EventBox(class_name="fire", confidence=0.91, xyxy_norm=(0.9, 0.0, 1.0, 0.2))

    image = _decode(render_snapshot(FRAME, [box], quality=100))

    assert image.shape == FRAME.shape


def test_threads_drawing_at_once_share_one_font_and_draw_alike() -> None:
    """A wall of live frames is drawn from the web server's thread pool: each thread loaded its own
    35 MB font (24 cameras: 83 MB to 928 MB)."""
    image = np.full((120, 320, 3), 90, np.uint8)
    faces: list[object] = []
    jpegs: list[bytes] = []

    def draw() -> None:
        faces.append(snapshot._font())
        jpegs.append(render_snapshot(image, [], caption="摄像头 cam-1"))

    threads = [threading.Thread(target=draw) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(faces) == 8 and all(face is faces[0] for face in faces)
    assert len(set(jpegs)) == 1  # drawing under one lock: every thread's picture is the same
