"""Quantisation-aware int8: the registered file rebuilt in torch, fine-tuned with its quantisers, judged by the gate.

Real NNCF (torch backend) and ultralytics on anjian-n 1 and a sample of the real fire_smoke_cctv set;
slow (a minute), skips without the train extra or the data.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from anjian.models.config import DetectorConfig
from anjian.models.int8_ir import accepted_int8
from anjian.models.loader import load_detector
from anjian.models.registry import read_meta, register_version, resolve_model_path
from anjian.training.qat import QatRecipe, recover_onnx_model
from anjian.training.quantize import FLOAT_LADDER, quantize_and_record, quantize_registered
from tests.support.real_data import copy_yolo_sample

pytest.importorskip("nncf", reason="nncf (the train extra) quantises")
pytest.importorskip("ultralytics", reason="ultralytics (the train extra) fine-tunes")
pytestmark = pytest.mark.slow

ANJIAN_CLASSES = ["person", "fallen_person", "fire", "smoke", "cigarette", "pallet", "forklift"]
QAT = next(scope for scope in FLOAT_LADDER if scope.is_quantisation_aware)


def _in_anjian_classes(data_yaml: Path) -> Path:
    """The fire_smoke_cctv sample relabelled into anjian-n's class ids (Fire -> fire, smoke -> smoke, default dropped)."""
    folder = data_yaml.parent
    ids = {0: 2, 2: 3}  # Fire, smoke; 1 (default) is dropped
    for label in folder.glob("labels/*/*.txt"):
        rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
        label.write_text("".join(f"{ids[int(r[0])]} {' '.join(r[1:])}\n" for r in rows if int(r[0]) in ids))
    out = folder / "anjian.yaml"
    out.write_text(f"path: {folder}\ntrain: images/train\nval: images/val\nnc: 7\nnames: {ANJIAN_CLASSES}\n")
    return out


def test_the_registered_file_is_rebuilt_as_a_trainable_model() -> None:
    """anjian-n 1 was fine-tuned from COCO: its class branch keeps COCO's width, and the rebuild reproduces it."""
    model = recover_onnx_model(resolve_model_path("builtin:anjian-n/1"))
    assert list(model.names.values()) == ANJIAN_CLASSES
    assert model.model[-1].cv3[0][0].conv.out_channels == 80
    assert any(p.requires_grad for p in model.parameters())


def test_a_file_that_is_not_a_yolov8_export_is_refused_by_name(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "not-yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 32, 32])],
    )
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ValueError, match=r"identity\.onnx: not an ultralytics YOLOv8 export"):
        recover_onnx_model(path)


def test_a_recipe_with_nothing_to_do_is_refused() -> None:
    with pytest.raises(ValueError, match="positive number of epochs"):
        QatRecipe(Path("data.yaml"), epochs=0)
    with pytest.raises(ValueError, match="positive learning rate"):
        QatRecipe(Path("data.yaml"), lr=0)


def test_the_qat_try_alone_needs_the_training_set(tmp_path: Path) -> None:
    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=2)
    from anjian.training.quantize import load_sources

    with pytest.raises(ValueError, match="only the QAT try, without --qat-data"):
        quantize_registered(resolve_model_path("builtin:anjian-n/1"), load_sources([data]), ladder=(QAT,))


def test_a_quantisation_aware_int8_model_is_judged_recorded_and_run(tmp_path: Path) -> None:
    """Fine-tuned a few steps on a real sample, the int8 IR passes a loose gate, is recorded as QAT and runs on CPUs."""
    registry = tmp_path / "registry"
    # a file with its input size free: the IR must take what it takes
    register_version("demo-q", resolve_model_path("builtin:anjian-n/5"), {}, "# demo-q 1\n", root=registry)
    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire_smoke_cctv", per_split=16)
    class_map = tmp_path / "map.yaml"
    class_map.write_text(f"classes: {ANJIAN_CLASSES}\nmap: {{Fire: fire, default: null}}\n")
    training_set = _in_anjian_classes(copy_yolo_sample("fire_smoke_cctv", tmp_path / "train", per_split=16))
    lines: list[str] = []
    record = quantize_and_record(
        "demo-q",
        "1",
        [data],
        class_map=class_map,
        root=registry,
        calibration_count=16,
        ladder=(QAT,),
        qat=QatRecipe(training_set, epochs=1, lr=1e-5, batch=8),
        max_source_drop=0.25,
        report=lines.append,
    )
    folder = registry / "demo-q" / "1"
    assert record["status"] == "accepted" and record["float_scope"]["name"] == "qat"
    assert record["qat"] == {
        "data": str(training_set),
        "epochs": 1.0,
        "lr": 1e-5,
        "batch": 8,
        "seed": 0,
        "is_source_balanced": False,
    }
    assert "quantisation-aware" in record["method"]
    assert any(line.startswith("QAT: 2 steps of 8 images") for line in lines)
    card = (folder / "card.md").read_text()
    assert "Quantisation-aware: after calibration the model was fine-tuned" in card
    assert read_meta(folder)["int8"]["qat"]["epochs"] == 1.0

    onnx_path = folder / "model.onnx"
    assert accepted_int8(onnx_path) is not None
    config = DetectorConfig(registry=registry, device="cpu", backend="openvino", cpu_precision="int8")
    int8 = load_detector("builtin:demo-q/1", config)
    fp32 = load_detector("builtin:demo-q/1", config.model_copy(update={"cpu_precision": "fp32"}))
    assert int8.precision == "int8"  # type: ignore[attr-defined]
    image = cv2.imread(str(next((data.parent / "images" / "val").iterdir())))
    [a], [b] = int8.detect([image]), fp32.detect([image])
    assert len(a) > 0 and abs(len(a) - len(b)) <= max(2, len(b) // 3)
    assert np.isfinite(a.confidence).all() and a.confidence.max() <= 1.0
    assert "QAT: the IR's anchor grid follows its input's shape, like the registered file's" in lines
    wide = image[: image.shape[0] * 9 // 16]  # a 16:9 band of the picture: 320x256 in, not the square
    assert int8.input_hw_for((wide.shape[1], wide.shape[0])) == (256, 320)  # type: ignore[attr-defined]
    [c], [d] = int8.detect([wide]), fp32.detect([wide])
    assert abs(len(c) - len(d)) <= max(2, len(d) // 3)
