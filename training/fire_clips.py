"""Short real fire clips from the frames of ``fire_continuous``, and an ``eval-events`` spec over them.

``fire_continuous`` holds frames of real fire videos (vehicle and building fires, burn
tests, rooms), named after their video and frame number:
``barbecue88_png.rf.<hash>.jpg`` is frame 88 of the video ``barbecue``. Frames of one
video are spread over ``train`` and ``val``. :func:`build_fire_clips` groups them by video
(the name before the trailing frame number), orders each video's frames by number, keeps
videos with at least ``min_frames`` frames (their first ``max_frames``), letterboxes them
to one size and encodes each as an H.264 MP4 at ``fps``: a few seconds of real fire.
The frames are sampled sparsely from the source videos (every 0.5 to a few seconds), so
a clip plays the fire faster than it burned; a flame changes between any two of them.

:func:`write_eval_set` adds the people-only and fall footage of ``../shared/data/videos``,
a site config with two evaluation cameras (open flame, smoking and fallen person at the site
defaults and the model's calibrated thresholds; the fall clip's camera confirms a fall after
1 s of lying, as its 4.3 s cannot hold the default 5 s) and the ``anjian eval-events`` spec:
one ``open_flame`` expected on each fire clip, nothing on the people-only videos, one
``fallen_person`` on ``fall_home_1.mp4``. :func:`build_people_clips` adds real-time clips of a
staged people set's recordings (``ur_fall``: daily activities expect nothing, falls one
``fallen_person``)::

    anjian dataset fire-clips --out /root/anjian-data/fire_clips --people-frames /root/anjian-data/ur_fall
    anjian eval-events /root/anjian-data/fire_clips/clips.yaml \\
        --config /root/anjian-data/fire_clips/site.yaml --model builtin:anjian-n/1 --json v1.json
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import av
import cv2
import numpy as np
import yaml

from anjian.datasets.yolo import read_class_names, read_label_file

__all__ = [
    "EVAL_CAMERA",
    "FALL_CAMERA",
    "FALL_VIDEOS",
    "FRAME_NAME",
    "PEOPLE_ONLY_VIDEOS",
    "FrameClip",
    "VideoFrames",
    "build_fire_clips",
    "build_people_clips",
    "group_video_frames",
    "write_clip",
    "write_eval_set",
]

FRAME_NAME = re.compile(r"^(?P<video>.*?)(?P<frame>\d+)_(?:png|jpe?g)\.rf\.[0-9a-fA-F]+\.jpg$")
"""A Roboflow export name of one video frame: ``<video><frame number>_<ext>.rf.<hash>.jpg``."""

PEOPLE_ONLY_VIDEOS = ("people_one_by_one.mp4", "worker-zone-detection.mp4", "home_daily_activity.mp4")
"""Videos of ``../shared/data/videos`` with people and no incident: every alert on them is false."""

FALL_VIDEOS = {"fall_home_1.mp4": 0.4}
"""Videos with one fall, and when the person starts falling (seconds; ``fall_home_1.csv``, row 13)."""

EVAL_CAMERA = "eval-cam"
"""The camera the fire clips and the people-only videos are replayed on: the site defaults."""
FALL_CAMERA = "fall-cam"
"""The camera of the fall clip: a fall confirmed after 1 s of lying rather than 5 s (fall_home_1 lasts
4.3 s and its person lies from about 1.5 s: the default cannot fit in it)."""
_FALL_MIN_DURATION_S = 1.0


@dataclass(frozen=True, slots=True)
class VideoFrames:
    """The frames of one source video, in order.

    Attributes:
        video: The video's name (file names without the frame number).
        frames: ``(frame number, image path)`` pairs, by frame number.
    """

    video: str
    frames: tuple[tuple[int, Path], ...]


@dataclass(frozen=True, slots=True)
class FrameClip:
    """One clip written by :func:`build_fire_clips` or :func:`build_people_clips`.

    Attributes:
        video: Source video name.
        path: The MP4 file.
        frame_numbers: Source frame numbers, in clip order.
        fps: Frames per second of the clip.
        fall_start_s: People clips: when the first frame labelled fallen plays; ``None`` when
            nobody falls in the clip (and for fire clips).
    """

    video: str
    path: Path
    frame_numbers: tuple[int, ...]
    fps: float
    fall_start_s: float | None = None

    @property
    def seconds(self) -> float:
        """Duration of the clip."""
        return len(self.frame_numbers) / self.fps


def group_video_frames(root: Path, splits: Sequence[str] = ("train", "val")) -> list[VideoFrames]:
    """Group a frame set's images by source video, each video's frames ordered by number.

    Args:
        root: The set's folder (holding ``images/<split>/``).
        splits: Splits to read (a video's frames are spread over them).

    Returns:
        One entry per video, the videos with most frames first (then by name).

    Raises:
        FileNotFoundError: None of the split folders exists.
    """
    folders = [Path(root) / "images" / split for split in splits]
    if not any(folder.is_dir() for folder in folders):
        raise FileNotFoundError(f"no image folder {[str(f) for f in folders]} under {root}")
    videos: dict[str, dict[int, Path]] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for image in folder.iterdir():
            match = FRAME_NAME.match(image.name)
            if match is None or not match["video"]:
                continue
            frames = videos.setdefault(match["video"], {})
            frames.setdefault(int(match["frame"]), image)  # one frame exported twice counts once
    grouped = [VideoFrames(name, tuple(sorted(frames.items()))) for name, frames in videos.items()]
    return sorted(grouped, key=lambda v: (-len(v.frames), v.video))


def _letterboxed(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size_wh``, keeping its aspect, centred on black."""
    w, h = size_wh
    scale = min(w / image.shape[1], h / image.shape[0])
    new_w, new_h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    resized = cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - new_w) // 2, (h - new_h) // 2
    out[y : y + new_h, x : x + new_w] = resized
    return out


