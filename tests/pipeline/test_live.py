"""The live view keeps references on the frame path and draws each frame once, however many ask."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.live import LiveView, clock_caption


def _frame(camera_id: str = "cam-1", index: int = 0, width: int = 1280) -> Frame:
    image = np.full((width * 9 // 16, width, 3), 60, dtype=np.uint8)
    return Frame(
        camera_id=camera_id, image=image, captured_at=1_800_000_000.0 + index, pts_s=float(index), index=index
    )


def _fire(width: int = 1280) -> Detections:
    return Detections(
        xyxy=np.array([[0.25 * width, 100, 0.5 * width, 300], [10, 10, 20, 20]], dtype=np.float32),
        confidence=np.array([0.9, 0.05], dtype=np.float32),
        class_id=np.array([0, 0], dtype=np.int32),
        class_names={0: "fire"},
    )


def test_a_frame_is_drawn_once_for_many_viewers_and_scaled_for_the_wall() -> None:
    live = LiveView(max_width=640)
    live.update(_frame(), _fire())
    frames: list[object] = []

    viewers = [threading.Thread(target=lambda: frames.append(live.frame("cam-1"))) for _ in range(8)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join(10)

    assert live.renders == 1 and len({id(f) for f in frames}) == 1
    image = cv2.imdecode(np.frombuffer(live.frame("cam-1").jpeg, np.uint8), cv2.IMREAD_COLOR)  # type: ignore[union-attr]
    assert image.shape == (360, 640, 3)
    red = image[:, :, 2].astype(int) - image[:, :, 1].astype(int) > 60  # a thin red line after JPEG
    assert red[50:150, 150:330].any(), "the confident box is drawn where the fire is"
    assert not red[0:15, 0:15].any(), "the box under min_confidence is not"


def test_each_new_frame_gets_a_new_seq_and_is_drawn_again_only_when_asked() -> None:
    live = LiveView()
    assert live.frame("cam-1") is None
    for index in range(5):
        live.update(_frame(index=index), _fire())

    latest = live.frame("cam-1")

    assert latest is not None and (latest.seq, latest.captured_at) == (5, 1_800_000_004.0)
    assert live.renders == 1, "frames nobody asked for were never drawn"
    live.forget("cam-1")
    assert live.frame("cam-1") is None and live.camera_ids() == []


def test_the_caption_names_the_camera_in_the_site_time() -> None:
    caption = clock_caption({"cam-1": "抛光线东侧"}.get, "Asia/Shanghai")

    assert caption("cam-1", 1_800_000_000.0) == "抛光线东侧 · 2027-01-15 16:00:00"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_width"):
        LiveView(max_width=8)
