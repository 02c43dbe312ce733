"""Every ``anjian`` command and sub-command prints its help and exits 0.

Help text goes through rich markup, so one stray ``[...]`` in a docstring or an option's
help crashes ``--help`` of that command only; walking the whole command tree keeps that
class of bug out of every command, present and future.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from anjian.service.cli import app
from anjian.service.lazy_cli import LazyCommandGroup

runner = CliRunner()


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The argument path of every command and group below ``command``, groups included.

    Typer vendors its own click, so groups are recognised by their ``commands`` mapping.
    """
    paths = [prefix]
    commands = getattr(command, "commands", None)
    if isinstance(commands, dict):
        for name, sub in sorted(commands.items()):
            paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


def _every_command() -> Any:
    """The ``anjian`` command tree, the analysts' commands (loaded on demand) included."""
    command = typer.main.get_command(app)
    assert isinstance(command, LazyCommandGroup)
    command.load_all()
    return command


COMMANDS = _command_paths(_every_command())


def test_the_walk_finds_the_nested_commands() -> None:
    assert {("eval",), ("train",), ("models", "promote"), ("dataset", "harvest"), ("eval-events",)} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "anjian")
def test_help_exits_0(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, f"anjian {' '.join(path)} --help: {result.output}{result.exception!r}"
    assert "Usage" in result.output


def test_eval_help_explains_split_and_confidence() -> None:
    result = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--split" in result.output and "Split of the data to score" in result.output
    assert "--confidence" in result.output and "precision-recall curve" in result.output
    assert "builtin:NAME/VERSION" in result.output
