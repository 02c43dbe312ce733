"""Small samples of the real CC BY 4.0 sets in ``../shared/data`` for tests (never copied into the repo).

Tests that need them take the ``shared_data`` fixture from here; it skips, saying why,
where the data is absent (a fresh clone outside the workplace).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

__all__ = ["SHARED_DATA", "copy_yolo_sample", "require_shared_data"]

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def require_shared_data(*parts: str) -> Path:
    """The path under ``../shared/data``; skips the test when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing (see ../shared/data/README.md)")
    return path


def copy_yolo_sample(
    set_name: str, out: Path, *, per_split: int = 4, splits: tuple[str, ...] = ("train", "val")
) -> Path:
    """Copy the first ``per_split`` images (and labels) of each split of a real set into a new YOLO folder.

    Returns:
        The sample's ``data.yaml``.
    """
    source = require_shared_data(set_name)
    for split in splits:
        images = sorted((source / "images" / split).iterdir())[:per_split]
        for image in images:
            for kind, path in (
                ("images", image),
                ("labels", source / "labels" / split / f"{image.stem}.txt"),
            ):
                target = out / kind / split / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    text = (source / "data.yaml").read_text()
    (out / "data.yaml").write_text(text)
    return out / "data.yaml"
