"""The tests' RTSP server is the benchmarks' stand-in camera (one server script, one controller)."""

from __future__ import annotations

from anjian.service.benchmarks.rtsp import (
    SYSTEM_PYTHON,
    RtspServerError,
    RtspTestServer,
    rtsp_server_available,
)

__all__ = ["SYSTEM_PYTHON", "RtspServerError", "RtspTestServer", "rtsp_server_available"]
