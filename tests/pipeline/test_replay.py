"""Replay: the full pipeline over recorded files, timestamps from the video, one JSON line per event.

- Real footage (``people_one_by_one.mp4``, people stepping up to a standing desk one at
  a time, with the COCO int8 detector): absence from post is raised in each empty spell
  longer than T and never while someone is at the desk.
- Generated footage (PyAV): an object placed in an exit passage (blocked exit, found
  against the learned clear image) and a floor zone that darkens (uncleaned dust).
- The ``anjian replay`` command end to end.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from anjian.cameras.errors import DecodeError
from anjian.models.detections import Detections
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.replay import read_video_header, replay_video
from tests.support.clips import broken_off_copy, header_first_copy

SHARED = Path("/work/shared/data")
PEOPLE_VIDEO = SHARED / "videos" / "people_one_by_one.mp4"
COCO_INT8 = SHARED / "weights" / "coco_yolov8n_int8.onnx"
T_ABSENCE_S = 4.0


class _BlindDetector:
    """Sees nothing: the reference-image paths of the rules work alone."""

    class_names: ClassVar[dict[int, str]] = {0: "person"}
    class_thresholds: ClassVar[dict[str, float]] = {}
    version = "blind@1"

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [Detections.empty(self.class_names) for _ in images]


def _write_video(
    path: Path,
    seconds: float,
    draw: Callable[[float, np.ndarray], None],
    fps: int = 5,
    options: dict[str, str] | None = None,
    gop: int | None = None,
) -> Path:
    """Encode ``seconds`` of 320x180 H.264: a textured floor, then ``draw(t, image)`` on each frame."""
    rng = np.random.default_rng(3)
    floor = np.repeat(np.repeat(rng.integers(90, 170, (18, 32, 3), dtype=np.uint8), 10, 0), 10, 1)
    every = {} if gop is None else {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=fps, options=every)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for i in range(int(seconds * fps)):
            image = floor.copy()
            draw(i / fps, image)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def _replay(video: Path, camera: dict, detector: object, **kwargs: object) -> list[dict]:
    out = io.StringIO()
    replay_video(video, CameraPipelineConfig.model_validate(camera), detector, out, start_at=0.0, **kwargs)  # type: ignore[arg-type]
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _opened(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["revision"] == 1]


# ------------------------------------------------------------------ real footage


@pytest.mark.slow
@pytest.mark.skipif(
    not PEOPLE_VIDEO.is_file() or not COCO_INT8.is_file(),
    reason="needs /work/shared/data footage and weights",
)
def test_absence_from_post_on_real_footage() -> None:
    from anjian.models.onnx_detector import OnnxDetector

    camera = {
        "id": "room",
        "url": "unused.mp4",
        "analysis_fps": 1,
        "zones": [
            {"id": "desk", "kind": "post", "polygon": [[0.3, 0.6], [0.85, 0.6], [0.85, 1.0], [0.3, 1.0]]}
        ],
        "behaviours": {"absence_from_post": {"min_duration_s": T_ABSENCE_S, "restored_after_s": 2}},
        "evidence": {"is_clip": False},
    }
    lines = _replay(PEOPLE_VIDEO, camera, OnnxDetector(COCO_INT8), until_s=58)
    # Seen in the footage (1 s resolution): the desk is empty 0-7 s, 20-23 s (3 s: too short) and 45-51 s.
    opened = _opened(lines)
    assert [round(o["video_last_seen_s"]) for o in opened] == [4, 49], lines
    ended = {line["id"]: line["video_ended_s"] for line in lines if line["video_ended_s"] is not None}
    assert 7 <= ended[opened[0]["id"]] <= 11 and 51 <= ended[opened[1]["id"]] <= 55
    for line in opened:  # never open while someone stands at the desk (11-44 s)
        assert not (line["video_started_s"] < 44 and ended[line["id"]] > 11)
    assert all(o["behaviour"] == "absence_from_post" and o["zone_id"] == "desk" for o in opened)


# ------------------------------------------------------------- generated footage

EXIT_CAMERA = {
    "id": "corridor",
    "url": "unused.mp4",
    "analysis_fps": 2,
    "zones": [
        {"id": "exit-east", "kind": "exit", "polygon": [[0.6, 0.3], [0.95, 0.3], [0.95, 0.95], [0.6, 0.95]]}
    ],
    "behaviours": {
        "blocked_exit": {
            "min_duration_s": 10,
            "max_gap_s": 2,
            "clear_after_s": 4,
            "reference": {"learn_after_s": 3, "width_px": 160},
        },
    },
    "evidence": {"clip_pre_s": 2, "clip_post_s": 2},
}


def test_object_left_in_an_exit_passage_raises_blocked_exit(tmp_path: Path) -> None:
    def pallet(t: float, image: np.ndarray) -> None:
        if 10 <= t < 30:
            image[70:165, 200:300] = (40, 90, 160)  # a brown pallet, 100 x 95 px of the 112 x 117 px zone

    lines = _replay(
        _write_video(tmp_path / "blocked.mp4", 40, pallet),
        EXIT_CAMERA,
        _BlindDetector(),
        evidence_dir=tmp_path / "evidence",
    )
    [opened] = _opened(lines)
    assert opened["behaviour"] == "blocked_exit" and opened["zone_id"] == "exit-east"
    assert opened["video_started_s"] == pytest.approx(10, abs=0.6)
    assert opened["video_last_seen_s"] == pytest.approx(20, abs=0.6)
    assert opened["boxes"][-1]["class_name"] == "obstruction"
    assert (tmp_path / "evidence" / opened["snapshot_file"]).read_bytes()[:2] == b"\xff\xd8"
    [clip] = [line for line in lines if line["has_clip"]]
    assert clip["id"] == opened["id"] and (tmp_path / "evidence" / clip["clip_file"]).stat().st_size > 1000
    [ended] = [line for line in lines if line["video_ended_s"] is not None]
    assert 30 <= ended["video_ended_s"] <= 36


class _CountingBlindDetector(_BlindDetector):
    def __init__(self) -> None:
        self.images = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.images += len(images)
        return super().detect(images)


def test_a_motion_gated_camera_replays_as_the_runner_runs_it(tmp_path: Path) -> None:
    """The camera's motion gate holds in a replay: still empty frames skip the detector, the rules see them all."""

    def pallet(t: float, image: np.ndarray) -> None:
        if 10 <= t < 30:
            image[70:165, 200:300] = (40, 90, 160)

    video = _write_video(tmp_path / "blocked.mp4", 40, pallet)
    gated_camera = {**EXIT_CAMERA, "engine": {"motion_gate": {"enabled": True, "max_skip_s": 5.0}}}
    detector = _CountingBlindDetector()
    out = io.StringIO()
    report = replay_video(
        video,
        CameraPipelineConfig.model_validate(gated_camera),
        detector,
        out,
        start_at=0.0,  # type: ignore[arg-type]
    )

    assert report.frames == 80  # 40 s at the camera's 2 analysed fps
    # the first frame, the pallet arriving and leaving, and one every 5 s of a still scene
    assert detector.images == report.frames_inferred and 8 <= report.frames_inferred <= 12
    gated = [json.loads(line) for line in out.getvalue().splitlines()]
    ungated = _replay(video, EXIT_CAMERA, _BlindDetector())
    assert [(e["behaviour"], e["revision"], e["video_started_s"]) for e in gated] == [
        (e["behaviour"], e["revision"], e["video_started_s"]) for e in ungated
    ]


