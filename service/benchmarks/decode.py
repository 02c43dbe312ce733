"""Measure what decoding and sampling a camera costs, against FFmpeg's floor and OpenCV.

For each resolution it writes an H.264 clip that looks like a camera (textured scene,
sensor noise, something moving, a keyframe every two seconds, encoded as a camera's
main stream is), then decodes the same
file four ways and records CPU time (all threads) and wall time:

* ``ffmpeg -f null``: the FFmpeg CLI decoding every frame and discarding it; CPU time of
  the child process from ``getrusage(RUSAGE_CHILDREN)``. The floor.
* ``anjian``: ``decode_frames`` at the analysis rate (the frames the samples need decoded:
  B-frames and, once three evenly spaced keyframes have come, each GOP's end after its last
  sample left out; only sampled frames converted to BGR), the code path every camera runs.
  Below ffmpeg's "floor" where frames are left out: 0.77x on the 10 s 1080p clip at 2 fps.
* ``anjian keyframes``: the same with ``keyframes_only``.
* ``cv2.VideoCapture``: reading every frame as BGR, what a naive loop does.

``anjian bench decode`` prints the table; the ratios are against ffmpeg in the same run.
"""

from __future__ import annotations

import math
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from anjian.cameras.config import CameraConfig
from anjian.cameras.decode import decode_frames
from anjian.service.benchmarks.clips import write_synthetic_clip

__all__ = ["DecodeBenchRow", "format_decode_table", "run_decode_bench"]

RESOLUTIONS: dict[str, tuple[int, int]] = {"1080p": (1920, 1080), "720p": (1280, 720), "360p": (640, 360)}


@dataclass(frozen=True, slots=True)
class DecodeBenchRow:
    """One way of decoding one clip.

    Attributes:
        resolution: ``"1080p"``, ``"720p"``...
        method: ``"ffmpeg -f null"``, ``"anjian"``, ``"anjian keyframes"``, ``"cv2.VideoCapture"``.
        video_s: Length of the clip, seconds.
        frames_decoded: Frames the decoder produced.
        frames_out: Frames handed to the caller (sampled, or all for cv2/ffmpeg).
        cpu_s: CPU seconds spent (user + system, all threads).
        wall_s: Wall-clock seconds.
        ffmpeg_cpu_s: ffmpeg's CPU seconds on the same clip, for the ratio.
    """

    resolution: str
    method: str
    video_s: float
    frames_decoded: int
    frames_out: int
    cpu_s: float
    wall_s: float
    ffmpeg_cpu_s: float

    @property
    def core_share(self) -> float:
        """Fraction of one CPU core a live camera of this kind keeps busy."""
        return self.cpu_s / self.video_s

    @property
    def cameras_per_core(self) -> float:
        """How many such live cameras one core can decode and sample."""
        return self.video_s / self.cpu_s if self.cpu_s > 0 else float("inf")

    @property
    def ratio_to_ffmpeg(self) -> float:
        """CPU time relative to ffmpeg's on the same clip (1.0 = the floor)."""
        return self.cpu_s / self.ffmpeg_cpu_s if self.ffmpeg_cpu_s > 0 else float("nan")


def _camera_clip(path: Path, size_wh: tuple[int, int], *, seconds: float = 10.0, fps: int = 25) -> Path:
    """Write a camera-like H.264 clip (textured scene, sensor noise, a moving box, a keyframe every 2 s).

    Args:
        path: Output ``.mp4``; kept if it already exists (generation costs seconds).
        size_wh: ``(width, height)``, both even.
        seconds: Length.
        fps: Frame rate.

    Returns:
        ``path``.
    """
    if path.is_file():
        return path
    partial = write_synthetic_clip(
        path.with_suffix(".partial.mp4"),
        seconds=seconds,
        fps=fps,
        size_wh=size_wh,
        sensor_noise=6,  # about 1.7 Mbit/s at 720p, like a camera's main stream
        keyframe_interval_s=2.0,
        encoding="camera",
    )
    return partial.rename(path)


def _clip_info(path: Path) -> tuple[float, int]:
    """Duration in seconds and frame count of ``path``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        rate = float(stream.average_rate or 25)
    return frames / rate, frames


def _measure(work: Callable[[], tuple[int, int]]) -> tuple[int, int, float, float]:
    """Run ``work`` (returning frames decoded, frames out); return those plus CPU and wall seconds."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    decoded, out = work()
    return decoded, out, time.process_time() - cpu0, time.perf_counter() - wall0


def _ffmpeg(path: Path, frames: int) -> tuple[int, int, float, float]:
    """Decode with the ffmpeg CLI to the null muxer; CPU time of the child."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise FileNotFoundError("ffmpeg is not installed (Debian package 'ffmpeg')")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    subprocess.run(
        [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-f", "null", "-"],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return frames, frames, cpu, wall


def _anjian(path: Path, analysis_fps: float, *, keyframes_only: bool) -> tuple[int, int]:
    """Decode through ``decode_frames`` as fast as possible; return (decoded, sampled)."""
    camera = CameraConfig(
        id="bench", url=str(path), analysis_fps=analysis_fps, realtime=False, keyframes_only=keyframes_only
    )
    counter = {"decoded": 0}

    def count() -> None:
        counter["decoded"] += 1

    sampled = sum(1 for _ in decode_frames(camera, stop=threading.Event(), on_decoded=count))
    return counter["decoded"], sampled


def _opencv(path: Path) -> tuple[int, int]:
    """Read every frame with ``cv2.VideoCapture`` (each converted to BGR)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = 0
    try:
        while True:
            is_ok, _image = capture.read()
            if not is_ok:
                break
            frames += 1
    finally:
        capture.release()
    return frames, frames


