"""``anjian models list | promote | rollback`` on a registry of its own."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from models.registry import register_version, resolve_model_path
from service.cli import app

runner = CliRunner()


def test_list_promote_rollback(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    for version, map50 in (("1", 0.41), ("2", 0.57)):
        source = tmp_path / f"{version}.onnx"
        source.write_bytes(version.encode())
        register_version(
            "det", source, {"map50": map50, "data_hash": "sha256:feedbeef"}, "# card\n", root=registry
        )
    reg = ["--registry", str(registry)]

    listed = runner.invoke(app, ["models", "list", *reg])
    assert listed.exit_code == 0, listed.output
    assert "0.570" in listed.output and "sha256:feedbeef" in listed.output

    promoted = runner.invoke(app, ["models", "promote", "det", "1", *reg])
    assert promoted.exit_code == 0 and "2 -> 1" in promoted.output
    assert resolve_model_path("builtin:det", root=registry).parent.name == "1"

    scoped = runner.invoke(app, ["models", "promote", "det", "2", "--scope", "line-3", *reg])
    assert (
        scoped.exit_code == 0 and resolve_model_path("builtin:det@line-3", root=registry).parent.name == "2"
    )

    back = runner.invoke(app, ["models", "rollback", "det", *reg])
    assert back.exit_code == 0 and "rolled back to 2" in back.output
    assert resolve_model_path("builtin:det", root=registry).parent.name == "2"


def test_errors_are_clean(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    (registry / "det").mkdir(parents=True)
    reg = ["--registry", str(registry)]
    assert runner.invoke(app, ["models", "promote", "det", "9", *reg]).exit_code == 2
    result = runner.invoke(app, ["models", "rollback", "det", *reg])
    assert result.exit_code == 2 and "no earlier promoted version" in result.output
    assert runner.invoke(app, ["models", "list", "nope", *reg]).exit_code == 2
