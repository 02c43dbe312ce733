"""``anjian models quantize`` (and ``free-input``) and ``anjian export --quantize-data``: what they refuse, and why, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from anjian.service.cli import app

runner = CliRunner()


def _text(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


def test_a_shipped_version_is_not_quantised_into_a_site_registry(tmp_path: Path) -> None:
    data = tmp_path / "data.yaml"
    result = runner.invoke(
        app,
        ["models", "quantize", "anjian-n", "1", "--data", str(data), "--registry", str(tmp_path / "site")],
    )
    assert result.exit_code == 2
    assert "anjian-n/1 ships with anjian" in _text(result.output)
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("command", ["quantize", "free-input"])
def test_an_unknown_version_is_named_before_any_data_is_read(tmp_path: Path, command: str) -> None:
    result = runner.invoke(
        app,
        [
            "models",
            command,
            "anjian-n",
            "77",
            "--data",
            str(tmp_path / "d.yaml"),
            "--registry",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "builtin model 'builtin:anjian-n/77' has no model.onnx" in _text(result.output)


def test_quantize_data_needs_register(tmp_path: Path) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not used")
    result = runner.invoke(
        app,
        ["export", str(weights), "--out", str(tmp_path / "out"), "--quantize-data", str(tmp_path / "d.yaml")],
    )
    assert result.exit_code == 2
    assert "--quantize-data quantises the registered version: add --register" in _text(result.output)
    assert not (tmp_path / "out").exists()


def test_an_unknown_first_try_is_named(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["models", "quantize", "anjian-n", "1", "--data", str(tmp_path / "d.yaml"), "--start-at", "stem"]
    )
    assert result.exit_code == 2
    assert "--start-at must be one of ['decode', 'head', 'qat', 'accuracy-control'], got 'stem'" in _text(
        result.output
    )


def test_a_missing_qat_training_set_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "t.yaml"
    args = [
        "models",
        "quantize",
        "anjian-n",
        "1",
        "--data",
        str(tmp_path / "d.yaml"),
        "--qat-data",
        str(missing),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"--qat-data {missing}: no such data.yaml" in _text(result.output)
