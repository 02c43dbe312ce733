"""Write small synthetic H.264 (or H.265) clips with PyAV: the stand-in camera footage of benchmarks and tests.

Benchmarks and tests need real encoded video (to exercise the real PyAV decode path
and to feed the RTSP server in :mod:`anjian.service.benchmarks.rtsp`) without files
checked into the repo, so clips are generated on the fly from numpy frames: a textured
background, optionally with per-frame sensor noise, and a bright box moving across it.
The demo scene with a flame (what the detector is meant to see) is
:func:`anjian.datasets.synthetic.write_demo_video`; this writer makes footage where only
decoding, streaming and motion matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import av
import numpy as np

__all__ = ["ClipCodec", "ClipEncoding", "ClipPattern", "write_synthetic_clip"]

ClipPattern = Literal["moving-box", "static", "black"]
ClipEncoding = Literal["fast", "camera"]
ClipCodec = Literal["h264", "hevc"]

_PATTERNS: tuple[str, ...] = ("moving-box", "static", "black")
_ENCODINGS: dict[str, dict[str, str]] = {
    # cheap to write: tests generate many clips
    "fast": {"preset": "ultrafast", "tune": "zerolatency"},
    # like an IP camera's main stream (CABAC, deblocking): what decoding costs on a site
    "camera": {"preset": "veryfast", "crf": "23"},
}
_NOISE_FRAMES = 8


def write_synthetic_clip(
    path: str | Path,
    *,
    seconds: float,
    fps: int,
    size_wh: tuple[int, int] = (320, 240),
    pattern: ClipPattern = "moving-box",
    seed: int = 0,
    sensor_noise: int = 0,
    keyframe_interval_s: float = 1.0,
    encoding: ClipEncoding = "fast",
    b_frames: int = 0,
    codec: ClipCodec = "h264",
    open_gop: bool = False,
    keyframes_at: Sequence[int] | None = None,
) -> Path:
    """Write a small H.264 or H.265 (yuv420p) clip made of synthetic frames; the suffix names the container.

    Every clip has a keyframe each ``keyframe_interval_s`` (never more often: no
    scene-cut keyframes) and, unless ``b_frames`` asks for them, no B-frames, like most
    IP cameras' streams, so the RTSP server can pass its access units through unchanged
    and late joiners wait at most one interval for a picture.

    Args:
        path: Output file; parent directories are created. Should end in ``.mp4``.
        seconds: Clip length in seconds (> 0); the frame count is
            ``max(1, round(seconds * fps))``.
        fps: Frame rate in frames per second (> 0).
        size_wh: Frame size ``(width, height)`` in pixels; both even and >= 16.
        pattern: ``"moving-box"``: a bright box sliding over a fixed textured
            background, so consecutive frames differ; ``"static"``: the same
            textured frame every time; ``"black"``: all-black frames.
        seed: Seed for the background texture and the noise.
        sensor_noise: Amplitude (0-64 grey levels) of the noise added to every frame
            of a textured pattern, as a camera sensor adds; 0 for clean frames.
        keyframe_interval_s: Seconds between keyframes (> 0; at least one frame).
        encoding: ``"fast"`` (x264 ultrafast, zero latency: cheap to write) or
            ``"camera"`` (veryfast, CRF 23: what decoding a camera costs).
        b_frames: Most B-frames between two reference frames (0-4), as files exported by
            editors have; needs the ``camera`` encoding (``fast`` tunes for zero latency).
        codec: ``h264`` (libx264) or ``hevc`` (libx265; the encodings' presets alike).
        open_gop: Keyframes that let later frames refer to frames before them (x264: recovery
            points, with B-frames; x265: CRA frames) instead of IDR frames.
        keyframes_at: The indices of the frames that are (IDR) keyframes, instead of one every
            ``keyframe_interval_s``: an irregular GOP, as a "smart" codec stretches it (H.264).

    Returns:
        The path written, as a ``Path``.

    Raises:
        ValueError: If an argument is out of range or ``pattern`` / ``encoding`` is unknown.

    Example:
        >>> clip = write_synthetic_clip(tmp_path / "cam.mp4", seconds=2, fps=10)
    """
    width, height = size_wh
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"size_wh must be even and >= 16 in both axes, got {size_wh!r}")
    if pattern not in _PATTERNS:
        raise ValueError(f"pattern must be one of {_PATTERNS}, got {pattern!r}")
    if not 0 <= sensor_noise <= 64:
        raise ValueError(f"sensor_noise must be 0-64 grey levels, got {sensor_noise!r}")
    if keyframe_interval_s <= 0:
        raise ValueError(f"keyframe_interval_s must be > 0, got {keyframe_interval_s!r}")
    if encoding not in _ENCODINGS:
        raise ValueError(f"encoding must be one of {tuple(_ENCODINGS)}, got {encoding!r}")
    if not 0 <= b_frames <= 4 or (b_frames and encoding != "camera"):
        raise ValueError(f"b_frames must be 0-4, and 0 unless encoding='camera', got {b_frames!r}")
    if codec not in ("h264", "hevc"):
        raise ValueError(f"codec must be 'h264' or 'hevc', got {codec!r}")
    if keyframes_at is not None and (codec != "h264" or not keyframes_at or min(keyframes_at) != 0):
        raise ValueError(f"keyframes_at must start with frame 0, and only for h264, got {keyframes_at!r}")

    out_path = Path(path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n_frames = max(1, round(seconds * fps))
    gop = max(1, round(keyframe_interval_s * fps)) if keyframes_at is None else n_frames + 1
    forced = set(keyframes_at or ())
    rng = np.random.default_rng(seed)
    background = _background(width, height, rng)
    noise = (
        rng.integers(-sensor_noise, sensor_noise + 1, size=(_NOISE_FRAMES, height, width, 1), dtype=np.int16)
        if sensor_noise and pattern != "black"
        else None
    )

    encoder = _encoder_name() if codec == "h264" else "libx265"
    with av.open(str(out_path), mode="w") as container:
        stream = container.add_stream(encoder, rate=fps)
        if not isinstance(stream, av.VideoStream):
            raise TypeError(f"expected a video stream from {encoder}, got {type(stream).__name__}")
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        stream.max_b_frames = b_frames
        if stream.codec_context.name == "libx264":
            stream.options = {**_ENCODINGS[encoding], "keyint_min": str(gop), "sc_threshold": "0"}
            if open_gop:
                stream.options = {**stream.options, "x264-params": "open-gop=1"}
            if forced:
                stream.options = {**stream.options, "forced-idr": "1"}
        elif stream.codec_context.name == "libx265":
            x265 = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={b_frames}:open-gop={int(open_gop)}"
            preset = {key: value for key, value in _ENCODINGS[encoding].items() if key != "tune"}
            stream.options = {**preset, "x265-params": f"{x265}:log-level=error"}
        for index in range(n_frames):
            image = _frame(pattern, background, index, n_frames)
            if noise is not None:
                image = (image + noise[index % _NOISE_FRAMES]).clip(0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if index in forced:
                frame.pict_type = av.video.frame.PictureType.I
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out_path


def _encoder_name() -> str:
    """Prefer libx264; fall back to whatever FFmpeg calls its H.264 encoder."""
    return "libx264" if "libx264" in av.codecs_available else "h264"


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Return a mid-grey textured (height, width, 3) uint8 background."""
    noise = rng.integers(0, 48, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    blocks = np.kron(noise, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    return (blocks + 80).astype(np.uint8)


def _frame(pattern: str, background: np.ndarray, index: int, n_frames: int) -> np.ndarray:
    """Return frame ``index`` of ``pattern`` as a (height, width, 3) uint8 RGB array."""
    if pattern == "black":
        return np.zeros_like(background)
    if pattern == "static":
        return background.copy()
    height, width = background.shape[:2]
    box = max(8, min(width, height) // 4)
    x = round((width - box) * index / max(1, n_frames - 1))
    y = (height - box) // 2
    image = background.copy()
    image[y : y + box, x : x + box] = (250, 240, 40)
    return image
