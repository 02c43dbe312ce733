"""On the base install (no ``train`` extra) the analysts' commands that need it say so, before any work.

The extra's modules are hidden with ``sys.modules[name] = None``: importing one then fails as if it
were not installed, and ``importlib.util.find_spec`` finds nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anjian.service.cli import app

runner = CliRunner()


def _text(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.mark.parametrize(
    ("missing", "args", "what"),
    [
        ("ultralytics", ["export", "{tmp}/best.pt", "--out", "{tmp}/export"], "anjian export"),
        (
            "ultralytics",
            ["train", "--data", "{tmp}/data.yaml", "--model", "coco", "--coco", "{tmp}/coco.onnx"]
            + ["--project", "{tmp}/runs", "--name", "t1", "--epochs", "1"],
            "anjian train",
        ),
        ("onnx", ["export", "{tmp}/best.pt", "--out", "{tmp}/export"], "anjian export"),
        (
            "onnx",
            ["models", "calibrate", "anjian-n", "2", "--data", "{tmp}/data.yaml", "--register"]
            + ["--registry", "{tmp}/registry"],
            "anjian models calibrate --register",
        ),
        (
            "nncf",
            [
                "models",
                "quantize",
                "anjian-n",
                "2",
                "--data",
                "{tmp}/data.yaml",
                "--registry",
                "{tmp}/registry",
            ],
            "anjian models quantize",
        ),
        (
            "ultralytics",
            ["eval", "--model", "{tmp}/best.pt", "--data", "{tmp}/data.yaml"],
            "anjian eval of a .pt",
        ),
    ],
    ids=["export", "train", "export-onnx", "calibrate-register", "quantize", "eval-pt"],
)
def test_a_command_needing_the_train_extra_names_it_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str, args: list[str], what: str
) -> None:
    for name in ("best.pt", "coco.onnx"):
        (tmp_path / name).write_bytes(b"not read: the extra is checked first")
    monkeypatch.setitem(sys.modules, missing, None)

    result = runner.invoke(app, [arg.format(tmp=tmp_path) for arg in args], env={"COLUMNS": "200"})

    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert f"{what}" in _text(result.output)
    assert f"needs the train extra ({missing} not installed): pip install -e '.[train]'" in _text(
        result.output
    )
    assert not (tmp_path / "runs").exists() and not (tmp_path / "export").exists()  # nothing was started


def test_calibrate_without_register_needs_no_onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = runner.invoke(
        app, ["models", "calibrate", "anjian-n", "2", "--data", str(tmp_path / "missing.yaml")]
    )
    assert result.exit_code == 2
    assert "train extra" not in result.output  # it goes on, to the missing data
