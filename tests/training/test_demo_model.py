"""A tiny real training run of the demo detector: it must export a loadable, labelled ONNX."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ultralytics")
onnxruntime = pytest.importorskip("onnxruntime")

from anjian.datasets.synthetic import CLASS_NAMES
from anjian.training import demo_model
from anjian.training.demo_model import DemoModelMeta, DemoRecipe, train_demo_model


@pytest.fixture
def offline_ultralytics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the offline variables train_demo_model sets, so they are restored afterwards."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_AUTOINSTALL", "false")
    if "YOLO_CONFIG_DIR" not in os.environ:
        monkeypatch.setenv("YOLO_CONFIG_DIR", str(Path.home() / ".cache" / "anjian"))


@pytest.mark.slow
@pytest.mark.usefixtures("offline_ultralytics")
def test_tiny_training_run_exports_labelled_onnx(tmp_path: Path) -> None:
    out = tmp_path / "registry" / "anjian-demo" / "7"
    recipe = DemoRecipe(images=16, epochs=1, imgsz=64, batch=8, render_size_wh=(128, 72))

    onnx_path = train_demo_model(out, recipe, version="7", work_dir=tmp_path / "work")

    assert onnx_path == out / "model.onnx"
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert ast.literal_eval(props["names"]) == dict(enumerate(CLASS_NAMES))
    assert ast.literal_eval(props["imgsz"]) == [64, 64]
    assert props["task"] == "detect"
    assert props["version"] == "anjian-demo-7"
    assert props["anjian_model"] == "anjian-demo"
    [output] = session.run(None, {"images": np.zeros((2, 3, 64, 64), np.float32)})
    assert output.shape == (
        2,
        4 + len(CLASS_NAMES),
        64 + 16 + 4,
    )  # (batch, 4 + nc, anchors at strides 8, 16, 32)

    meta = DemoModelMeta.model_validate_json((out / "meta.json").read_text())
    assert meta.classes == CLASS_NAMES
    assert meta.imgsz == 64
    assert meta.version == "7"
    card = (out / "card.md").read_text()
    assert "not for real sites" in card
    assert "mAP50" in card


def test_main_trains_the_recipe_its_flags_name_with_the_other_settings_left_at_their_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Path, DemoRecipe, str, Path | None]] = []

    def fake_train(out: Path, recipe: DemoRecipe, *, version: str, work_dir: Path | None) -> Path:
        calls.append((out, recipe, version, work_dir))
        return out / "model.onnx"

    monkeypatch.setattr(demo_model, "train_demo_model", fake_train)
    out = tmp_path / "anjian-demo" / "4"

    assert (
        demo_model.main(["--out", str(out), "--epochs", "3", "--width", "0.25", "--init-from", "a/b.onnx"])
        == 0
    )
    assert demo_model.main(["--out", str(out), "--version", "9", "--work-dir", str(tmp_path)]) == 0

    assert calls == [
        (out, DemoRecipe(epochs=3, width_multiple=0.25, init_from="a/b.onnx"), "4", None),
        (out, DemoRecipe(), "9", tmp_path),
    ]
