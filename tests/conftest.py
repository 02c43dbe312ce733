"""Suite-wide set-up: offline ultralytics, shared fixtures (RTSP server, webhook receiver)."""

from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")

pytest_plugins = ["tests.support.fixtures", "tests.support.receiver"]


@pytest.fixture(autouse=True)
def _own_site_registry(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test gets its own (not yet created) site model registry, never the user's."""
    folder = tmp_path_factory.getbasetemp() / f"site-registry-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("ANJIAN_REGISTRY", str(folder))