FALL_VIDEO = SHARED / "videos" / "fall_home_1.mp4"


@pytest.mark.skipif(not FALL_VIDEO.is_file(), reason="needs /work/shared/data/videos/fall_home_1.mp4")
def test_a_gated_camera_still_samples_a_person_lying_still(tmp_path: Path) -> None:
    """A fallen person lies still: the gate infers every frame of an occupied scene, so the fall is reported.

    Reusing one frame's detections (``skip_occupied``) froze the detector's flip between ``person``
    and ``fallen_person`` on one sample, and the rule never confirmed on this clip.
    """
    from anjian.models.loader import load_detector

    detector = load_detector("builtin:anjian-n")
    camera = {
        "id": "fall-cam",
        "url": "unused.mp4",
        "analysis_fps": 5,
        "behaviours": {"fallen_person": {"min_duration_s": 1.0}},
    }
    gated = {**camera, "engine": {"motion_gate": {"enabled": True}}}
    out = io.StringIO()
    report = replay_video(FALL_VIDEO, CameraPipelineConfig.model_validate(gated), detector, out, start_at=0.0)

    assert report.frames_inferred == report.frames  # someone is in every frame
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["behaviour"] for e in _opened(events)] == ["fallen_person"]

    def when(lines: list[dict]) -> list[tuple[str, float, float]]:
        return [(e["behaviour"], e["video_started_s"], e["video_last_seen_s"]) for e in _opened(lines)]

    assert when(events) == when(_replay(FALL_VIDEO, camera, detector))  # as with the gate off


