"""Shared set-up of the model registry tests: a site registry of stand-in model files."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.models.registry import register_version


def stand_in_model(tmp_path: Path, text: str) -> Path:
    """A stand-in model file with distinct bytes."""
    path = tmp_path / f"{text.replace(' ', '-')}.onnx"
    path.write_bytes(text.encode())
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A site registry with model 'det' (not shipped) versions 1, 2 and 3, nothing promoted."""
    root = tmp_path / "registry"
    for version in ("1", "2", "3"):
        meta = {"map50": 0.1 * int(version), "data_hash": "sha256:abc"}
        register_version(
            "det", stand_in_model(tmp_path, f"model {version}"), meta, f"# det {version}\n", root=root
        )
    return root
