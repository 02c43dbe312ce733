"""Set a model's input size free, so a 16:9 camera runs at 320x256 instead of the padded 320x320 square.

anjian's export pins the input of its ONNX files to the training square (:func:`stamp_onnx`), and
the int8 IR exported from torch bakes the detect head's anchor grid for that square into two
constants. A CCTV frame letterboxed into the square is 44% grey padding that the model computes
like picture. With the input free, the detector pads each batch only to what its frames need
plus one stride of grey on each side they do not fill (``minimal_padding``, ``letterbox_shape``):
the same scale, the same weights, the square's accuracy, a fifth fewer pixels for 16:9.

- :func:`free_onnx_input` clears the input's height and width (ultralytics' dynamic export
  computes its anchors from the feature maps' shapes, so the graph runs at any stride multiple);
- :func:`free_ir_input` replaces the IR's baked anchor and stride constants with the same grid
  computed from the input's shape.

Each checks its result against the source at the square (the IR to the last bit) and that it runs
at a 16:9 shape; :mod:`anjian.training.free_input_version` registers the pair as a new version.
Needs the ``train`` extra (onnx) and OpenVINO.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anjian.models.preprocess import letterbox_shape
from anjian.training.export import free_input_dims

__all__ = [
    "DETECT_STRIDES",
    "FreeInputError",
    "anchor_grid",
    "free_ir_input",
    "free_onnx_input",
    "has_free_input",
    "wide_input_hw",
]

DETECT_STRIDES: tuple[int, ...] = (8, 16, 32)
"""Feature strides of the YOLOv8 detect head's three levels, finest first."""


class FreeInputError(ValueError):
    """The model cannot run at another input size (its graph fixes the shape), or the freed copy differs."""


def anchor_grid(
    input_hw: tuple[int, int], strides: Sequence[int] = DETECT_STRIDES
) -> tuple[np.ndarray, np.ndarray]:
    """The detect head's anchor centres ``(2, A)`` (x then y, in cells) and strides ``(A,)`` for an input size.

    As ultralytics' ``make_anchors``: per level, row by row, each cell's centre ``(x + 0.5, y + 0.5)``.
    """
    centres, steps = [], []
    for stride in strides:
        h, w = input_hw[0] // stride, input_hw[1] // stride
        ys, xs = np.meshgrid(
            np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5, indexing="ij"
        )
        centres.append(np.stack([xs.ravel(), ys.ravel()]))
        steps.append(np.full(h * w, stride, dtype=np.float32))
    return np.concatenate(centres, axis=1), np.concatenate(steps)


