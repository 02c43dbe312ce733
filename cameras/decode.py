"""Open one stream with PyAV and yield sampled frames until it ends, stalls or fails."""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import av.error

from cameras.config import CameraConfig
from cameras.errors import DecodeError, StreamOpenError, StreamStalledError
from cameras.frame import Frame
from cameras.url import mask_credentials, url_scheme

__all__ = ["FrameSampler", "decode_frames", "is_live_url", "open_options"]

logger = logging.getLogger(__name__)

_LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt"})


def is_live_url(url: str) -> bool:
    """True for network streams and capture devices; False for local files."""
    return url_scheme(url) in _LIVE_SCHEMES or url.startswith("/dev/video")


def open_options(config: CameraConfig) -> dict[str, str]:
    """FFmpeg options for opening ``config``'s URL (transport, socket timeout in µs)."""
    url = config.url.get_secret_value()
    scheme = url_scheme(url)
    timeout_us = str(int(config.stall_timeout_s * 1_000_000))
    if scheme in ("rtsp", "rtsps"):
        # Short probing: FFmpeg otherwise reads ~20 frames (seconds at low fps) before opening.
        return {
            "rtsp_transport": config.rtsp_transport,
            "timeout": timeout_us,
            "fflags": "nobuffer",
            "analyzeduration": "1000000",
            "fpsprobesize": "0",
        }
    if scheme in ("http", "https", "rtmp", "rtmps"):
        return {"timeout": timeout_us}
    return {}


class FrameSampler:
    """Decides which decoded frames to keep so that a camera yields ``fps`` frames per second.

    Works on stream time (pts), so a file played faster than real time is sampled
    the same way as a live stream.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self._period_s = 1.0 / fps
        self._next_due_s: float | None = None

    def should_keep(self, pts_s: float) -> bool:
        """Return True if the frame at ``pts_s`` is due; advances the schedule when it is."""
        if self._next_due_s is None or pts_s + 1e-6 >= self._next_due_s:
            due = self._next_due_s
            # Stay on the grid unless we fell more than a period behind (a gap, a seek, a loop).
            if due is None or pts_s - due > self._period_s or pts_s < due - self._period_s:
                self._next_due_s = pts_s + self._period_s
            else:
                self._next_due_s = due + self._period_s
            return True
        if pts_s < self._next_due_s - 2 * self._period_s:  # time went backwards: resync
            self._next_due_s = pts_s + self._period_s
            return True
        return False


def _describe_open_error(exc: BaseException, masked_url: str) -> str:
    """Turn a PyAV/OS error into a short, credential-free message that names the cause."""
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        reason = "credentials refused (401 Unauthorized)"
    elif isinstance(exc, av.error.HTTPForbiddenError):
        reason = "access forbidden (403)"
    elif isinstance(exc, av.error.HTTPNotFoundError):
        reason = "stream path not found (404)"
    elif isinstance(exc, av.error.InvalidDataError):
        reason = "not a playable video (invalid data)"
    elif isinstance(exc, av.error.ExitError | av.error.TimeoutError) or getattr(exc, "errno", None) in (
        errno.ETIMEDOUT,
    ):
        reason = "timed out"
    elif isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
        reason = "no such file or device"
    elif getattr(exc, "errno", None) == errno.ECONNREFUSED:
        reason = "connection refused"
    elif getattr(exc, "errno", None) in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        reason = "host unreachable"
    else:
        reason = mask_credentials(str(exc)) or type(exc).__name__
        if "resolve" in reason.lower() or "name or service" in reason.lower():
            reason = f"unknown host ({reason})"
    return f"cannot open {masked_url}: {reason}"


def decode_frames(
    config: CameraConfig,
    *,
    stop: threading.Event,
    clock: Callable[[], float] = time.time,
    start_index: int = 0,
    on_decoded: Callable[[], None] | None = None,
    on_decode_error: Callable[[str], None] | None = None,
) -> Iterator[Frame]:
    """Yield frames of one connection to ``config``'s stream, sampled at ``analysis_fps``.

    Files honour ``realtime`` (pace at the file's rate) and ``loop``; timestamps keep
    increasing across loops. For live streams ``captured_at`` is the wall clock at
    decode; for files played faster than real time it is the start time plus pts.

    Args:
        config: The camera.
        stop: Set to end the iteration early.
        clock: Wall clock, epoch seconds (injectable for tests).
        start_index: Index given to the first frame (keeps counting across reconnects).
        on_decoded: Called for every decoded frame, kept or not (for counters).
        on_decode_error: Called with a message for each frame that failed to decode.

    Yields:
        Sampled frames in decode order.

    Raises:
        StreamOpenError: The URL could not be opened or holds no video stream.
        StreamStalledError: No data within ``stall_timeout_s`` on an open stream.
        DecodeError: Too many consecutive decode errors to go on.
    """
    url = config.url.get_secret_value()
    masked = config.masked_url
    is_live = is_live_url(url)
    sampler = FrameSampler(config.analysis_fps)
    index = start_index
    pts_offset_s = 0.0
    wall_start = clock()
    while not stop.is_set():
        try:
            container = av.open(
                url,
                options=open_options(config),
                timeout=(config.open_timeout_s, config.stall_timeout_s),
            )
        except (av.error.FFmpegError, OSError) as exc:
            raise StreamOpenError(_describe_open_error(exc, masked)) from None
        try:
            if not container.streams.video:
                raise StreamOpenError(f"cannot open {masked}: it has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            time_base = stream.time_base or Fraction(1, 90000)
            last_pts_s = pts_offset_s
            consecutive_errors = 0
            play_start_wall = clock()
            first_pts_s: float | None = None
            try:
                for packet in container.demux(stream):
                    if stop.is_set():
                        return
                    try:
                        decoded = packet.decode()
                        consecutive_errors = 0
                    except av.error.InvalidDataError as exc:
                        consecutive_errors += 1
                        if on_decode_error is not None:
                            on_decode_error(mask_credentials(str(exc)))
                        if consecutive_errors > 50:
                            raise DecodeError(f"{masked}: {consecutive_errors} consecutive decode errors") from None
                        continue
                    for av_frame in decoded:
                        if on_decoded is not None:
                            on_decoded()
                        raw_pts = av_frame.pts if av_frame.pts is not None else av_frame.dts
                        pts_s = (float(raw_pts * time_base) if raw_pts is not None else last_pts_s) + pts_offset_s
                        last_pts_s = pts_s
                        if not sampler.should_keep(pts_s):
                            continue
                        if first_pts_s is None:
                            first_pts_s = pts_s
                        if not is_live and config.realtime:
                            delay = (pts_s - first_pts_s) - (clock() - play_start_wall)
                            if delay > 0 and stop.wait(delay):
                                return
                        captured_at = clock() if (is_live or config.realtime) else wall_start + pts_s
                        image = av_frame.to_ndarray(format="bgr24")
                        yield Frame(
                            camera_id=config.id, image=image, captured_at=captured_at, pts_s=pts_s, index=index
                        )
                        index += 1
            except (av.error.ExitError, av.error.TimeoutError) as exc:
                raise StreamStalledError(
                    f"{masked}: no data for {config.stall_timeout_s:.1f}s ({type(exc).__name__})"
                ) from None
            except av.error.FFmpegError as exc:
                raise DecodeError(f"{masked}: {mask_credentials(str(exc))}") from None
        finally:
            container.close()
        if is_live or not config.loop:
            return
        # Looping a file: continue the timeline one frame period after the last frame.
        rate = float(stream.average_rate) if stream.average_rate else 25.0
        pts_offset_s = last_pts_s + 1.0 / rate
