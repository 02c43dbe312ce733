"""The six top-level folders install under the ``anjian`` namespace, and nothing of anjian's under a generic name."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("cameras", "datasets", "models", "pipeline", "service", "training")


def _setuptools() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]  # type: ignore[no-any-return]


def test_every_package_folder_is_installed_under_the_namespace() -> None:
    folders = {
        "anjian." + ".".join(init.parent.relative_to(REPO).parts)
        for folder in FOLDERS
        for init in (REPO / folder).rglob("__init__.py")
    }

    assert set(_setuptools()["packages"]) == folders  # type: ignore[arg-type]
    assert _setuptools()["package-dir"] == {f"anjian.{f}": f for f in FOLDERS}


@pytest.mark.parametrize("name", FOLDERS)
def test_outside_the_checkout_a_generic_name_is_not_anjians(tmp_path: Path, name: str) -> None:
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import importlib.util as u; s = u.find_spec({name!r}); print(s and s.origin)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert not found.startswith(str(REPO)), f"`import {name}` outside the checkout finds anjian's {found}"


def test_outside_the_checkout_the_namespace_imports(tmp_path: Path) -> None:
    origin = subprocess.run(
        [sys.executable, "-c", "import anjian.pipeline.event as e; print(e.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert Path(origin) == REPO / "pipeline" / "event.py"
