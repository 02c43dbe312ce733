"""Exceptions raised by camera sources.

Hierarchy::

    CameraError
    ├── StreamOpenError      the URL could not be opened (host, path, auth, format)
    ├── StreamStalledError   no frame arrived within the stall timeout
    └── DecodeError          the stream opened but its packets could not be decoded
"""

from __future__ import annotations

__all__ = ["CameraError", "DecodeError", "StreamOpenError", "StreamStalledError"]


class CameraError(Exception):
    """Base of every error raised by ``cameras``; messages never contain credentials."""


class StreamOpenError(CameraError):
    """The stream could not be opened: unknown host, wrong path, refused credentials, not a video."""


class StreamStalledError(CameraError):
    """The stream stopped delivering frames for longer than the configured stall timeout."""


class DecodeError(CameraError):
    """Packets arrived but could not be decoded into frames."""