def write_clip(images: Iterable[Path], out: Path, *, size_wh: tuple[int, int], fps: int) -> int:
    """Encode image files as one H.264 MP4, each letterboxed to ``size_wh``.

    Args:
        images: Image files, in clip order.
        out: The MP4 to write.
        size_wh: Frame size (even numbers, for yuv420p).
        fps: Frames per second.

    Returns:
        Frames written.

    Raises:
        ValueError: ``size_wh`` is odd, ``fps`` below 1, or an image cannot be read.
    """
    if size_wh[0] % 2 or size_wh[1] % 2 or min(size_wh) < 16:
        raise ValueError(f"size_wh must be even numbers >= 16 (yuv420p), got {size_wh}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with av.open(str(out), "w") as container:
        stream = container.add_stream(
            "libx264", rate=fps, options={"crf": "20", "preset": "veryfast", "bf": "0"}
        )
        stream.width, stream.height = size_wh
        stream.pix_fmt = "yuv420p"
        for path in images:
            image = cv2.imread(str(path))
            if image is None:
                raise ValueError(f"cannot read image {path}")
            frame = av.VideoFrame.from_ndarray(_letterboxed(image, size_wh), format="bgr24")
            container.mux(stream.encode(frame))
            written += 1
        container.mux(stream.encode(None))
    return written


def _file_name(video: str) -> str:
    """A safe clip file name for a video name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", video).strip("._-") or "video"


def build_fire_clips(
    root: Path,
    out_dir: Path,
    *,
    min_frames: int = 20,
    max_frames: int = 50,
    fps: int = 5,
    size_wh: tuple[int, int] = (448, 448),
) -> list[FrameClip]:
    """Write one MP4 per video of a frame set that has at least ``min_frames`` frames.

    Args:
        root: The frame set (``fire_continuous``).
        out_dir: Folder the clips go to (``<video>.mp4``).
        min_frames: Videos with fewer frames are left out.
        max_frames: Each clip holds the video's first ``max_frames`` frames.
        fps: Frames per second of the clips (5: a 20-frame video plays 4 s).
        size_wh: Common frame size; frames are letterboxed into it.

    Returns:
        The clips written, the longest videos first.

    Raises:
        ValueError: The bounds are inconsistent.
        FileNotFoundError: ``root`` holds no image folders.
    """
    return [
        _encode(video, out_dir, fps=fps, size_wh=size_wh)
        for video in _long_videos(root, min_frames=min_frames, max_frames=max_frames)
    ]


def _long_videos(root: Path, *, min_frames: int, max_frames: int) -> list[VideoFrames]:
    """The videos of a frame set with at least ``min_frames`` frames, each cut to its first ``max_frames``.

    Raises:
        ValueError: The bounds are inconsistent.
        FileNotFoundError: ``root`` holds no image folders.
    """
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f"expected 2 <= min_frames <= max_frames, got {min_frames} and {max_frames}")
    return [
        VideoFrames(v.video, v.frames[:max_frames])
        for v in group_video_frames(root)
        if len(v.frames) >= min_frames
    ]


def _encode(video: VideoFrames, out_dir: Path, *, fps: int, size_wh: tuple[int, int]) -> FrameClip:
    """One video's frames as ``<out_dir>/<video>.mp4``."""
    path = Path(out_dir) / f"{_file_name(video.video)}.mp4"
    write_clip([p for _, p in video.frames], path, size_wh=size_wh, fps=fps)
    return FrameClip(video.video, path, tuple(n for n, _ in video.frames), float(fps))


def _labelled_classes(root: Path, image: Path, class_count: int) -> set[int]:
    """Class ids labelled on one image of a YOLO set (``labels/<split>/<stem>.txt``; none if missing)."""
    label = Path(root) / "labels" / image.parent.name / f"{image.stem}.txt"
    if not label.is_file():
        return set()
    rows, _ = read_label_file(label, class_count)
    return {int(c) for c in rows[:, 0]}


def build_people_clips(
    root: Path,
    out_dir: Path,
    *,
    fall_class: str = "fall",
    min_frames: int = 60,
    max_frames: int = 300,
    source_fps: float = 30.0,
    size_wh: tuple[int, int] = (448, 448),
) -> list[FrameClip]:
    """Write one real-time MP4 per densely sampled recording of a people set (``ur_fall``).

    UR Fall's frames are most of the frames of 30 fps recordings: daily activities (sitting,
    lying on a bed, picking things up) and falls. Played at their own rate (``source_fps``
    over the median step between frame numbers), they test the rules at the speed people
    move: an activity clip must raise nothing, a fall clip one ``fallen_person`` from its
    first frame labelled ``fall_class`` (:attr:`FrameClip.fall_start_s`).

    Args:
        root: The set (``images/<split>/``, ``labels/<split>/`` and ``data.yaml``).
        out_dir: Folder the clips go to (``<video>.mp4``).
        fall_class: The set's class of a fallen person.
        min_frames: Recordings with fewer frames are left out (sparse ones play as slides).
        max_frames: Each clip holds the recording's first ``max_frames`` frames.
        source_fps: Frame rate the recordings were made at.
        size_wh: Common frame size; frames are letterboxed into it.

    Returns:
        The clips written, the longest recordings first.

    Raises:
        ValueError: The bounds are inconsistent, or the set has no ``fall_class``.
        FileNotFoundError: ``root`` holds no image folders or no ``data.yaml``.
    """
    data_yaml = Path(root) / "data.yaml"
    if not data_yaml.is_file():
        raise FileNotFoundError(f"no data.yaml in {root} (the set's class names)")
    names = read_class_names(yaml.safe_load(data_yaml.read_text()) or {}, data_yaml)
    if fall_class not in names:
        raise ValueError(f"{data_yaml}: no class {fall_class!r} (classes: {list(names)})")
    fall_id = names.index(fall_class)
    clips = []
    for video in _long_videos(root, min_frames=min_frames, max_frames=max_frames):
        step = float(np.median(np.diff([n for n, _ in video.frames])))
        fps = max(1, round(source_fps / max(step, 1.0)))
        clip = _encode(video, out_dir, fps=fps, size_wh=size_wh)
        fallen = [
            i for i, (_, p) in enumerate(video.frames) if fall_id in _labelled_classes(root, p, len(names))
        ]
        clips.append(replace(clip, fall_start_s=round(fallen[0] / fps, 2) if fallen else None))
    return clips


def _site_config(out_dir: Path, fps: int, model: str) -> dict[str, object]:
    """A site with the evaluation cameras, running the behaviours that need no zones."""

    def camera(camera_id: str, fallen_person: dict[str, float]) -> dict[str, object]:
        return {
            "id": camera_id,
            "url": "placeholder.mp4",  # eval-events replays each clip in its place
            "analysis_fps": fps,
            "behaviours": {"open_flame": {}, "smoking": {}, "fallen_person": fallen_person},
        }

    cameras = [camera(EVAL_CAMERA, {}), camera(FALL_CAMERA, {"min_duration_s": _FALL_MIN_DURATION_S})]
    return {
        "site": {
            "id": "eval",
            "timezone": "UTC",
            "workshops": [{"id": "eval", "name": "Evaluation footage", "cameras": cameras}],
        },
        "model": {"path": model},
        "storage": {"dir": str(out_dir / "storage")},
    }


def write_eval_set(
    clips: Sequence[FrameClip],
    out_dir: Path,
    *,
    videos_dir: Path,
    people_clips: Sequence[FrameClip] = (),
    fps: int = 5,
    model: str = "builtin:anjian-n",
    tolerance_s: float = 2.0,
) -> tuple[Path, Path]:
    """Write ``site.yaml`` and the ``anjian eval-events`` spec ``clips.yaml`` next to the clips.

    Every fire clip expects one ``open_flame`` from its start to its end; each people-only
    video of ``videos_dir`` expects nothing; the fall video one ``fallen_person`` from the
    fall on. Videos missing from ``videos_dir`` are left out of the spec.

    Args:
        clips: From :func:`build_fire_clips`.
        out_dir: Where the two files go (clip paths are written relative to it when inside).
        videos_dir: ``../shared/data/videos``.
        people_clips: From :func:`build_people_clips` (none by default).
        fps: Analysis rate of the evaluation camera (the clips' frame rate: every frame is analysed).
        model: Model of the site (``eval-events --model`` overrides it).
        tolerance_s: Slack around each expected incident.

    Returns:
        ``(site.yaml, clips.yaml)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def where(path: Path) -> str:
        path = Path(path).resolve()
        return (
            str(path.relative_to(out_dir.resolve())) if path.is_relative_to(out_dir.resolve()) else str(path)
        )

    entries: list[dict[str, object]] = [
        {
            "video": where(c.path),
            "camera": EVAL_CAMERA,
            "expected": [{"behaviour": "open_flame", "start_s": 0.0}],
        }
        for c in clips
    ]
    for name in PEOPLE_ONLY_VIDEOS:
        if (Path(videos_dir) / name).is_file():
            entries.append({"video": where(Path(videos_dir) / name), "camera": EVAL_CAMERA, "expected": []})
    for name, start_s in FALL_VIDEOS.items():
        if (Path(videos_dir) / name).is_file():
            entries.append(
                {
                    "video": where(Path(videos_dir) / name),
                    "camera": FALL_CAMERA,
                    "expected": [{"behaviour": "fallen_person", "start_s": start_s}],
                }
            )
    for clip in people_clips:
        if clip.fall_start_s is None:
            entries.append({"video": where(clip.path), "camera": EVAL_CAMERA, "expected": []})
        else:
            expected = [{"behaviour": "fallen_person", "start_s": clip.fall_start_s}]
            entries.append({"video": where(clip.path), "camera": FALL_CAMERA, "expected": expected})
    site = out_dir / "site.yaml"
    site.write_text(yaml.safe_dump(_site_config(out_dir, fps, model), sort_keys=False))
    spec = out_dir / "clips.yaml"
    falls = sum(1 for c in people_clips if c.fall_start_s is not None)
    description = (
        f"{len(clips)} real fire clips (consecutive frames of fire_continuous videos, {fps} fps), "
        f"{len(people_clips) - falls} real-time daily-activity and {falls} fall recordings of a people set, "
        "and the people-only and fall videos of ../shared/data/videos; made by `anjian dataset fire-clips`"
    )
    document = {"description": description, "tolerance_s": tolerance_s, "clips": entries}
    spec.write_text(yaml.safe_dump(document, sort_keys=False))
    return site, spec