def _methods(
    clip: Path, frames: int, analysis_fps: float, *, with_opencv: bool
) -> dict[str, Callable[[], tuple[int, int, float, float]]]:
    """The measurements to run on ``clip``, by method name."""
    methods: dict[str, Callable[[], tuple[int, int, float, float]]] = {
        "ffmpeg -f null": lambda: _ffmpeg(clip, frames),
        "anjian": lambda: _measure(lambda: _anjian(clip, analysis_fps, keyframes_only=False)),
        "anjian keyframes": lambda: _measure(lambda: _anjian(clip, analysis_fps, keyframes_only=True)),
    }
    if with_opencv:
        methods["cv2.VideoCapture"] = lambda: _measure(lambda: _opencv(clip))
    return methods


def run_decode_bench(
    directory: Path,
    *,
    resolutions: Sequence[str] = ("1080p", "720p"),
    seconds: float = 10.0,
    fps: int = 25,
    analysis_fps: float = 5.0,
    repeats: int = 1,
    with_opencv: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[DecodeBenchRow]:
    """Generate the clips (once) and measure every method on each; best of ``repeats`` CPU times.

    Args:
        directory: Where the clips are written (and reused next time).
        resolutions: Keys of ``RESOLUTIONS``.
        seconds: Clip length.
        fps: Clip frame rate (the camera's).
        analysis_fps: Rate anjian samples to.
        repeats: Measure each method this many times, keep the lowest CPU time.
        with_opencv: Include the ``cv2.VideoCapture`` baseline.
        progress: Called with a line before each step.

    Returns:
        One row per (resolution, method).

    Raises:
        ValueError: A resolution is unknown, or a length, rate or count is not a positive number.
        FileNotFoundError: If the ffmpeg CLI is missing.
    """
    if not (
        math.isfinite(seconds)
        and seconds > 0
        and fps > 0
        and math.isfinite(analysis_fps)
        and analysis_fps > 0
    ):
        raise ValueError(
            f"seconds, fps and analysis_fps must be positive numbers, got {seconds}, {fps}, {analysis_fps}"
        )
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    unknown = [r for r in resolutions if r not in RESOLUTIONS]
    if unknown:
        raise ValueError(f"unknown resolutions {unknown}; expected some of {sorted(RESOLUTIONS)}")
    say = progress or (lambda _line: None)
    directory.mkdir(parents=True, exist_ok=True)
    rows: list[DecodeBenchRow] = []
    for resolution in resolutions:
        width, height = RESOLUTIONS[resolution]
        say(f"clip {resolution}: {seconds:g}s at {fps} fps")
        clip = _camera_clip(
            directory / f"bench-{resolution}-{seconds:g}s-{fps}fps.mp4",
            (width, height),
            seconds=seconds,
            fps=fps,
        )
        video_s, frames = _clip_info(clip)
        methods = _methods(clip, frames, analysis_fps, with_opencv=with_opencv)
        results: dict[str, tuple[int, int, float, float]] = {}
        for method, run in methods.items():
            say(f"{resolution}: {method}")
            results[method] = min((run() for _ in range(max(1, repeats))), key=lambda r: r[2])
        ffmpeg_cpu = results["ffmpeg -f null"][2]
        rows += [
            DecodeBenchRow(resolution, method, video_s, decoded, out, cpu, wall, ffmpeg_cpu)
            for method, (decoded, out, cpu, wall) in results.items()
        ]
    return rows


def format_decode_table(rows: Sequence[DecodeBenchRow], *, analysis_fps: float) -> str:
    """Render the rows as a plain-text table with ratios to ffmpeg."""
    header = (
        f"{'clip':<6} {'method':<18} {'decoded':>7} {'out':>5} {'cpu s':>7} {'wall s':>7} "
        f"{'cpu ms/frame':>12} {'core/cam':>8} {'cams/core':>9} {'vs ffmpeg':>9}"
    )
    lines = [
        f"decode + sample to {analysis_fps:g} fps; CPU = user+system, all threads",
        header,
        "-" * len(header),
    ]
    for row in rows:
        per_frame_ms = 1000 * row.cpu_s / max(1, row.frames_decoded)
        lines.append(
            f"{row.resolution:<6} {row.method:<18} {row.frames_decoded:>7} {row.frames_out:>5} {row.cpu_s:>7.2f} "
            f"{row.wall_s:>7.2f} {per_frame_ms:>12.2f} {row.core_share:>8.3f} {row.cameras_per_core:>9.1f} "
            f"{row.ratio_to_ffmpeg:>8.2f}x"
        )
    return "\n".join(lines)
