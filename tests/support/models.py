"""Model files for tests, made from the shipped demo detector."""

from __future__ import annotations

from pathlib import Path

import onnx

from anjian.models.registry import resolve_model_path

__all__ = ["demo_model_named"]


def demo_model_named(path: Path, names: str) -> Path:
    """The demo detector (fire, smoke) saved at ``path`` with its ``names`` metadata replaced by ``names``."""
    model = onnx.load(str(resolve_model_path("builtin:anjian-demo")))
    for entry in model.metadata_props:
        if entry.key == "names":
            entry.value = names
    onnx.save(model, str(path))
    return path