def test_object_passing_through_an_exit_raises_nothing(tmp_path: Path) -> None:
    def trolley(t: float, image: np.ndarray) -> None:
        if 10 <= t < 40:
            x = int((t - 10) * 20) % 360 - 40  # crosses the frame every 18 s, 4 s in the zone
            image[70:165, max(0, x) : max(0, x + 60)] = (40, 90, 160)

    assert _replay(_write_video(tmp_path / "passing.mp4", 40, trolley), EXIT_CAMERA, _BlindDetector()) == []


def test_floor_zone_that_darkens_raises_uncleaned_dust_then_resolves(tmp_path: Path) -> None:
    camera = {
        "id": "station",
        "url": "unused.mp4",
        "analysis_fps": 2,
        "zones": [
            {
                "id": "floor-3",
                "name": "station 3 floor",
                "kind": "dust",
                "polygon": [[0.1, 0.5], [0.6, 0.5], [0.6, 0.95], [0.1, 0.95]],
            }
        ],
        "behaviours": {
            "uncleaned_dust": {
                "check_interval_s": 10,
                "clear_after_s": 5,
                "reference": {"learn_after_s": 3, "width_px": 160, "adapt_rate": 0},
            }
        },
        "evidence": {"is_clip": False},
    }

    def dust(t: float, image: np.ndarray) -> None:
        level = min(1.0, max(0.0, (t - 15) / 10)) if t < 45 else 0.0  # settles 15-25 s, cleaned at 45 s
        region = image[90:171, 32:192]
        region[:] = (region * (1 - 0.45 * level)).astype(np.uint8)

    lines = _replay(_write_video(tmp_path / "dust.mp4", 60, dust), camera, _BlindDetector())
    [opened] = _opened(lines)
    assert opened["behaviour"] == "uncleaned_dust" and opened["zone_id"] == "floor-3"
    assert 20 <= opened["video_last_seen_s"] <= 36  # found at the first check once dirty enough
    assert "station 3 floor" in opened["message"] and opened["confidence"] >= 0.3
    [ended] = [line for line in lines if line["video_ended_s"] is not None]
    assert 45 <= ended["video_ended_s"] <= 52


