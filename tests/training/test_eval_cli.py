"""``anjian eval`` says what it scored: classes per source, input size, threshold and data digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anjian.datasets.hashing import dataset_digest
from anjian.service.cli import app
from tests.support.real_data import copy_yolo_sample, require_shared_data

CLASS_MAP = Path(__file__).resolve().parents[2] / "datasets" / "maps" / "anjian.yaml"


def _pallet_eval(pallet: Path) -> list[str]:
    """``anjian eval`` of the promoted model on the shared pallet set, through the shipped class map."""
    return [
        "eval",
        "--model",
        "builtin:anjian-n/2",
        "--data",
        str(pallet / "data.yaml"),
        "--class-map",
        str(CLASS_MAP),
    ]


def test_eval_json_records_the_conditions_of_its_figures(tmp_path: Path) -> None:
    weights = require_shared_data("weights", "coco_yolov8n_int8.onnx")
    data = copy_yolo_sample("forklift_person", tmp_path / "fp", per_split=6)
    out = tmp_path / "eval.json"

    result = CliRunner().invoke(
        app,
        ["eval", "--model", str(weights), "--data", str(data), "--json", str(out)],
        env={"COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["imgsz"] == [640, 640]
    assert report["confidence_threshold"] == 0.001 and report["split"] == "val"
    assert report["data_hash"] == dataset_digest(data)
    [person] = report["classes"]
    assert person["images_scored"] == 6 and person["sources"] == ["fp"]
    assert "scored on" in result.output


def test_eval_scores_through_the_loader_compare_and_calibrate_use_and_says_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eval ran the model at cpu_precision auto (bf16 on an AMX CPU), compare and calibrate at fp32:
    their figures and thresholds differed for one model file. Now one loader, and the JSON says fp32."""
    import anjian.training.cli as training_cli

    pallet = require_shared_data("pallet")
    calls: list[tuple[str, float, Path | None]] = []
    load = training_cli._load_scoring_detector

    def spy(spec: str, confidence: float, registry: Path | None) -> object:
        calls.append((spec, confidence, registry))
        return load(spec, confidence, registry)

    monkeypatch.setattr(training_cli, "_load_scoring_detector", spy)
    out = tmp_path / "eval.json"
    args = _pallet_eval(pallet)
    result = CliRunner().invoke(
        app, [*args, "--registry", str(tmp_path / "site"), "--json", str(out)], env={"COLUMNS": "200"}
    )

    assert result.exit_code == 0, result.output
    assert calls == [("builtin:anjian-n/2", 0.001, tmp_path / "site")]
    assert json.loads(out.read_text())["cpu_precision"] == "fp32"


def test_eval_names_its_own_json_for_export_thresholds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pallet = require_shared_data("pallet")
    monkeypatch.chdir(tmp_path)
    args = _pallet_eval(pallet)

    with_json = CliRunner().invoke(app, [*args, "--json", "eval.json"], env={"COLUMNS": "200"})
    without = CliRunner().invoke(app, args, env={"COLUMNS": "200"})

    assert with_json.exit_code == 0 and without.exit_code == 0, with_json.output + without.output
    assert "`anjian export ... --thresholds eval.json`" in " ".join(with_json.output.split())
    assert "add --json FILE" in " ".join(without.output.split())
    assert "THIS.json" not in with_json.output + without.output
