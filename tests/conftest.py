"""Suite-wide set-up: offline ultralytics, shared fixtures (RTSP server, webhook receiver)."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
# rich fixes a Console's width from COLUMNS when the console is built (the CLIs build theirs at import):
# pytest-xdist's workers inherit COLUMNS=80, which would pin every CLI table to 80 columns whatever width a
# test asks for with CliRunner(env={"COLUMNS": ...}). Without it, each console reads COLUMNS when it prints.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

pytest_plugins = ["tests.support.fixtures", "tests.support.receiver"]


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A CLI run under CliRunner points the root logger at the runner's stream (``setup_logging``), which
    closes when the run ends: drop such handlers and put the level back after each test, so that no later
    test logs into a closed stream ("--- Logging error ---" in its output). pytest's own handlers stay."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in root.handlers[:]:
        if getattr(getattr(handler, "stream", None), "closed", False):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _own_site_registry(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test gets its own (not yet created) site model registry, never the user's."""
    folder = tmp_path_factory.getbasetemp() / f"site-registry-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("ANJIAN_REGISTRY", str(folder))
