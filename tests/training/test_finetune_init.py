"""The starting checkpoint of a fine-tune is a function of its seed (reproducible training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.real_data import require_shared_data

CLASSES = ("person", "fallen_person", "fire", "smoke", "cigarette", "pallet", "forklift")


def _tensors(path: Path) -> dict[str, object]:
    """Every tensor of a saved ultralytics checkpoint's model, by name."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return {name: t.float() for name, t in checkpoint["model"].state_dict().items()}


def test_same_seed_builds_the_same_checkpoint_and_another_seed_differs(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    import torch

    from anjian.training.finetune_init import build_finetune_checkpoint

    coco = require_shared_data("weights", "coco_yolov8n_int8.onnx")
    torch.manual_seed(1234)
    outside = torch.rand(3)
    first = _tensors(build_finetune_checkpoint(coco, CLASSES, tmp_path / "a" / "init.pt", seed=0))
    torch.manual_seed(1234)
    assert torch.equal(torch.rand(3), outside)  # the caller's generator is left alone ...
    torch.rand(100)  # ... and does not leak into the build either
    again = _tensors(build_finetune_checkpoint(coco, CLASSES, tmp_path / "b" / "init.pt", seed=0))
    other = _tensors(build_finetune_checkpoint(coco, CLASSES, tmp_path / "c" / "init.pt", seed=1))

    assert first.keys() == again.keys() == other.keys()
    unequal = [name for name in first if not torch.equal(first[name], again[name])]  # type: ignore[arg-type]
    assert unequal == []
    changed = [name for name in first if not torch.equal(first[name], other[name])]  # type: ignore[arg-type]
    assert changed and all(name.startswith("model.22.cv3.") for name in changed), changed
