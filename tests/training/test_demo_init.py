"""Starting a demo model from an earlier one: its weights go where their module paths and shapes fit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ultralytics")
pytest.importorskip("onnx")

from anjian.models.registry import resolve_model_path
from anjian.training.coco_init import load_float_onnx_weights, transplant_weights


@pytest.fixture
def detection_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A fresh six-class demo-scale YOLOv8 (what demo model 2 trains), built offline from its yaml."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_AUTOINSTALL", "false")
    if "YOLO_CONFIG_DIR" not in os.environ:
        monkeypatch.setenv("YOLO_CONFIG_DIR", str(Path.home() / ".cache" / "anjian"))
    from ultralytics.models.yolo.model import YOLO

    from anjian.training.demo_model import DemoRecipe, _write_model_yaml

    yaml_path = _write_model_yaml(tmp_path / "det.yaml", DemoRecipe())
    return YOLO(str(yaml_path), task="detect").model


def test_transplant_copies_every_fitting_tensor_and_leaves_the_resized_class_outputs(
    detection_model: object,
) -> None:
    weights = load_float_onnx_weights(resolve_model_path("builtin:anjian-demo/1"))  # two classes
    net: object = detection_model
    used = transplant_weights(net, weights, is_strict=False)
    modules = dict(net.named_modules())  # type: ignore[attr-defined]

    assert np.allclose(modules["model.0"].conv.weight.detach().numpy(), weights["model.0.conv.weight"])
    assert np.allclose(modules["model.0"].bn.bias.detach().numpy(), weights["model.0.conv.bias"])
    # the box branch fits; the class outputs (2 classes there, 6 here) keep their fresh init
    assert "model.22.cv2.0.2.weight" in used
    assert "model.22.cv3.0.2.weight" not in used
    assert modules["model.22.cv3.0.2"].weight.shape[0] == 6
    assert (
        len(used) == len([k for k in weights if ".dfl." not in k]) - 6
    )  # three class outputs: weight + bias


def test_transplant_refuses_a_misfit_when_strict(detection_model: object) -> None:
    weights = load_float_onnx_weights(resolve_model_path("builtin:anjian-demo/1"))
    with pytest.raises(ValueError, match=r"model\.22\.cv3\.0\.2: recovered tensors do not fit"):
        transplant_weights(detection_model, weights, is_strict=True)
