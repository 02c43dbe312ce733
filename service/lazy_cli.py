"""``anjian`` commands whose modules load only when one of them runs.

The analysts' commands (``dataset …``, ``models …``, ``train``, ``eval``, ``export``)
live in ``anjian.datasets.cli`` and ``anjian.training.cli``, whose imports (NumPy, rich tables, their
pydantic models) cost about 0.3 s of CPU. ``anjian --help``, ``anjian serve`` and every
other command should not pay that. ``LazyCommandGroup`` lists those commands with the
first line of their help, read from their source with ``ast`` (nothing imported), and
loads the real ones when the command line names one of them.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from typer._click.core import Command, Context  # the click that typer ships with

__all__ = ["LazyCommandGroup", "LazyCommands", "source_help"]


@dataclass(frozen=True)
class LazyCommands:
    """Commands loaded on demand.

    Attributes:
        sources: Command name to ``(module, attribute)`` holding it: a ``typer.Typer``
            (a group: its ``help=``) or a function (its docstring), for the help listing.
        load: Imports the modules and returns every command by name (called once).
    """

    sources: Mapping[str, tuple[str, str]]
    load: Callable[[], Mapping[str, Command]]


def source_help(module: str, attribute: str) -> str:
    """The first line of ``module.attribute``'s help, read from the module's source without importing it.

    ``attribute`` is a function (its docstring) or a name bound to a call with a
    ``help=`` string (``typer.Typer(help=...)``); ``""`` when neither is found.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            return (ast.get_docstring(node) or "").strip().split("\n", 1)[0]
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Call):
            continue
        if any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets):
            for keyword in node.value.keywords:
                if keyword.arg == "help" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value).strip().split("\n", 1)[0]
    return ""


class LazyCommandGroup(TyperGroup):
    """A Typer group that lists ``lazy`` commands from their source and loads them only to run them.

    Subclass it with ``lazy`` set and pass the subclass as ``typer.Typer(cls=...)``.
    """

    lazy: ClassVar[LazyCommands | None] = None

    def list_commands(self, ctx: Context) -> list[str]:
        """The group's own commands, then the lazy ones not loaded yet."""
        names = list(super().list_commands(ctx))
        return names + [name for name in self._lazy_sources() if name not in names]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """The command, or a placeholder carrying its help while it is not loaded (for listings)."""
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self._lazy_sources():
            return command
        module, attribute = self._lazy_sources()[cmd_name]
        return TyperCommand(cmd_name, short_help=source_help(module, attribute))

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        """Load the lazy commands when the command line names one, then resolve as usual."""
        if args and args[0] in self._lazy_sources() and args[0] not in self.commands:
            self.load_all()
        return super().resolve_command(ctx, args)

    def _lazy_sources(self) -> Mapping[str, tuple[str, str]]:
        return self.lazy.sources if self.lazy is not None else {}

    def load_all(self) -> None:
        """Import the lazy commands and add them to the group (to walk every command, in tests)."""
        if self.lazy is None:
            return
        for name, command in self.lazy.load().items():
            if name not in self.commands:
                self.add_command(command, name)
