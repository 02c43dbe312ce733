"""``anjian eval`` says what it scored: classes per source, input size, threshold and data digest."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from anjian.datasets.hashing import dataset_digest
from anjian.service.cli import app
from tests.support.real_data import copy_yolo_sample, require_shared_data


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