def has_free_input(onnx: Path) -> bool:
    """Whether the ONNX file's input height and width are free (named axes rather than sizes)."""
    import onnx as onnx_lib

    dims = onnx_lib.load(str(onnx), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return not (dims[2].dim_value or dims[3].dim_value)


_WIDE_WH = (1920, 1080)
"""A 16:9 frame: the shape the freed files are tried at (what most CCTV streams send)."""


def wide_input_hw(input_hw: tuple[int, int], stride: int = max(DETECT_STRIDES)) -> tuple[int, int]:
    """The input a freed model gets for a 16:9 frame (320x320 → 256x320), as the detector letterboxes it."""
    return letterbox_shape([_WIDE_WH], input_hw, stride)


def free_onnx_input(src: Path, dst: Path, *, input_hw: tuple[int, int], stride: int = 32) -> Path:
    """Write ``src`` with its input height and width (and the output's anchor axis) left free.

    Raises:
        FreeInputError: The graph does not run at a 16:9 shape (its anchors are fixed), or the
            freed file's outputs at the square differ from the source's.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(src))
    free_input_dims(model)
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))

    square = np.random.default_rng(0).random((1, 3, *input_hw), dtype=np.float32)
    before = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    name = after.get_inputs()[0].name
    if not np.allclose(before.run(None, {name: square})[0], after.run(None, {name: square})[0], atol=1e-4):
        raise FreeInputError(f"{dst}: the freed model's outputs at {input_hw} differ from {src}'s")
    rect_hw = wide_input_hw(input_hw, stride)
    try:
        out = after.run(None, {name: square[:, :, : rect_hw[0], : rect_hw[1]].copy()})[0]
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises untyped errors
        raise FreeInputError(
            f"{src} cannot run at {rect_hw[0]}x{rect_hw[1]}: its graph fixes the input size "
            f"(export it from the weights with dynamic axes): {' '.join(str(exc).split())[:200]}"
        ) from None
    if out.shape[2] != anchor_grid(rect_hw)[1].size:
        raise FreeInputError(
            f"{dst}: {out.shape[2]} anchors at {rect_hw}, expected {anchor_grid(rect_hw)[1].size}"
        )
    return dst


def _constant_with(model: Any, values: np.ndarray) -> Any:
    """The one Constant node of ``model`` holding ``values`` (any leading 1-axes); error if none or several."""
    found = [
        node
        for node in model.get_ops()
        if node.get_type_name() == "Constant"
        and node.output(0).get_partial_shape().is_static
        and int(np.prod(node.output(0).get_shape())) == values.size
        and node.get_element_type().is_real()
        and np.array_equal(node.get_data().reshape(values.shape), values)
    ]
    if len(found) != 1:
        raise FreeInputError(
            f"expected one constant holding the detect head's {values.shape} grid, found {len(found)}: "
            "its input is free already, or it is not a YOLOv8 detect head exported at that size"
        )
    return found[0]


def _grid_from_input(parameter: Any, strides: Sequence[int]) -> tuple[Any, Any]:
    """OpenVINO nodes computing :func:`anchor_grid` from the input's height and width: ``(1, 2, A)`` and ``(1, 1, A)``."""
    import openvino.opset13 as ops

    def scalar(value: int) -> Any:
        return ops.constant(np.int64(value))

    shape = ops.shape_of(parameter, "i64")
    height = ops.gather(shape, ops.constant([2], np.int64), scalar(0))
    width = ops.gather(shape, ops.constant([3], np.int64), scalar(0))
    centres, steps = [], []
    for stride in strides:
        h = ops.divide(height, ops.constant([stride], np.int64))  # the input is a stride multiple
        w = ops.divide(width, ops.constant([stride], np.int64))
        xs = ops.range(scalar(0), ops.squeeze(w, scalar(0)), scalar(1), "f32")
        ys = ops.range(scalar(0), ops.squeeze(h, scalar(0)), scalar(1), "f32")
        half = ops.constant(np.float32(0.5))
        hw = ops.concat([h, w], 0)
        grid_x = ops.broadcast(ops.unsqueeze(ops.add(xs, half), scalar(0)), hw)
        grid_y = ops.broadcast(ops.unsqueeze(ops.add(ys, half), scalar(1)), hw)
        row = ops.constant([1, -1], np.int64)
        centres.append(ops.concat([ops.reshape(grid_x, row, False), ops.reshape(grid_y, row, False)], 0))
        steps.append(ops.broadcast(ops.constant(np.float32(stride)), ops.multiply(h, w)))
    anchors = ops.unsqueeze(ops.concat(centres, 1), scalar(0))
    stride_row = ops.reshape(ops.concat(steps, 0), ops.constant([1, 1, -1], np.int64), False)
    return anchors, stride_row


def free_ir_input(
    src_xml: Path, dst_xml: Path, *, input_hw: tuple[int, int], strides: Sequence[int] = DETECT_STRIDES
) -> Path:
    """Write the IR ``src_xml`` with its input size free: the anchor grid computed from the input's shape.

    Raises:
        FreeInputError: The IR lacks the baked grid of ``input_hw`` (another head, or another size),
            or the freed IR's outputs at the square are not exactly the source's.
    """
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(src_xml))
    centres, steps = anchor_grid(input_hw, strides)
    baked_anchors = _constant_with(model, centres)
    baked_strides = _constant_with(model, steps)
    anchors, stride_row = _grid_from_input(model.get_parameters()[0], strides)
    for baked, computed in ((baked_anchors, anchors), (baked_strides, stride_row)):
        for target in list(baked.output(0).get_target_inputs()):
            target.replace_source_output(computed.output(0))
    model.reshape({model.inputs[0]: ov.PartialShape([-1, 3, -1, -1])})
    model.validate_nodes_and_infer_types()
    dst_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(dst_xml), compress_to_fp16=False)

    square = np.random.default_rng(0).random((2, 3, *input_hw), dtype=np.float32)
    before = core.compile_model(core.read_model(str(src_xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    after = core.compile_model(core.read_model(str(dst_xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    if not np.array_equal(before(square)[0], after(square)[0]):
        raise FreeInputError(f"{dst_xml}: the freed IR's outputs at {input_hw} differ from {src_xml}'s")
    rect_hw = wide_input_hw(input_hw, max(strides))
    out = after(square[:, :, : rect_hw[0], : rect_hw[1]].copy())[0]
    if out.shape[2] != anchor_grid(rect_hw, strides)[1].size:
        raise FreeInputError(f"{dst_xml}: {out.shape[2]} anchors at {rect_hw}")
    return dst_xml
