"""The HTML eval report: hand-checked confusion, curves and galleries, and a real run through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anjian.datasets.labels import DetectionSet, LabelledImage
from anjian.service.cli import app
from anjian.training.evaluate import EvalReport, evaluate_detector
from anjian.training.report import MatchCollector, write_eval_report
from anjian.training.report.matching import CONFIDENCE_GRID, class_curves, confusion_matrix, find_errors
from tests.support.real_data import copy_yolo_sample
from tests.support.scripted_detector import ScriptedDetector, tagged_image

pytest.importorskip("matplotlib")

FIRE, SMOKE = 0, 1
NAMES = {FIRE: "fire", SMOKE: "smoke"}
# 200 x 100 images; boxes in pixels (x1, y1, x2, y2, confidence, class)
LEFT = (40.0, 30.0, 80.0, 70.0)  # normalised cx .3, cy .5, w .2, h .4
RIGHT = (120.0, 30.0, 160.0, 70.0)  # cx .7
LABELS = {
    1: [[FIRE, 0.3, 0.5, 0.2, 0.4]],  # found, plus a smoke false alarm in the sky
    2: [[SMOKE, 0.7, 0.5, 0.2, 0.4]],  # smoke taken for fire; the right smoke box scores only 0.1
    3: [[FIRE, 0.3, 0.5, 0.2, 0.4]],  # missed, nothing there
    4: [],  # background with a fire false alarm
    5: [[FIRE, 0.75, 0.5, 0.5, 1.0]],  # found, but only at 0.2
}
PREDICTIONS = {
    1: [(*LEFT, 0.9, FIRE), (140.0, 10.0, 180.0, 40.0, 0.8, SMOKE)],
    2: [(*RIGHT, 0.7, FIRE), (*RIGHT, 0.1, SMOKE)],
    4: [(10.0, 10.0, 50.0, 50.0, 0.3, FIRE)],
    5: [(100.0, 0.0, 200.0, 100.0, 0.2, FIRE)],
}


def _evaluate(tmp_path: Path) -> tuple[EvalReport, MatchCollector]:
    items = [
        LabelledImage(
            tagged_image(tmp_path / "images" / f"{tag}.png", tag),
            "val",
            np.array(rows, np.float32).reshape(-1, 5),
            "t",
        )
        for tag, rows in LABELS.items()
    ]
    collector = MatchCollector()
    report = evaluate_detector(
        ScriptedDetector(NAMES, PREDICTIONS), DetectionSet("t", ("fire", "smoke"), items), on_image=collector
    )
    return report, collector


def test_confusion_pairs_boxes_whatever_their_class_and_counts_background_both_ways(tmp_path: Path) -> None:
    _, collector = _evaluate(tmp_path)
    assert len(collector.images) == 5
    matrix = confusion_matrix(collector.images, [FIRE, SMOKE], 0.25)
    assert matrix.tolist() == [
        [1, 0, 2],  # fire: found once; missed in image 3 and in image 5 (found there only at 0.2)
        [1, 0, 0],  # smoke: taken for fire
        [1, 1, 0],  # background: a fire and a smoke false alarm
    ]


def test_threshold_curves_follow_the_hand_count(tmp_path: Path) -> None:
    _, collector = _evaluate(tmp_path)
    fire = class_curves(collector.images, FIRE)
    assert fire.instances == 3
    # fire predictions by confidence: 0.9 hit, 0.7 on the smoke (wrong class), 0.3 false alarm, 0.2 hit
    at = {round(float(t), 2): k for k, t in enumerate(CONFIDENCE_GRID)}
    assert fire.precision_at[at[0.25]] == pytest.approx(1 / 3) and fire.recall_at[at[0.25]] == pytest.approx(
        1 / 3
    )
    assert fire.f1_at[at[0.8]] == pytest.approx(0.5)
    assert fire.f1_at[at[0.1]] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert np.isnan(fire.precision_at[at[0.95]]) and fire.f1_at[at[0.95]] == 0
    assert fire.recall.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3])
    assert fire.precision.tolist() == pytest.approx([1.0, 0.5, 0.5, 0.5])  # the interpolated envelope


def test_errors_are_ranked_worst_first_and_say_what_they_overlap(tmp_path: Path) -> None:
    _, collector = _evaluate(tmp_path)
    errors = find_errors(collector.images, 0.25)
    fire_fp = errors[("false_positive", FIRE)]
    assert [c.confidence for c in fire_fp] == pytest.approx([0.7, 0.3])
    assert fire_fp[0].overlap_class == SMOKE and fire_fp[0].overlap_iou == pytest.approx(1.0)
    assert fire_fp[1].overlap_class is None
    [smoke_fp] = errors[("false_positive", SMOKE)]
    assert Path(smoke_fp.image).name == "1.png"
    fire_misses = errors[("miss", FIRE)]
    assert [Path(c.image).name for c in fire_misses] == ["3.png", "5.png"]  # unseen first, then seen at 0.2
    assert [c.confidence for c in fire_misses] == pytest.approx([0.0, 0.2])
    [smoke_miss] = errors[("miss", SMOKE)]
    assert smoke_miss.confidence == pytest.approx(0.1) and smoke_miss.overlap_class == FIRE


def test_the_page_is_offline_and_every_file_it_shows_exists(tmp_path: Path) -> None:
    report, collector = _evaluate(tmp_path)
    index = write_eval_report(
        report, collector.images, NAMES, tmp_path / "report", confidence=0.25, per_class=1
    )
    page = index.read_text()
    assert "<script" not in page and "http" not in page
    sources = re.findall(r"src='([^']+)'", page)
    assert {"pr_curves.png", "f1_curves.png", "confusion.png"} <= set(sources)
    for src in sources:
        assert (index.parent / src).is_file(), src
    crops = [s for s in sources if s.startswith("gallery/")]
    assert len(crops) == 4  # one per class and kind (per_class=1): fire fp, fire miss, smoke fp, smoke miss
    assert "False positives of fire: 1 of 2" in page and "Misses of fire: 1 of 2" in page
    data = json.loads((index.parent / "report.json").read_text())
    assert data["confusion"]["rows_true_columns_predicted"] == [[1, 0, 2], [1, 0, 0], [1, 1, 0]]
    assert data["at_threshold"]["fire"] == {
        "true_positives": 1,
        "false_positives": 2,
        "misses": 2,
        "best_f1": pytest.approx(0.5714, abs=1e-4),
        "best_f1_confidence": pytest.approx(0.2),  # the highest threshold of equal F1
    }


def test_a_report_threshold_outside_zero_one_is_refused(tmp_path: Path) -> None:
    report, collector = _evaluate(tmp_path)
    with pytest.raises(ValueError, match="between 0 and 1"):
        write_eval_report(report, collector.images, NAMES, tmp_path / "r", confidence=1.5)
    with pytest.raises(ValueError, match="not classes of the model"):
        write_eval_report(report, collector.images, {0: "person"}, tmp_path / "r")


@pytest.mark.slow
def test_eval_cli_writes_a_report_of_a_real_model_on_real_images(tmp_path: Path) -> None:
    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=6)
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            "builtin:anjian-n",
            "--data",
            str(data),
            "--report",
            str(out),
            "--gallery-size",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "anjian-n@" in page and "on fire/val" in page
    for src in re.findall(r"src='([^']+)'", page):
        assert (out / src).stat().st_size > 0
    data_json = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in data_json["classes"]] == ["fire", "smoke"]
    assert len(data_json["confusion"]["labels"]) == 3
    assert all(len(list((out / "gallery").glob(f"{k}_*"))) <= 2 * 3 for k in ("fp", "miss"))
