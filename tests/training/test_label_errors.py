"""``anjian eval``, ``models compare`` and ``models calibrate`` refuse a split whose labels lost boxes when read."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from anjian.datasets.yolo import load_yolo_set
from anjian.models.registry import register_version, resolve_model_path
from anjian.service.cli import app
from anjian.training.label_errors import LabelErrorsError, check_label_errors, label_error_summary

runner = CliRunner()
WIDE = {"COLUMNS": "1000"}  # rich wraps at the terminal's width: one message stays one line


pytestmark = pytest.mark.usefixtures("wide_error_consoles")


def _image(path: Path) -> None:
    """A grey frame with an orange block (what the demo model calls fire)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((240, 320, 3), 90, np.uint8)
    cv2.rectangle(image, (120, 80), (200, 180), (0, 140, 255), -1)
    cv2.imwrite(str(path), image)


def _labelled_set(root: Path, val_labels: dict[str, str], train_labels: dict[str, str] | None = None) -> Path:
    """A YOLO set (class 'fire' only) whose val (and train) images carry the given label files' text."""
    for split, labels in (("val", val_labels), ("train", train_labels or {"t": "0 0.5 0.54 0.25 0.42\n"})):
        for stem, text in labels.items():
            _image(root / "images" / split / f"{stem}.jpg")
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [fire]\n")
    return root / "data.yaml"


GOOD = "0 0.5 0.54 0.25 0.42\n"
BAD_VAL = {"a": GOOD, "b": "9 0.5 0.5 0.2 0.2\n", "c": GOOD + "0 0.4 0.5\n"}


def test_the_summary_counts_each_kind_and_names_the_first_file(tmp_path: Path) -> None:
    dataset = load_yolo_set(_labelled_set(tmp_path / "set", BAD_VAL))

    summary = label_error_summary(dataset, "val")

    assert summary is not None
    assert summary.startswith("set/val: 2 label error(s) (")
    assert "malformed_line 1" in summary and "unknown_class 1" in summary
    assert f"the first in {tmp_path / 'set' / 'labels' / 'val'}" in summary and "\n" not in summary


def test_errors_of_another_split_do_not_stop_scoring_this_one(tmp_path: Path) -> None:
    data = _labelled_set(tmp_path / "set", {"a": GOOD}, train_labels={"t": "7 0.5 0.5 0.2 0.2\n"})
    dataset = load_yolo_set(data)

    assert label_error_summary(dataset, "val") is None
    assert label_error_summary(dataset, "train") is not None
    assert label_error_summary(dataset.as_one_split(), "all") is not None  # a set scored whole: all count


def test_allowed_errors_come_back_as_the_warning(tmp_path: Path) -> None:
    dataset = load_yolo_set(_labelled_set(tmp_path / "set", BAD_VAL))
    with pytest.raises(LabelErrorsError, match=r"scored as background.*--allow-label-errors"):
        check_label_errors(dataset, "val", is_allowed=False)
    assert check_label_errors(dataset, "val", is_allowed=True) == label_error_summary(dataset, "val")


def _one_clean_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_eval_refuses_a_split_with_label_errors_unless_allowed(tmp_path: Path) -> None:
    data = _labelled_set(tmp_path / "set", BAD_VAL)
    args = ["eval", "--model", str(resolve_model_path("builtin:anjian-demo")), "--data", str(data)]

    refused = runner.invoke(app, args, env=WIDE)

    assert refused.exit_code == 2 and isinstance(refused.exception, SystemExit), refused.output
    line = _one_clean_line(refused.output)
    assert "set/val: 2 label error(s)" in line and "unknown_class 1" in line
    assert f"anjian dataset validate {data}" in line and "--allow-label-errors" in line

    allowed = runner.invoke(app, [*args, "--allow-label-errors"], env=WIDE)
    assert allowed.exit_code == 0, allowed.output
    assert "warning: scored with label errors: set/val: 2 label error(s)" in allowed.output


def test_eval_of_a_clean_split_says_nothing_about_label_errors(tmp_path: Path) -> None:
    data = _labelled_set(tmp_path / "set", {"a": GOOD}, train_labels={"t": "7 0.5 0.5 0.2 0.2\n"})
    args = ["eval", "--model", str(resolve_model_path("builtin:anjian-demo")), "--data", str(data)]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    assert "label error" not in result.output


def test_compare_refuses_a_split_with_label_errors_unless_allowed(tmp_path: Path) -> None:
    data = _labelled_set(tmp_path / "set", BAD_VAL)
    models = [str(resolve_model_path(f"builtin:anjian-demo/{v}")) for v in ("2", "1")]
    args = ["models", "compare", *models, "--data", str(data), "--no-record"]

    refused = runner.invoke(app, args, env=WIDE)

    assert refused.exit_code == 2 and isinstance(refused.exception, SystemExit), refused.output
    assert "set/val: 2 label error(s)" in _one_clean_line(refused.output)

    allowed = runner.invoke(app, [*args, "--allow-label-errors"], env=WIDE)
    assert allowed.exit_code == 0, allowed.output
    assert "warning: scored with label errors: set/val" in allowed.output


def test_calibrate_refuses_a_split_with_label_errors_unless_allowed(tmp_path: Path) -> None:
    data = _labelled_set(tmp_path / "set", BAD_VAL)
    registry = tmp_path / "registry"
    register_version(
        "flame", resolve_model_path("builtin:anjian-demo"), {}, "# flame\n", version="1", root=registry
    )
    args = ["models", "calibrate", "flame", "1", "--data", str(data), "--registry", str(registry)]

    refused = runner.invoke(app, args, env=WIDE)

    assert refused.exit_code == 2 and isinstance(refused.exception, SystemExit), refused.output
    assert "set/val: 2 label error(s)" in _one_clean_line(refused.output)

    allowed = runner.invoke(app, [*args, "--allow-label-errors"], env=WIDE)
    assert "score anyway" not in allowed.output and isinstance(allowed.exception, SystemExit | None)
    # scored: the demo model finds no 'fire' in these frames, which calibrate says once past the label check
    assert allowed.exit_code == 0 or "no class of flame/1 has a true positive" in allowed.output, (
        allowed.output
    )
