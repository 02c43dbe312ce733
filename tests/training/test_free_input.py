"""A model's input size set free: the same outputs at the square, 16:9 frames at 320x256, refusals by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from anjian.models.config import DetectorConfig
from anjian.models.errors import ModelLoadError
from anjian.models.int8_ir import INT8_BIN, INT8_XML, Int8Files
from anjian.models.registry import SHIPPED_DIR, SITE_VERSION_START
from anjian.training.free_input import FreeInputError, anchor_grid, free_ir_input, free_onnx_input
from tests.support.real_data import copy_yolo_sample, require_shared_data

pytest.importorskip("onnx", reason="freeing a model's input needs the train extra (onnx)")

_SQUARE = SHIPPED_DIR / "anjian-n" / "2"
_FREE = SHIPPED_DIR / "anjian-n" / "5"


def _compiled(path: Path) -> Any:
    """An OpenVINO CompiledModel of the file, fp32 arithmetic."""
    import openvino as ov

    core = ov.Core()
    return core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def test_anchor_grid_counts_cells_row_by_row_finest_level_first() -> None:
    centres, strides = anchor_grid((64, 96))
    assert centres.shape == (2, 8 * 12 + 4 * 6 + 2 * 3) and strides.shape == (centres.shape[1],)
    assert centres[:, :3].T.tolist() == [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5]]  # x runs fastest
    assert centres[:, 12].tolist() == [0.5, 1.5]  # second row of the stride-8 level
    assert strides[:96].tolist() == [8.0] * 96 and strides[-6:].tolist() == [32.0] * 6


def test_a_freed_int8_ir_gives_the_square_outputs_bit_for_bit_and_runs_a_16_9_input(tmp_path: Path) -> None:
    freed = free_ir_input(_SQUARE / INT8_XML, tmp_path / INT8_XML, input_hw=(320, 320))
    images = np.random.default_rng(3).random((2, 3, 320, 320), dtype=np.float32)

    square_out = _compiled(_SQUARE / INT8_XML)(images)[0]
    freed_model = _compiled(freed)
    np.testing.assert_array_equal(freed_model(images)[0], square_out)
    wide = freed_model(images[:, :, :192].copy())[0]
    assert wide.shape == (2, 11, 40 * 24 + 20 * 12 + 10 * 6)
    # the boxes of the wide input lie inside it: the anchor grid is the wide input's, not the square's
    assert wide[:, 1].max() < 192 + 16 and wide[:, 0].max() < 320 + 16


def test_an_ir_without_the_grid_of_the_given_size_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(FreeInputError, match="expected one constant holding the detect head's"):
        free_ir_input(_SQUARE / INT8_XML, tmp_path / INT8_XML, input_hw=(256, 256))


def test_a_freed_onnx_gives_the_square_outputs_and_runs_a_16_9_input(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    freed = free_onnx_input(_SQUARE / "model.onnx", tmp_path / "model.onnx", input_hw=(320, 320))

    dims = onnx.load(str(freed)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    session = ort.InferenceSession(str(freed), providers=["CPUExecutionProvider"])
    wide = np.random.default_rng(0).random((1, 3, 192, 320), dtype=np.float32)
    assert session.run(None, {"images": wide})[0].shape == (1, 11, 1260)


def test_an_onnx_whose_graph_fixes_its_size_is_refused_by_name(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    fixed_shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, 3, 320 * 320])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["images", "shape"], ["output0"])],
        "fixed",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 320, 320])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 3, 320 * 320])],
        initializer=[fixed_shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "fixed.onnx"))

    with pytest.raises(FreeInputError, match="cannot run at 256x320: its graph fixes the input size"):
        free_onnx_input(tmp_path / "fixed.onnx", tmp_path / "out.onnx", input_hw=(320, 320))


def test_a_fixed_int8_ir_beside_a_free_onnx_is_refused_when_loaded() -> None:
    from anjian.models.loader import load_openvino_candidate

    fixed = Int8Files(_SQUARE / INT8_XML, _SQUARE / INT8_BIN, {})
    with pytest.raises(ModelLoadError, match=r"model.int8.xml: input shape \[\?,3,320,320\] does not fit"):
        load_openvino_candidate(_FREE / "model.onnx", DetectorConfig(cpu_precision="fp32"), int8=fixed)


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_the_shipped_free_version_runs_16_9_frames_at_320x256_and_finds_what_the_square_one_does(
    precision: str,
) -> None:
    import av

    from anjian.models.boxes import box_iou_batch
    from anjian.models.loader import load_detector

    video = require_shared_data("videos", "people_one_by_one.mp4")
    config = DetectorConfig(cpu_precision=precision, confidence_threshold=0.25)
    square, free = load_detector("builtin:anjian-n/2", config), load_detector("builtin:anjian-n/5", config)
    with av.open(str(video)) as container:
        frames = [
            f.to_ndarray(format="bgr24") for i, f in zip(range(200), container.decode(video=0)) if i % 5 == 0
        ]

    assert free.input_hw_for((768, 432)) == (256, 320) and square.input_hw_for((768, 432)) == (320, 320)
    found = matched = 0
    for start in range(0, len(frames), 4):
        for a, b in zip(
            square.detect(frames[start : start + 4]), free.detect(frames[start : start + 4]), strict=True
        ):
            found += len(a.xyxy)
            if len(a.xyxy) and len(b.xyxy):
                iou = box_iou_batch(a.xyxy, b.xyxy)
                same_class = a.class_id[:, None] == b.class_id[None, :]
                matched += int(((iou >= 0.8) & same_class).any(axis=1).sum())
    assert found >= 20, "too few people found to compare"
    assert matched >= 0.95 * found, (matched, found)


def _stretched_to_16_9(data_yaml: Path, out: Path) -> Path:
    """The sample's images stretched to 16:9 (YOLO labels are normalised: they hold), as a set of its own."""
    import cv2

    for image in (data_yaml.parent / "images").rglob("*.jpg"):
        target = out / image.relative_to(data_yaml.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        picture = cv2.imread(str(image))
        cv2.imwrite(str(target), cv2.resize(picture, (picture.shape[1] * 16 // 9, picture.shape[1])))
    shutil.copytree(data_yaml.parent / "labels", out / "labels")
    (out / "data.yaml").write_text(data_yaml.read_text())
    return out / "data.yaml"


def test_models_free_input_registers_a_scored_site_version_with_the_input_free(tmp_path: Path) -> None:
    import onnx

    from anjian.models.loader import load_detector
    from anjian.service.cli import app

    data = copy_yolo_sample("forklift_person", tmp_path / "forklift_person", per_split=6)
    wide = _stretched_to_16_9(data, tmp_path / "wide")
    site = tmp_path / "site"

    result = CliRunner().invoke(
        app,
        ["models", "free-input", "anjian-n", "2", "--data", str(data), "--cross-data", str(wide)]
        + ["--registry", str(site)],
    )

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    version = str(SITE_VERSION_START)
    folder = site / "anjian-n" / version
    assert f"anjian-n/{version}: anjian-n/2 with its input size free" in output
    assert "Every scored image is square" not in output
    model = onnx.load(str(folder / "model.onnx"))
    assert {p.key: p.value for p in model.metadata_props}["version"] == f"anjian-n-{version}"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["free_input"]["from"] == "2" and set(meta["free_input"]["map50"]) == {
        "forklift_person",
        "wide",
    }
    # the square sample ran at the square both times; the 16:9 one at 320x256 once
    square_run = meta["free_input"]["map50"]["forklift_person"]
    assert square_run["fp32_square"] == square_run["fp32_free"]
    card = (folder / "card.md").read_text()
    assert card.startswith(f"# anjian-n {version}\n") and "## Input size" in card
    assert "| forklift_person | 6 | 1.00 |" in card and "| wide | 12 | 1.78 |" in card
    # the int8 model keeps "accepted" only with its files, judged at the free shapes
    record = meta["int8"]
    assert record["onnx_sha256"] != json.loads((_SQUARE / "meta.json").read_text())["int8"]["onnx_sha256"]
    assert (folder / INT8_XML).is_file() == (record["status"] == "accepted") == ("xml_sha256" in record)
    detector = load_detector(
        f"builtin:anjian-n/{version}", DetectorConfig(registry=str(site), cpu_precision="fp32")
    )
    assert detector.input_hw_for((1920, 1080)) == (256, 320)


def test_models_free_input_warns_when_every_scored_image_is_square(tmp_path: Path) -> None:
    from anjian.service.cli import app

    data = copy_yolo_sample("forklift_person", tmp_path / "forklift_person", per_split=3)
    result = CliRunner().invoke(
        app,
        ["models", "free-input", "anjian-n", "2", "--data", str(data), "--registry", str(tmp_path / "site")],
    )

    assert result.exit_code == 0, result.output
    assert "warning: Every scored image is square" in " ".join(result.output.split())
    card = (tmp_path / "site" / "anjian-n" / str(SITE_VERSION_START) / "card.md").read_text()
    assert "**Every scored image is square" in card
