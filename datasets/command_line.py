"""How every ``anjian`` command fails: a red message on stderr and exit code 2, never a traceback.

One definition for the command modules of every package (``datasets``, ``training``, ``service``
and the hub's). It lives in ``datasets`` because that is the most upstream package with commands,
which the others import already (``datasets`` imports nothing else of anjian), and it imports
only typer, so a command module that loads it stays quick to start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

__all__ = ["fail", "failing_on", "output_folder"]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` in red on stderr, as written, and return the exit to raise (``raise fail(...)``)."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@contextmanager
def failing_on(*errors: type[Exception]) -> Iterator[None]:
    """End the command with ``fail(str(error))`` when the block raises one of ``errors``.

    Name what a user can cause (a missing file, a refused value, a server that does not
    answer): it ends the command with its own message. Anything else keeps its traceback,
    because it is a bug.
    """
    try:
        yield
    except errors as exc:
        raise fail(str(exc)) from None


def output_folder(path: Path, option: str = "--dir") -> Path:
    """``path`` as a folder the command writes into, created if need be; ``fail`` naming ``option`` otherwise.

    A file given where a folder goes (or a folder that cannot be made) otherwise surfaced as
    ``NotADirectoryError``/``FileExistsError`` tracebacks from deep inside the command.
    """
    if path.exists() and not path.is_dir():
        raise fail(f"{option} {path} is a file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"{option} {path}: cannot create the folder: {exc.strerror or exc}") from None
    return path
