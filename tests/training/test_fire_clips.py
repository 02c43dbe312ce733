"""Real fire clips from fire_continuous frames: grouped by video, in frame order, and the eval-events spec."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from anjian.service.cli import app
from anjian.service.config import load_config
from anjian.training.event_eval import load_event_spec
from anjian.training.fire_clips import (
    EVAL_CAMERA,
    FALL_CAMERA,
    FRAME_NAME,
    build_fire_clips,
    build_people_clips,
    group_video_frames,
    write_eval_set,
)
from tests.support.real_data import require_shared_data

pytestmark = pytest.mark.slow

VIDEOS = {"barbecue": 39, "HouseFive": 47, "Seven": 11}  # frames each video has in the set


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few fire_continuous videos (links to the real frames, both splits), and an unrelated image."""
    source = require_shared_data("fire_continuous")
    root = tmp_path_factory.mktemp("fire_continuous")
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        for image in (source / "images" / split).iterdir():
            match = FRAME_NAME.match(image.name)
            if match and match["video"] in VIDEOS:
                (root / "images" / split / image.name).symlink_to(image)
    (root / "images" / "train" / "not-a-video-frame.jpg").symlink_to(
        next((source / "images" / "val").iterdir())
    )
    return root


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def test_frames_are_grouped_by_video_and_ordered_by_number(frames_root: Path) -> None:
    videos = {v.video: v for v in group_video_frames(frames_root)}
    assert {name: len(v.frames) for name, v in videos.items()} == VIDEOS
    numbers = [n for n, _ in videos["barbecue"].frames]
    assert numbers == sorted(numbers) and numbers[:3] == [12, 14, 16]  # numerically, not as text
    assert {p.parent.name for _, p in videos["barbecue"].frames} == {"train", "val"}


def test_clips_hold_each_video_s_frames_in_order(frames_root: Path, tmp_path: Path) -> None:
    clips = build_fire_clips(frames_root, tmp_path, min_frames=20, max_frames=40, fps=5, size_wh=(224, 224))
    assert [(c.video, len(c.frame_numbers), c.seconds) for c in clips] == [
        ("HouseFive", 40, 8.0),
        ("barbecue", 39, 7.8),
    ]  # Seven has 11 frames: left out; HouseFive is cut at 40
    videos = {v.video: v for v in group_video_frames(frames_root)}
    for clip in clips:
        decoded = _decoded(clip.path)
        assert len(decoded) == len(clip.frame_numbers)
        assert decoded[0].shape == (224, 224, 3)
        sources = [cv2.resize(cv2.imread(str(p)), (224, 224)) for _, p in videos[clip.video].frames[:40]]
        for i, frame in enumerate(decoded):  # each decoded frame is closest to its own source frame
            errors = [float(np.abs(frame.astype(np.float32) - s).mean()) for s in sources]
            assert int(np.argmin(errors)) == i, (clip.video, i, errors[i], min(errors))


def test_the_spec_expects_a_flame_per_fire_clip_silence_on_people_and_the_fall(
    frames_root: Path, tmp_path: Path
) -> None:
    videos = require_shared_data("videos")
    clips = build_fire_clips(
        frames_root, tmp_path / "clips", min_frames=20, max_frames=20, size_wh=(128, 128)
    )
    site, spec_path = write_eval_set(clips, tmp_path, videos_dir=videos)
    spec = load_event_spec(spec_path)
    expected = {c.video.name: [(e.behaviour, e.start_s) for e in c.expected] for c in spec.clips}
    assert expected == {
        "HouseFive.mp4": [("open_flame", 0.0)],
        "barbecue.mp4": [("open_flame", 0.0)],
        "people_one_by_one.mp4": [],
        "worker-zone-detection.mp4": [],
        "home_daily_activity.mp4": [],
        "fall_home_1.mp4": [("fallen_person", 0.4)],
    }
    assert all(c.video.is_file() for c in spec.clips)
    cameras = {camera.id: camera.behaviours for _, camera in load_config(site).cameras()}
    assert {c.video.name: c.camera for c in spec.clips if c.camera != EVAL_CAMERA} == {
        "fall_home_1.mp4": FALL_CAMERA
    }
    site_defaults, fall = cameras[EVAL_CAMERA], cameras[FALL_CAMERA]
    assert (
        site_defaults.open_flame is not None and site_defaults.open_flame.min_confidence is None
    )  # the model's
    assert site_defaults.fallen_person is not None and site_defaults.fallen_person.min_duration_s == 5.0
    assert fall.fallen_person is not None and fall.fallen_person.min_duration_s == 1.0


