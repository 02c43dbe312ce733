"""Exceptions raised by camera sources.

Hierarchy::

    CameraError
    ├── StreamOpenError          the URL could not be opened (network down, refused, timed out)
    │   ├── StreamUnreachableError  nothing answers at its host and port (refused, no route)
    │   └── StreamConfigError    it answered, but refuses what is configured (host name, path,
    │       │                    credentials, not a video): needs a config change on one side
    │       └── StreamCredentialsError  it refused the credentials (401, 403): retried far less often
    ├── StreamDisconnectedError  an open live stream ended or its connection broke
    ├── StreamStalledError       no frame arrived within the stall timeout
    └── DecodeError              the stream opened but its packets could not be decoded
"""

from __future__ import annotations

__all__ = [
    "CameraError",
    "DecodeError",
    "StreamConfigError",
    "StreamCredentialsError",
    "StreamDisconnectedError",
    "StreamOpenError",
    "StreamStalledError",
    "StreamUnreachableError",
]


class CameraError(Exception):
    """Base of every error raised by ``cameras``; messages never contain credentials."""


class StreamOpenError(CameraError):
    """The stream could not be opened: unreachable, refused, timed out."""


class StreamUnreachableError(StreamOpenError):
    """Nothing answers at the stream's host and port: connection refused, host or network unreachable.

    The camera (or its server) is down; sources reopen it as soon as its port answers again.
    """


class StreamConfigError(StreamOpenError):
    """The stream refuses the configured request: unknown host, wrong path, refused credentials,
    not a video.

    Sources still retry (a camera may be fixed on its side), but at the longest backoff
    (refused credentials far less often: ``StreamCredentialsError``), and report ``failed_config``.
    """


class StreamCredentialsError(StreamConfigError):
    """The camera refused the credentials: 401 Unauthorized or 403 Forbidden.

    A ``StreamConfigError`` like the other refusals (reported ``failed_config``), but every
    retry is one more failed login, and cameras lock the client's address (Hikvision) or
    the account itself, for every client (Dahua), after a few: sources retry it far less
    often (``ReconnectConfig.credentials_initial_delay_s``).
    """


class StreamDisconnectedError(CameraError):
    """An open live stream ended (end of stream on a camera means it went away) or broke."""


class StreamStalledError(CameraError):
    """The stream stopped delivering frames for longer than the configured stall timeout."""


class DecodeError(CameraError):
    """Packets arrived but could not be decoded into frames."""
