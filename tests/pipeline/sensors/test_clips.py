"""Clips of a sensor's camera around the crossing: buffered from the live view, cut after post_s, published."""

from __future__ import annotations

import threading
import time

import av
import cv2
import numpy as np
import pytest

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.evidence import BufferedFrame
from anjian.pipeline.live import LiveView
from anjian.pipeline.sensors.clips import LinkedCameraClips
from anjian.pipeline.sensors.config import SensorSourcesConfig
from anjian.pipeline.sensors.reading import Reading
from anjian.pipeline.sensors.runner import SensorAssignment, SensorRunner
from anjian.pipeline.sink import ListSink
from tests.pipeline.sensors.test_rules import make_sensor
from tests.support.waiting import wait_for


def _jpeg(shade: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((120, 160, 3), shade, np.uint8))
    assert ok
    return bytes(data)


def _frames_in(mp4: bytes, tmp_path_factory: pytest.TempPathFactory) -> int:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    path.write_bytes(mp4)
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_clip_spans_pre_and_post_seconds_around_the_crossing_and_comes_once_post_has_passed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    clock = {"now": 1000.0}
    delivered: list[tuple[str, bytes]] = []
    clips = LinkedCameraClips(
        ["cam-1"],
        lambda camera_id: BufferedFrame(clock["now"], _jpeg(int(clock["now"]) % 200)),
        lambda event_id, mp4: delivered.append((event_id, mp4)),
        pre_s=3,
        post_s=2,
        fps=2,
        clock=lambda: clock["now"],
    )
    assert not clips.request("e-9", "cam-9", at=1000.0), "a camera no sensor names is not buffered"
    for step in range(40):  # 20 s at 2 fps
        clock["now"] = 1000.0 + step * 0.5
        clips.sample(clock["now"])
        if clock["now"] == 1010.0:
            assert clips.request("e-1", "cam-1", at=1010.0)
        assert clips.poll(clock["now"]) == (1 if clock["now"] == 1012.0 else 0)
    ((event_id, mp4),) = delivered
    assert event_id == "e-1"
    assert _frames_in(mp4, tmp_path_factory) == 11  # 1007.0 ... 1012.0 at 2 fps


def test_the_runner_publishes_the_linked_cameras_clip_as_a_later_revision_of_the_sensor_incident() -> None:
    live = LiveView()
    stop = threading.Event()

    def camera() -> None:  # the camera pipeline handing analysed frames to the live view
        index = 0
        while not stop.wait(0.1):
            image = np.full((180, 320, 3), (index * 9) % 255, np.uint8)
            live.update(
                Frame("cam-1", image, captured_at=time.time(), pts_s=index / 10, index=index),
                Detections.empty(),
            )
            index += 1

    def clip_frame(camera_id: str) -> BufferedFrame | None:
        frame = live.frame(camera_id)
        return None if frame is None else BufferedFrame(frame.captured_at, frame.jpeg)

    sink = ListSink()
    sensor = make_sensor(thresholds={"red": 100, "min_duration_s": 0, "clear_after_s": 30})
    runner = SensorRunner(
        "plant",
        [SensorAssignment("freezing-1", sensor)],
        SensorSourcesConfig(),
        sink,
        clip_frames=clip_frame,
        clip_pre_s=1.0,
        clip_post_s=1.0,
        start_sources=False,
    )
    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    runner.start()
    try:
        assert wait_for(lambda: live.frame("cam-1") is not None, 10)
        time.sleep(1.2)  # a second of video before the crossing
        now = time.time()
        assert runner.offer(Reading("nh3-1", 150.0, now, now))
        assert wait_for(lambda: any(e.clip_mp4 for e in sink.events), 20)
    finally:
        stop.set()
        runner.stop()
    opened, with_clip = sink.events[0], next(e for e in sink.events if e.clip_mp4)
    assert with_clip.id == opened.id and with_clip.revision == opened.revision + 1
    assert with_clip.clip_mp4 is not None and with_clip.clip_mp4[4:8] == b"ftyp"
