"""Camera ingest: decode streams with PyAV, sample, reconnect, report health.

The names below load on first use (PEP 562), so importing one light module
(``cameras.config``, ``cameras.url``) does not pull in PyAV and NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cameras.backoff import Backoff, ReconnectWait
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
        StreamUnreachableError,
    )
    from cameras.frame import Frame
    from cameras.health import CameraHealth, CameraState
    from cameras.source import VideoSource
    from cameras.url import mask_credentials, mask_url

_EXPORTS = {
    "Backoff": "cameras.backoff",
    "ReconnectWait": "cameras.backoff",
    "CameraSet": "cameras.camera_set",
    "CameraSetChange": "cameras.camera_set",
    "source_settings_differ": "cameras.camera_set",
    "CameraConfig": "cameras.config",
    "CameraFaultConfig": "cameras.config",
    "ReconnectConfig": "cameras.config",
    "FrameSampler": "cameras.decode",
    "decode_frames": "cameras.decode",
    "is_live_url": "cameras.decode",
    "CameraError": "cameras.errors",
    "DecodeError": "cameras.errors",
    "StreamConfigError": "cameras.errors",
    "StreamDisconnectedError": "cameras.errors",
    "StreamOpenError": "cameras.errors",
    "StreamStalledError": "cameras.errors",
    "StreamUnreachableError": "cameras.errors",
    "Frame": "cameras.frame",
    "CameraHealth": "cameras.health",
    "CameraState": "cameras.health",
    "VideoSource": "cameras.source",
    "mask_credentials": "cameras.url",
    "mask_url": "cameras.url",
}

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


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
