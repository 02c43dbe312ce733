"""The training record and the registered model's card cite the named dataset version trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anjian.datasets.versions import create_version
from anjian.service.cli import app
from tests.support.real_data import copy_yolo_sample
from tests.training.conftest import tiny_train_config

pytestmark = pytest.mark.slow


class _Stop(Exception):
    """Ends training after the first epoch: the checkpoint and the record are written by then."""


def test_record_and_card_name_the_dataset_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, coco_weights: Path
) -> None:
    monkeypatch.setenv("ANJIAN_DATASET_VERSIONS", str(tmp_path / "versions.json"))
    from anjian.training.finetune_init import build_finetune_checkpoint
    from anjian.training.train import train_detector

    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=2)
    version, _ = create_version("fire-v1", data)
    init = build_finetune_checkpoint(coco_weights, ["Fire", "default", "smoke"], tmp_path / "init.pt")
    config = tiny_train_config(data, init, tmp_path / "runs", "v")

    def stop(epoch: int) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        train_detector(config, on_epoch_end=stop)
    record = json.loads((tmp_path / "runs" / "v" / "anjian_train.json").read_text())
    assert record["data_version"] == {"name": "fire-v1", "data_hash": version.data_hash, "is_exact": True}

    registry = tmp_path / "registry"
    weights = tmp_path / "runs" / "v" / "weights" / "last.pt"
    result = CliRunner().invoke(
        app,
        ["export", str(weights), "--out", str(tmp_path / "export"), "--imgsz", "64", "--name", "firetest"]
        + ["--no-half", "--register", "--registry", str(registry)],
    )
    assert result.exit_code == 0, result.output
    [folder] = [p for p in (registry / "firetest").iterdir() if p.is_dir()]
    assert json.loads((folder / "meta.json").read_text())["data_version"]["name"] == "fire-v1"
    assert (
        f"Trained on dataset version `fire-v1`, digest `{version.data_hash}`"
        in (folder / "card.md").read_text()
    )