def test_the_command_writes_clips_and_spec(frames_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "fire_clips"
    args = ["dataset", "fire-clips", "--frames", str(frames_root), "--out", str(out), "--max-frames", "25"]
    result = CliRunner().invoke(app, [*args, "--videos", str(tmp_path / "no-videos"), "--size", "160"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.mp4")) == ["HouseFive.mp4", "barbecue.mp4"]
    assert "anjian eval-events" in result.output
    assert len(load_event_spec(out / "clips.yaml").clips) == 2  # no videos folder: fire clips only

    failed = CliRunner().invoke(
        app, ["dataset", "fire-clips", "--frames", str(tmp_path / "nope"), "--out", str(out)]
    )
    assert failed.exit_code == 2 and "no image folder" in failed.output


def _people_set(root: Path) -> Path:
    """A two-recording people set named as UR Fall's: an activity every frame, a fall every second frame."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    (root / "data.yaml").write_text('names: ["fall", "person"]\n')
    rng = np.random.default_rng(0)
    recordings = {"adl-01-cam0-rgb-": range(1, 31), "fall-01-cam1-rgb-": range(1, 41, 2)}
    for video, numbers in recordings.items():
        for i, number in enumerate(numbers):
            split = "val" if i % 5 == 0 else "train"
            stem = f"{video}{number:03d}_png.rf.{i:08x}"
            image = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
            cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), image)
            is_fallen = video.startswith("fall") and i >= 12
            (root / "labels" / split / f"{stem}.txt").write_text(
                "0 0.5 0.7 0.6 0.3\n" if is_fallen else "1 0.5 0.5 0.2 0.6\n"
            )
    return root


def test_people_clips_play_in_real_time_and_know_when_someone_falls(tmp_path: Path) -> None:
    root = _people_set(tmp_path / "ur_fall")
    clips = build_people_clips(root, tmp_path / "people", min_frames=20, size_wh=(96, 64), source_fps=30.0)
    by_video = {c.video: c for c in clips}
    assert sorted(by_video) == ["adl-01-cam0-rgb-", "fall-01-cam1-rgb-"]
    activity, fall = by_video["adl-01-cam0-rgb-"], by_video["fall-01-cam1-rgb-"]
    assert (activity.fps, activity.seconds, activity.fall_start_s) == (30.0, 1.0, None)
    assert (fall.fps, len(fall.frame_numbers), fall.fall_start_s) == (
        15.0,
        20,
        0.8,
    )  # frame 12 of 20 at 15 fps
    assert len(_decoded(fall.path)) == 20

    _, spec_path = write_eval_set([], tmp_path, videos_dir=tmp_path / "no-videos", people_clips=clips)
    spec = load_event_spec(spec_path)
    assert spec.description is not None
    assert (
        "0 real fire clips" in spec.description
        and "1 real-time daily-activity and 1 fall" in spec.description
    )
    expected = {c.video.name: (c.camera, [(e.behaviour, e.start_s) for e in c.expected]) for c in spec.clips}
    assert expected == {
        "adl-01-cam0-rgb.mp4": (EVAL_CAMERA, []),
        "fall-01-cam1-rgb.mp4": (FALL_CAMERA, [("fallen_person", 0.8)]),
    }

    shorter = build_people_clips(root, tmp_path / "none", min_frames=25, size_wh=(96, 64))
    assert [c.video for c in shorter] == ["adl-01-cam0-rgb-"]  # the 20-frame fall recording is left out


def test_people_clips_refuse_a_set_without_the_fall_class_or_class_names(tmp_path: Path) -> None:
    root = _people_set(tmp_path / "ur_fall")
    with pytest.raises(ValueError, match="no class 'fallen'"):
        build_people_clips(root, tmp_path / "out", fall_class="fallen", min_frames=20)
    (root / "data.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="no data.yaml"):
        build_people_clips(root, tmp_path / "out", min_frames=20)


def test_the_command_adds_people_clips(tmp_path: Path, frames_root: Path) -> None:
    root = _people_set(tmp_path / "ur_fall")
    out = tmp_path / "clips"
    args = ["dataset", "fire-clips", "--frames", str(frames_root), "--out", str(out), "--max-frames", "20"]
    args += ["--videos", str(tmp_path / "no-videos"), "--size", "96", "--people-frames", str(root)]
    result = CliRunner().invoke(app, [*args, "--people-min-frames", "20"])
    assert result.exit_code == 0, result.output
    assert "falls at 0.8 s" in result.output and "2 people clips" in result.output
    assert sorted(p.name for p in (out / "people").glob("*.mp4")) == [
        "adl-01-cam0-rgb.mp4",
        "fall-01-cam1-rgb.mp4",
    ]

    (root / "data.yaml").write_text('names: ["person"]\n')
    failed = CliRunner().invoke(app, [*args, "--people-min-frames", "20"])
    assert failed.exit_code == 2 and "no class 'fall'" in failed.output


def test_a_clip_spec_nested_too_deep_is_refused_by_name(tmp_path: Path) -> None:
    spec = tmp_path / "clips.yaml"
    spec.write_text("clips: " + "[" * 3000 + "]" * 3000 + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"clips\.yaml: lists or mappings nested too deep"):
        load_event_spec(spec)
