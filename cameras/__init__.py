"""Camera ingest: decode streams with PyAV, sample, reconnect, report health.

The names below load on first use (PEP 562), so importing one light module
(``anjian.cameras.config``, ``anjian.cameras.url``) does not pull in PyAV and NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anjian.cameras.backoff import Backoff, ReconnectWait
    from anjian.cameras.camera_set import CameraSet, CameraSetChange, source_settings_differ
    from anjian.cameras.config import CameraConfig, CameraFaultConfig, ReconnectConfig
    from anjian.cameras.decode import FrameSampler, decode_frames, is_live_url
    from anjian.cameras.errors import (
        CameraError,
        DecodeError,
        StreamConfigError,
        StreamDisconnectedError,
        StreamOpenError,
        StreamStalledError,
        StreamUnreachableError,
    )
    from anjian.cameras.frame import Frame
    from anjian.cameras.health import CameraHealth, CameraState
    from anjian.cameras.source import VideoSource
    from anjian.cameras.url import mask_credentials, mask_url

_EXPORTS = {
    "Backoff": "anjian.cameras.backoff",
    "ReconnectWait": "anjian.cameras.backoff",
    "CameraSet": "anjian.cameras.camera_set",
    "CameraSetChange": "anjian.cameras.camera_set",
    "source_settings_differ": "anjian.cameras.camera_set",
    "CameraConfig": "anjian.cameras.config",
    "CameraFaultConfig": "anjian.cameras.config",
    "ReconnectConfig": "anjian.cameras.config",
    "FrameSampler": "anjian.cameras.decode",
    "decode_frames": "anjian.cameras.decode",
    "is_live_url": "anjian.cameras.decode",
    "CameraError": "anjian.cameras.errors",
    "DecodeError": "anjian.cameras.errors",
    "StreamConfigError": "anjian.cameras.errors",
    "StreamDisconnectedError": "anjian.cameras.errors",
    "StreamOpenError": "anjian.cameras.errors",
    "StreamStalledError": "anjian.cameras.errors",
    "StreamUnreachableError": "anjian.cameras.errors",
    "Frame": "anjian.cameras.frame",
    "CameraHealth": "anjian.cameras.health",
    "CameraState": "anjian.cameras.health",
    "VideoSource": "anjian.cameras.source",
    "mask_credentials": "anjian.cameras.url",
    "mask_url": "anjian.cameras.url",
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
