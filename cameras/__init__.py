"""Camera ingest: decode streams with PyAV, sample, reconnect, report health."""

from cameras.config import CameraConfig, ReconnectConfig
from cameras.decode import FrameSampler, decode_frames, is_live_url
from cameras.errors import CameraError, DecodeError, StreamOpenError, StreamStalledError
from cameras.frame import Frame
from cameras.health import CameraHealth, CameraState
from cameras.source import VideoSource
from cameras.url import mask_credentials, mask_url

__all__ = [
    "CameraConfig",
    "CameraError",
    "CameraHealth",
    "CameraState",
    "DecodeError",
    "Frame",
    "FrameSampler",
    "ReconnectConfig",
    "StreamOpenError",
    "StreamStalledError",
    "VideoSource",
    "decode_frames",
    "is_live_url",
    "mask_credentials",
    "mask_url",
]