def test_replay_times_a_file_from_its_first_frame_whatever_its_first_timestamp(tmp_path: Path) -> None:
    """Frames were timed by the file's raw pts: an NVR segment whose pts start an hour in was shifted by an
    hour (schedules, the lines' video_*_s), and until_s, measured from start_at, kept no frame at all."""
    video = tmp_path / "segment.ts"
    with av.open(str(video), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(30):  # 3 s at 10 fps, cut an hour into the recording
            picture = av.VideoFrame.from_ndarray(np.full((96, 160, 3), i * 8, np.uint8), format="bgr24")
            picture.pts, picture.time_base = 36_000 + i, Fraction(1, 10)
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    camera = CameraPipelineConfig(id="nvr", url="rtsp://unused/x", analysis_fps=10)

    whole = replay_video(video, camera, _BlindDetector(), io.StringIO(), start_at=1000.0)  # type: ignore[arg-type]
    cut = replay_video(video, camera, _BlindDetector(), io.StringIO(), start_at=1000.0, until_s=2.0)  # type: ignore[arg-type]

    assert whole.frames == 30 and whole.video_s == pytest.approx(2.9, abs=0.01)
    assert cut.frames == 21 and cut.video_s == pytest.approx(2.0, abs=0.01)


def _noise(t: float, image: np.ndarray) -> None:
    """A frame unlike the last (noise costs the encoder bytes, so a cut lands mid-video)."""
    image[:] = np.random.default_rng(int(t * 100)).integers(0, 255, image.shape, dtype=np.uint8)


def test_a_file_cut_short_is_said_and_a_whole_one_is_not(tmp_path: Path) -> None:
    """A replay of a broken-off file said only how much it read: "no incident" after the cut looked like a quiet scene."""
    whole = _write_video(tmp_path / "noise.mp4", 12, _noise, options={"movflags": "faststart"})
    camera = CameraPipelineConfig(id="cam", url="rtsp://unused/x", analysis_fps=5)

    complete = replay_video(whole, camera, _BlindDetector(), io.StringIO(), start_at=0.0)  # type: ignore[arg-type]
    early = replay_video(whole, camera, _BlindDetector(), io.StringIO(), start_at=0.0, until_s=5.0)  # type: ignore[arg-type]
    broken = replay_video(broken_off_copy(whole, 0.5), camera, _BlindDetector(), io.StringIO(), start_at=0.0)  # type: ignore[arg-type]

    assert complete.declared_s == pytest.approx(12.0, abs=0.3)
    assert not complete.is_cut_short and complete.damage(whole) == []
    assert not early.is_cut_short  # stopping at until_s is asked for, not damage
    assert broken.is_cut_short and broken.declared_s == complete.declared_s
    assert 2.0 < broken.video_s < 10.0
    [cut_short, *_] = broken.damage(whole)
    assert f"ends at {broken.video_s:.1f} s of the 12.0 s its header declares" in cut_short


def test_a_file_broken_off_before_its_first_picture_is_refused_by_name(tmp_path: Path) -> None:
    whole = _write_video(tmp_path / "noise.mp4", 4, _noise, options={"movflags": "faststart"})
    camera = CameraPipelineConfig(id="cam", url="rtsp://unused/x", analysis_fps=5)
    header_only = broken_off_copy(whole, 0.01)
    assert read_video_header(header_only).declared_s == pytest.approx(4.0, abs=0.3)

    with pytest.raises(DecodeError, match=r"cut-noise\.mp4: not one frame could be decoded of the 4\.0 s"):
        replay_video(header_only, camera, _BlindDetector(), io.StringIO(), start_at=0.0)  # type: ignore[arg-type]


def test_a_whole_file_starting_mid_gop_or_read_by_keyframes_is_not_said_to_bebroken_off_copy(
    tmp_path: Path,
) -> None:
    """Both read as cut short when the replay's span, not the last frame's place in the file, met the header."""
    whole = _write_video(tmp_path / "gop.mp4", 12, _noise, fps=10, options={"movflags": "faststart"}, gop=40)
    late = header_first_copy(
        whole, tmp_path / "late.mp4", dropped_packets=8
    )  # first picture: next keyframe, 4 s in
    camera = CameraPipelineConfig(id="cam", url="rtsp://unused/x", analysis_fps=5)
    keyframes = CameraPipelineConfig(id="cam", url="rtsp://unused/x", analysis_fps=5, keyframes_only=True)

    from_mid_gop = replay_video(late, camera, _BlindDetector(), io.StringIO(), start_at=0.0)  # type: ignore[arg-type]
    by_keyframes = replay_video(whole, keyframes, _BlindDetector(), io.StringIO(), start_at=0.0)  # type: ignore[arg-type]
    cut = replay_video(broken_off_copy(late, 0.5), camera, _BlindDetector(), io.StringIO(), start_at=0.0)  # type: ignore[arg-type]

    assert from_mid_gop.video_s < 9.0 and from_mid_gop.ended_at_s > 10.5, "the span is short, the file whole"
    assert not from_mid_gop.is_cut_short and from_mid_gop.damage(late) == []
    assert by_keyframes.video_s <= 8.0 + 0.01 and not by_keyframes.is_cut_short
    assert cut.is_cut_short and f"ends at {cut.ended_at_s:.1f} s" in cut.damage(late)[0]


# ------------------------------------------------------------------------ the CLI


@pytest.mark.slow
def test_anjian_replay_command_writes_json_lines(tmp_path: Path) -> None:
    from anjian.service.cli import app

    def pallet(t: float, image: np.ndarray) -> None:
        if t >= 5:  # the clear view is learnt 3 s after the first still pair of frames, wherever they fall
            image[70:165, 200:300] = (40, 90, 160)

    video = _write_video(tmp_path / "blocked.mp4", 20, pallet)
    camera = {**EXIT_CAMERA, "url": str(video)}
    camera["behaviours"] = {
        "blocked_exit": {**EXIT_CAMERA["behaviours"]["blocked_exit"], "min_duration_s": 6}
    }
    site = {
        "site": {
            "id": "plant",
            "timezone": "Asia/Shanghai",
            "workshops": [{"id": "ws-1", "name": "Polishing 1", "cameras": [camera]}],
        },
        "model": {"path": "builtin:anjian-demo/1"},
        "storage": {"dir": str(tmp_path / "data")},
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    out = tmp_path / "events.jsonl"
    args = ["replay", str(video), "--config", str(tmp_path / "site.yaml"), "--events", str(out)]
    result = CliRunner().invoke(
        app, [*args, "--camera", "corridor", "--start-at", "2024-03-04T08:00:00+08:00"]
    )
    assert result.exit_code == 0, result.output
    assert "1 incident(s)" in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["behaviour"] == "blocked_exit" and lines[0]["site_id"] == "plant"
    assert lines[0]["workshop_id"] == "ws-1" and lines[0]["started_at"] == pytest.approx(1709510405, abs=1)
    bad = CliRunner().invoke(app, [*args, "--camera", "nope"])
    assert bad.exit_code == 2 and "no camera 'nope'" in bad.output
