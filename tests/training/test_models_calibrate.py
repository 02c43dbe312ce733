"""``anjian models calibrate``: a registered version's thresholds from labelled val splits, kept as a new version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from anjian.models.config import DetectorConfig
from anjian.models.int8_ir import file_sha256
from anjian.models.loader import load_detector
from anjian.models.registry import REGISTRY_DIR, read_meta, resolve_model_path
from anjian.service.cli import app
from anjian.training.thresholds import load_thresholds_json
from tests.support.real_data import require_shared_data

runner = CliRunner()
CLASS_MAP = Path(__file__).resolve().parents[2] / "datasets" / "maps" / "anjian.yaml"


def _text(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


def _calibrate(registry: Path, version: str, data: Path, *extra: str) -> tuple[int, str]:
    args = ["models", "calibrate", "anjian-n", version, "--data", str(data), "--class-map", str(CLASS_MAP)]
    result = runner.invoke(app, [*args, "--registry", str(registry), *extra])
    return result.exit_code, _text(result.output)


def test_calibrated_thresholds_go_into_a_new_version_with_the_same_weights(tmp_path: Path) -> None:
    pallet = require_shared_data("pallet")
    site = tmp_path / "site"
    code, output = _calibrate(
        site, "1", pallet / "data.yaml", "--register", "--json", str(tmp_path / "t.json")
    )
    assert code == 0, output
    assert "registered anjian-n version 101" in output and "not served until" in output

    chosen = load_thresholds_json(tmp_path / "t.json")  # what `anjian export --thresholds` reads
    assert set(chosen) == {"pallet"} and 0.05 <= chosen["pallet"] <= 0.9
    new = resolve_model_path("builtin:anjian-n/101", root=site)
    detector = load_detector(str(new), DetectorConfig(path=str(new), device="cpu"))
    assert detector.class_thresholds == chosen  # stored in the file: the rules default to it

    old = REGISTRY_DIR / "anjian-n" / "1"
    meta, old_meta = read_meta(new.parent), read_meta(old)
    assert meta["recalibrated_from"]["model"] == "anjian-n/1"
    assert meta["recalibrated_from"]["sources"] == ["pallet"]
    assert meta["recalibrated_from"]["previous"] == {}  # version 1 carried none
    assert meta["thresholds"]["pallet"]["threshold"] == chosen["pallet"]
    assert meta["onnx_sha256"] == file_sha256(new) != old_meta["onnx_sha256"]
    assert meta["val"] == old_meta["val"]  # the weights' records carry over
    assert meta["int8"]["status"] == "rejected"  # same weights, same verdict
    assert "event_evals" in old_meta and "event_evals" not in meta  # alerts depend on the thresholds
    card = (new.parent / "card.md").read_text()
    assert card.startswith(
        "# anjian-n 101\n\nThe weights of anjian-n/1 with each class's operating threshold"
    )
    assert "## Operating thresholds" in card and f"| pallet | {chosen['pallet']:.3f} | 1 |" in card
    assert old_meta["onnx_sha256"][:16] not in card  # the digest named is the new file's
    served = resolve_model_path("builtin:anjian-n", root=tmp_path / "untouched")
    assert resolve_model_path("builtin:anjian-n", root=site) == served  # registered, not promoted


def test_an_accepted_int8_record_stays_with_its_own_file(tmp_path: Path) -> None:
    pallet = require_shared_data("pallet")
    site = tmp_path / "site"
    copied = site / "anjian-n" / "105"
    shutil.copytree(REGISTRY_DIR / "anjian-n" / "1", copied)
    meta = read_meta(copied)
    meta["int8"] = {**meta["int8"], "status": "accepted"}
    (copied / "meta.json").write_text(json.dumps(meta))
    code, output = _calibrate(site, "105", pallet / "data.yaml", "--register", "--new-version", "107")
    assert code == 0, output
    assert "int8" not in read_meta(site / "anjian-n" / "107")  # its IR belongs to version 105's file


def test_without_register_nothing_is_written(tmp_path: Path) -> None:
    pallet = require_shared_data("pallet")
    code, output = _calibrate(tmp_path / "site", "1", pallet / "data.yaml")
    assert code == 0, output
    assert "pallet" in output and "registered" not in output
    assert not (tmp_path / "site").exists()


def test_sets_without_a_true_positive_and_unknown_versions_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "set"
    for split in ("train", "val"):
        (data / "images" / split).mkdir(parents=True)
        (data / "labels" / split).mkdir(parents=True)
    (data / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: ['pallet']\n")
    cv2.imwrite(str(data / "images" / "val" / "a.jpg"), np.zeros((64, 64, 3), np.uint8))
    (data / "labels" / "val" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    code, output = _calibrate(tmp_path / "site", "1", data / "data.yaml", "--register")
    assert code == 2
    assert "no class of anjian-n/1 has a true positive on the val splits of ['set']" in output
    assert not (tmp_path / "site").exists()

    code, output = _calibrate(tmp_path / "site", "77", data / "data.yaml")
    assert code == 2 and "builtin model 'builtin:anjian-n/77' has no model.onnx" in output


@pytest.mark.parametrize(
    ("taken", "message"),
    [("1", "anjian-n 1 is a shipped version"), ("101", "101 holds a model already")],
)
def test_a_taken_version_number_is_refused(tmp_path: Path, taken: str, message: str) -> None:
    pallet = require_shared_data("pallet")
    site = tmp_path / "site"
    if taken == "101":
        assert _calibrate(site, "1", pallet / "data.yaml", "--register")[0] == 0
    code, output = _calibrate(site, "1", pallet / "data.yaml", "--register", "--new-version", taken)
    assert code == 2 and message in output, output
