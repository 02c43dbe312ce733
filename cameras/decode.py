"""Open one stream with PyAV and yield sampled frames until it ends, stalls or fails.

Sources: ``rtsp://`` (TCP by default, UDP on request), ``rtsps://``, ``http(s)://``
(progressive or HLS), ``rtmp(s)://``, local files (looping and real-time pacing, for
replay and tests) and V4L2 capture devices (``/dev/videoN``). Every frame the sampled
ones need is decoded (H.264/H.265 need their references; ``skip_unused_frames`` leaves
out B-frames and, with ``cameras.gop``, the end of each GOP after its last sampled
frame; ``keyframes_only`` decodes keyframes alone), and only the frames the sampler
keeps are converted to BGR.

A refused login is a ``StreamCredentialsError``, told apart from the other refusals that
need a config change because retrying it has a cost of its own: cameras lock accounts.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import av
import av.container
import av.error
from av.video.reformatter import VideoReformatter

from anjian.cameras import gpu
from anjian.cameras.config import CameraConfig
from anjian.cameras.errors import (
    DecodeError,
    StreamConfigError,
    StreamCredentialsError,
    StreamDisconnectedError,
    StreamOpenError,
    StreamStalledError,
    StreamUnreachableError,
)
from anjian.cameras.frame import Frame
from anjian.cameras.gop import GopTailSkipper, nal_length_size
from anjian.cameras.url import CAMERA_SCHEMES, ffmpeg_url, mask_credentials, split_url, url_scheme

__all__ = [
    "FrameSampler",
    "decode_frames",
    "decoder_threads",
    "describe_open_error",
    "input_format",
    "is_live_url",
    "open_options",
]

logger = logging.getLogger(__name__)

_MAX_CONSECUTIVE_DECODE_ERRORS = 50

_OVERDUE_PERIODS = 3.0
"""Sample periods of wall time a live camera may decode without a frame kept before one is kept anyway."""
_UDP_BUFFER_BYTES = 4 * 1024 * 1024
_ONE_THREAD_MAX_PIXELS = 1920 * 1088
"""Largest stream decoded on one thread by default (1080p, coded height padded to 16)."""


def is_live_url(url: str) -> bool:
    """True for network streams and capture devices; False for local files."""
    return url_scheme(url) in CAMERA_SCHEMES or url.startswith("/dev/video")


def input_format(config: CameraConfig) -> str | None:
    """FFmpeg input format for ``config``: its ``input_format``, else ``v4l2`` for ``/dev/videoN``."""
    if config.input_format is not None:
        return config.input_format
    return "v4l2" if config.url.get_secret_value().startswith("/dev/video") else None


def open_options(config: CameraConfig) -> dict[str, str]:
    """FFmpeg options for opening ``config``'s URL: transport, I/O timeouts in µs, probing.

    ``input_options`` from the config are applied last, so they can override these.
    """
    url = config.url.get_secret_value()
    scheme = url_scheme(url)
    timeout_us = str(int(config.stall_timeout_s * 1_000_000))
    options: dict[str, str] = {}
    if scheme in ("rtsp", "rtsps"):
        # Short probing: FFmpeg otherwise reads ~20 frames (seconds at low fps) before opening.
        options = {
            "rtsp_transport": config.rtsp_transport,
            "timeout": timeout_us,
            "fflags": "nobuffer",
            "analyzeduration": "1000000",
            "fpsprobesize": "0",
            "allowed_media_types": "video",
        }
        if config.rtsp_transport == "udp":
            options["buffer_size"] = str(_UDP_BUFFER_BYTES)  # 1080p I-frames overflow the default
    elif scheme in ("http", "https"):
        options = {"timeout": timeout_us}  # also used for each HLS segment request
    elif scheme in ("rtmp", "rtmps"):
        options = {"rw_timeout": timeout_us}  # rtmp's own "timeout" would make FFmpeg *listen*
    return options | dict(config.input_options)


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

    @property
    def period_s(self) -> float:
        """Stream seconds between kept frames."""
        return self._period_s

    @property
    def next_due_s(self) -> float | None:
        """Stream time from which the next frame is kept; None before the first."""
        return self._next_due_s

    def should_keep(self, pts_s: float, *, is_overdue: bool = False) -> bool:
        """Return True if the frame at ``pts_s`` is due; advances the schedule when it is.

        ``is_overdue``: the caller has waited too long (in wall time) for a due frame of a live
        stream whose timestamps barely advance; keep this one and schedule from its pts.
        """
        if is_overdue:
            self._next_due_s = pts_s + self._period_s
            return True
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


def _host_is_unknown(url: str) -> bool:
    """True when ``url`` names a host that DNS cannot resolve."""
    host = split_url(url).host.strip("[]")
    if not host:
        return False
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return True
    except OSError:
        return False
    return False


def describe_open_error(
    exc: BaseException, config: CameraConfig, *, waited_s: float | None = None
) -> StreamOpenError:
    """Turn a PyAV/OS open error into a credential-free ``StreamOpenError`` naming the cause.

    Refusals that need a config change (wrong credentials, path or host name, a file that
    is not a video) become ``StreamConfigError`` (``StreamCredentialsError`` for refused
    credentials); nothing answering at the port (refused, no route)
    ``StreamUnreachableError``; the rest (timed out, server errors) are transient.
    ``waited_s``, how long the open took, tells a hung server apart from one that sent
    something that is not a video: FFmpeg reports both as invalid data, the first only
    after its I/O timeout.
    """
    url = config.url.get_secret_value()
    io_timeout_s = min(config.open_timeout_s, config.stall_timeout_s)
    is_timed_out = waited_s is not None and waited_s >= 0.9 * io_timeout_s
    code = getattr(exc, "errno", None)
    credentials_reason: str | None = None
    config_reason: str | None = None
    unreachable_reason: str | None = None
    reason = ""
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        credentials_reason = "credentials refused (401 Unauthorized)"
    elif isinstance(exc, av.error.HTTPForbiddenError):
        credentials_reason = "access forbidden (403 Forbidden)"
    elif isinstance(exc, av.error.HTTPNotFoundError):
        config_reason = "stream path not found (404 Not Found)"
    elif isinstance(exc, av.error.HTTPBadRequestError):
        config_reason = "request refused (400 Bad Request)"
    elif isinstance(exc, av.error.InvalidDataError) and is_live_url(url) and is_timed_out:
        reason = f"no answer within {io_timeout_s:g}s (the camera accepts connections but hangs)"
    elif isinstance(exc, av.error.InvalidDataError):
        config_reason = "not a playable video (invalid data)"
    elif isinstance(exc, av.error.ProtocolNotFoundError | av.error.DemuxerNotFoundError):
        config_reason = "unsupported protocol or input format"
    elif isinstance(exc, FileNotFoundError) or code == errno.ENOENT:
        config_reason = "no such file or device"
    elif isinstance(exc, PermissionError) or code == errno.EACCES:
        config_reason = "permission denied"
    elif isinstance(exc, av.error.ExitError | av.error.TimeoutError) or code == errno.ETIMEDOUT:
        reason = f"timed out after {config.open_timeout_s:g}s"
    elif code == errno.ECONNREFUSED:
        unreachable_reason = "connection refused"
    elif code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        unreachable_reason = "host unreachable"
    elif isinstance(exc, av.error.HTTPServerError):
        reason = "server error (5xx)"
    elif is_live_url(url) and _host_is_unknown(url):
        config_reason = "unknown host (DNS cannot resolve it)"
    elif code == errno.EINVAL and config.input_options:  # FFmpeg refused an option's value
        config_reason = f"invalid argument: check input_options ({', '.join(sorted(config.input_options))})"
    else:
        reason = _masked_text(exc, url) or type(exc).__name__
    if credentials_reason is not None:
        return StreamCredentialsError(f"cannot open {config.masked_url}: {credentials_reason}")
    if config_reason is not None:
        return StreamConfigError(f"cannot open {config.masked_url}: {config_reason}")
    if unreachable_reason is not None:
        return StreamUnreachableError(f"cannot open {config.masked_url}: {unreachable_reason}")
    return StreamOpenError(f"cannot open {config.masked_url}: {reason}")


def _masked_text(exc: BaseException, url: str) -> str:
    """``str(exc)`` with credentials masked, including a raw password quoted on its own."""
    return mask_credentials(str(exc), url=url)


def _open(config: CameraConfig) -> tuple[av.container.InputContainer, str]:
    """Open the container (on NVDEC when asked and possible); return it and the decoder used."""
    url = config.url.get_secret_value()
    hwaccel = None
    if config.decode_device == "cuda":
        hwaccel = gpu.cuda_hwaccel()
        if hwaccel is None:
            logger.warning(
                "%s: CUDA decoding unavailable (%s); decoding on the CPU",
                config.id,
                gpu.cuda_decode_unavailable_reason(),
            )
    started = time.monotonic()
    try:
        container = av.open(
            ffmpeg_url(url),
            format=input_format(config),
            options=open_options(config),
            timeout=(config.open_timeout_s, config.stall_timeout_s),
            hwaccel=hwaccel,
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise describe_open_error(exc, config, waited_s=time.monotonic() - started) from None
    return container, ("cuda" if hwaccel is not None else "cpu")


def _samples_at_most_half(config: CameraConfig, stream: av.VideoStream) -> bool:
    """Whether the sampler keeps at most every other frame, so non-reference frames may go undecoded.

    An unknown frame rate (some live streams) decodes every frame.
    """
    rate = stream.average_rate
    return config.skip_unused_frames and bool(rate) and 2 * config.analysis_fps <= float(rate or 0)


def _gop_tail_skipper(
    config: CameraConfig, stream: av.VideoStream, decoder: str
) -> GopTailSkipper[av.Packet[Any]] | None:
    """A skipper of GOP ends no sample needs, where that is safe to try: CPU-decoded H.264/H.265 sampled at
    most every other frame, with ``skip_unused_frames`` on; None elsewhere."""
    if config.keyframes_only or decoder != "cpu" or not _samples_at_most_half(config, stream):
        return None
    context = stream.codec_context
    if context.name not in ("h264", "hevc") or not stream.average_rate:
        return None
    length_size = nal_length_size(context.name, context.extradata)
    return GopTailSkipper(1.0 / float(stream.average_rate), codec_name=context.name, length_size=length_size)


def _routed(
    packets: Iterator[av.Packet[Any]],
    skipper: GopTailSkipper[av.Packet[Any]] | None,
    sampler: FrameSampler,
    time_base: Fraction,
    pts_offset_s: float,
) -> Iterator[av.Packet[Any]]:
    """The packets to decode, in order: all of them, or what ``skipper`` does not hold back.

    Lazy: the sampler's next due time is read after the frames of the packet before were taken.
    """
    for packet in packets:
        if skipper is None or not packet.size:  # a flush packet (size 0) always goes through
            yield packet
            continue
        raw_pts = packet.pts if packet.pts is not None else packet.dts
        pts_s = None if raw_pts is None else float(raw_pts * time_base) + pts_offset_s
        yield from skipper.route(packet, pts_s, next_due_s=sampler.next_due_s)


def decoder_threads(config: CameraConfig, width: int, height: int) -> int:
    """FFmpeg decoder threads for a ``width`` x ``height`` stream: the camera's ``decode_threads``, else by size.

    Unset: one thread up to 1080p (the least CPU per frame; frame threads each add CPU and a
    frame of latency), two above (a 4K stream may outrun one core), two when the size is not
    known before decoding.
    """
    if config.decode_threads is not None:
        return config.decode_threads
    return 1 if 0 < width * height <= _ONE_THREAD_MAX_PIXELS else 2


def _to_image(av_frame: av.VideoFrame, reformatter: VideoReformatter) -> Any:
    """BGR pixels of a decoded frame: a numpy array, or a CUDA tensor for an NVDEC frame.

    ``reformatter`` is the stream's own: it keeps its swscale context from frame to frame,
    where ``VideoFrame.to_ndarray`` builds one a call (0.46 against 0.19 ms a 768x432 frame); one
    thread, on the decoding thread (else a pool per camera, of the size of the core count).
    """
    if av_frame.format.name == "cuda":
        return gpu.hw_frame_to_bgr_tensor(av_frame)
    return reformatter.reformat(av_frame, format="bgr24", threads=1).to_ndarray()


def _check_picture_came(
    config: CameraConfig, *, last_picture_at: float, unanswered_keyframe_at: float | None
) -> None:
    """Raise ``StreamStalledError`` when a live stream's packets have given no picture for too long.

    Decoding every frame, that is ``stall_timeout_s`` since the last picture. Decoding only
    keyframes, packets between keyframes give none by design: a keyframe left without a
    picture for ``stall_timeout_s`` is a stall, and so is no picture for
    ``max_keyframe_interval_s`` (a camera that sends no keyframe at all, intra refresh for
    one, would otherwise stay online with nothing analysed, for good).
    """
    stall_timeout_s = config.stall_timeout_s
    now = time.monotonic()
    if config.keyframes_only:
        if unanswered_keyframe_at is not None and now - unanswered_keyframe_at > stall_timeout_s:
            raise StreamStalledError(
                f"{config.masked_url}: keyframes but no picture for {stall_timeout_s:g}s"
            )
        if now - last_picture_at > config.max_keyframe_interval_s:
            raise StreamStalledError(
                f"{config.masked_url}: packets but no keyframe for {config.max_keyframe_interval_s:g}s with "
                "keyframes_only: set the camera's keyframe interval (GOP) shorter, or keyframes_only: false"
            )
    elif now - last_picture_at > stall_timeout_s:
        raise StreamStalledError(f"{config.masked_url}: packets but no picture for {stall_timeout_s:g}s")


def decode_frames(
    config: CameraConfig,
    *,
    stop: threading.Event,
    clock: Callable[[], float] = time.time,
    start_index: int = 0,
    on_decoded: Callable[[], None] | None = None,
    on_decode_error: Callable[[str], None] | None = None,
    on_open: Callable[[str], None] | None = None,
    on_packet: Callable[[], None] | None = None,
) -> Iterator[Frame]:
    """Yield frames of one connection to ``config``'s stream, sampled at ``analysis_fps``.

    Files honour ``realtime`` (pace at the file's rate) and ``loop``; timestamps keep
    increasing across loops. For live streams ``captured_at`` is the wall clock at
    decode; for files played faster than real time it is the start time plus the
    presentation time since the first kept frame (whatever the file's first pts).

    With ``keyframes_only`` the packets between two keyframes decode to nothing by
    design, and a camera may send a keyframe only every 10 s or more (smart codecs): a live
    stream then counts as stalled when a keyframe brought no picture within
    ``stall_timeout_s``, not when no picture came for that long. A stream whose packets
    stop still stalls after ``stall_timeout_s`` (FFmpeg's I/O timeout).

    Args:
        config: The camera.
        stop: Set to end the iteration early.
        clock: Wall clock, epoch seconds (injectable for tests).
        start_index: Index given to the first frame (keeps counting across reconnects).
        on_decoded: Called for every decoded frame, kept or not (for counters).
        on_decode_error: Called with a message for each packet that failed to decode.
        on_open: Called with the decoder in use (``"cpu"`` or ``"cuda"``) once open.
        on_packet: Called for each video packet read while only keyframes are decoded
            (``keyframes_only``): between keyframes, packets are the sign that the stream flows.

    Yields:
        Sampled frames in decode order.

    Raises:
        StreamCredentialsError: The stream refuses the credentials (401, 403).
        StreamConfigError: The stream refuses what is configured (path, host name,
            not a video, no video stream in it).
        StreamOpenError: The URL could not be opened for a transient reason.
        StreamStalledError: No data, or no decodable picture (from a keyframe, with
            ``keyframes_only``), within ``stall_timeout_s``.
        StreamDisconnectedError: A live stream ended or its connection broke.
        DecodeError: Too many consecutive decode errors, or undecodable data mid-stream.
    """
    url = config.url.get_secret_value()
    masked = config.masked_url
    is_live = is_live_url(url)
    sampler = FrameSampler(config.analysis_fps)
    index = start_index
    pts_offset_s = 0.0
    wall_start = play_start_wall = clock()
    first_pts_s: float | None = None  # real-time pacing runs on across a looped file's passes
    reformatter = VideoReformatter()
    while not stop.is_set():
        container, decoder = _open(config)
        try:
            if not container.streams.video:
                raise StreamConfigError(f"cannot open {masked}: it has no video stream")
            stream = container.streams.video[0]
            context = stream.codec_context
            context.thread_type = "AUTO"
            context.thread_count = decoder_threads(config, context.width, context.height)
            if config.keyframes_only:
                context.skip_frame = "NONKEY"
            elif _samples_at_most_half(config, stream):
                context.skip_frame = "NONREF"
            if on_open is not None:
                on_open(decoder)
            time_base = stream.time_base or Fraction(1, 90000)
            frame_period_s = 1.0 / float(stream.average_rate) if stream.average_rate else 0.04
            skipper = _gop_tail_skipper(config, stream, decoder)
            last_pts_s: float | None = None
            consecutive_errors = 0
            last_picture_at = last_kept_at = time.monotonic()
            unanswered_keyframe_at: float | None = None  # keyframes_only: a keyframe came, no picture yet
            pass_start_index = index
            try:
                for packet in _routed(container.demux(stream), skipper, sampler, time_base, pts_offset_s):
                    if stop.is_set():
                        return
                    if config.keyframes_only and packet.size:
                        if on_packet is not None:
                            on_packet()
                        if packet.is_keyframe and unanswered_keyframe_at is None:
                            unanswered_keyframe_at = time.monotonic()
                    try:
                        decoded = packet.decode()
                        consecutive_errors = 0
                    except av.error.InvalidDataError as exc:
                        consecutive_errors += 1
                        if on_decode_error is not None:
                            on_decode_error(_masked_text(exc, url))
                        if consecutive_errors > _MAX_CONSECUTIVE_DECODE_ERRORS:
                            raise DecodeError(
                                f"{masked}: {consecutive_errors} consecutive decode errors"
                            ) from None
                        decoded = []
                    if not decoded:
                        if is_live:
                            _check_picture_came(
                                config,
                                last_picture_at=last_picture_at,
                                unanswered_keyframe_at=unanswered_keyframe_at,
                            )
                        continue
                    last_picture_at = time.monotonic()
                    unanswered_keyframe_at = None
                    for av_frame in decoded:
                        if on_decoded is not None:
                            on_decoded()
                        raw_pts = av_frame.pts if av_frame.pts is not None else av_frame.dts
                        if raw_pts is not None:
                            pts_s = float(raw_pts * time_base) + pts_offset_s
                        else:  # RTP often leaves the very first frame unstamped
                            pts_s = pts_offset_s if last_pts_s is None else last_pts_s + frame_period_s
                        last_pts_s = pts_s
                        # A live camera whose timestamps barely advance (one tick a frame) would
                        # never reach the next due pts: past a few periods of wall time, keep one.
                        is_overdue = (
                            is_live and time.monotonic() - last_kept_at > _OVERDUE_PERIODS * sampler.period_s
                        )
                        if not sampler.should_keep(pts_s, is_overdue=is_overdue):
                            continue
                        last_kept_at = time.monotonic()
                        if first_pts_s is None:
                            first_pts_s = pts_s
                        if not is_live and config.realtime:
                            delay = (pts_s - first_pts_s) - (clock() - play_start_wall)
                            if delay > 0 and stop.wait(delay):
                                return
                        # A file faster than real time: its start time plus the time since its first
                        # kept frame. Raw pts need not start at 0 (an MPEG-TS export often starts at
                        # 1.4 s, an NVR segment hours into the recording, an edit list below 0).
                        captured_at = (
                            clock() if (is_live or config.realtime) else wall_start + (pts_s - first_pts_s)
                        )
                        yield Frame(
                            camera_id=config.id,
                            image=_to_image(av_frame, reformatter),
                            captured_at=captured_at,
                            pts_s=pts_s,
                            index=index,
                        )
                        index += 1
            except (av.error.ExitError, av.error.TimeoutError) as exc:
                raise StreamStalledError(
                    f"{masked}: no data for {config.stall_timeout_s:g}s ({type(exc).__name__})"
                ) from None
            except (av.error.InvalidDataError, av.error.BugError, av.error.PatchWelcomeError) as exc:
                raise DecodeError(f"{masked}: {_masked_text(exc, url)}") from None
            except av.error.FFmpegError as exc:  # connection reset, EOF, I/O error
                raise StreamDisconnectedError(
                    f"{masked}: connection lost ({_masked_text(exc, url)})"
                ) from None
        finally:
            container.close()
        if is_live:
            raise StreamDisconnectedError(f"{masked}: stream ended (disconnected)")
        if not config.loop:
            return
        if index == pass_start_index and last_pts_s is None:
            # A whole pass without one picture: looping again at once would spin a core for ever.
            raise DecodeError(f"{masked}: the file has no decodable picture")
        # Looping a file: continue the timeline one frame period after the last frame.
        pass_end_s = max(
            (t for t in (last_pts_s, skipper.last_pts_s if skipper is not None else None) if t is not None),
            default=None,
        )  # a GOP end left undecoded, or a frame a frame-threaded decoder gave out last, may be the latest
        pts_offset_s = (pass_end_s if pass_end_s is not None else pts_offset_s) + frame_period_s
