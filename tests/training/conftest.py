"""Shared by the training tests that really train: the COCO start weights and a run small enough for a test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.real_data import require_shared_data

if TYPE_CHECKING:
    from anjian.training.train import TrainConfig


@pytest.fixture
def coco_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The COCO detector the runs start from; skips without ultralytics or the shared data.

    ultralytics keeps its settings in the test's folder, not the user's.
    """
    pytest.importorskip("ultralytics")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo-config"))
    return require_shared_data("weights", "coco_yolov8n_int8.onnx")


def tiny_train_config(data: Path, init: Path, project: Path, name: str, **overrides: Any) -> TrainConfig:
    """A training run of seconds: 64-pixel input, batch 2, two epochs, no loader processes (override any)."""
    from anjian.training.train import TrainConfig

    settings: dict[str, Any] = {"epochs": 2, "imgsz": 64, "batch": 2, "workers": 0, **overrides}
    return TrainConfig(data=data, model=str(init), project=project, name=name, **settings)


@pytest.fixture
def wide_error_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Error and warning consoles that never wrap: a one-line message must print as one line.

    (Consoles follow COLUMNS when they print, but one left fixed by an earlier test would wrap.)
    """
    from rich.console import Console

    from anjian.datasets import cli as datasets_cli
    from anjian.training import cli as training_cli

    for module in (datasets_cli, training_cli):
        monkeypatch.setattr(module, "_err", Console(stderr=True, width=10_000))
