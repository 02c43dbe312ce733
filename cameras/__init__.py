"""Camera ingest: decode streams with PyAV, sample, reconnect, report health."""

from cameras.backoff import Backoff
from cameras.camera_set import CameraSet, CameraSetChange, source_settings_differ
from cameras.config import CameraConfig, CameraFaultConfig, ReconnectConfig
from cameras.decode import FrameSampler, decode_frames, is_live_url
from cameras.errors import (
    CameraError,
    DecodeError,
    StreamConfigError,
    StreamDisconnectedError,
    StreamOpenError,
    StreamStalledError,
)
from cameras.frame import Frame
from cameras.health import CameraHealth, CameraState
from cameras.source import VideoSource
from cameras.url import mask_credentials, mask_url

__all__ = [
    "Backoff",
    "CameraConfig",
    "CameraError",
    "CameraFaultConfig",
    "CameraHealth",
    "CameraSet",
    "CameraSetChange",
    "CameraState",
    "DecodeError",
    "Frame",
    "FrameSampler",
    "ReconnectConfig",
    "StreamConfigError",
    "StreamDisconnectedError",
    "StreamOpenError",
    "StreamStalledError",
    "VideoSource",
    "decode_frames",
    "is_live_url",
    "mask_credentials",
    "mask_url",
    "source_settings_differ",
]
