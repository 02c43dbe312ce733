"""Suite-wide set-up: offline ultralytics, shared fixtures (RTSP server, webhook receiver)."""

from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")

pytest_plugins = ["tests.support.fixtures", "tests.support.receiver"]
