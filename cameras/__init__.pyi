"""Names of ``anjian.cameras``, loaded on first use (read by lazy_loader at run time, by type checkers as a stub)."""

from .backoff import Backoff, ReconnectWait
from .camera_set import CameraSet, CameraSetChange, source_settings_differ
from .config import CameraConfig, CameraFaultConfig, ReconnectConfig
from .decode import FrameSampler, decode_frames, is_live_url
from .errors import (
    CameraError,
    DecodeError,
    StreamConfigError,
    StreamCredentialsError,
    StreamDisconnectedError,
    StreamOpenError,
    StreamStalledError,
    StreamUnreachableError,
)
from .frame import Frame
from .health import CameraHealth, CameraState
from .source import VideoSource
from .url import mask_credentials, mask_url

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
    "ReconnectWait",
    "StreamConfigError",
    "StreamCredentialsError",
    "StreamDisconnectedError",
    "StreamOpenError",
    "StreamStalledError",
    "StreamUnreachableError",
    "VideoSource",
    "decode_frames",
    "is_live_url",
    "mask_credentials",
    "mask_url",
    "source_settings_differ",
]
