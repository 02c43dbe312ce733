"""Export trained weights to the ONNX files the pipeline runs (fp32, fp16; TensorRT on a GPU).

:func:`export_onnx` exports an ultralytics ``.pt`` with a dynamic batch axis and the
square input size fixed, no NMS in the graph, and writes anjian's metadata next to
ultralytics' (``names``, ``imgsz``, ``stride`` ...): ``anjian_model`` (the name events
carry), ``version``, a description and, when calibrated, ``anjian_thresholds`` (each
class's operating score, see ``anjian.training.thresholds``). :func:`to_fp16` converts an fp32 export to
float16 (inputs and outputs included; the pipeline's ONNX backend feeds float16 when a
model asks for it). :func:`export_tensorrt` builds a TensorRT engine, only where an NVIDIA
GPU is present; elsewhere it returns ``None``.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anjian.training.ultralytics_env import offline_ultralytics

__all__ = ["ONNX_OPSET", "export_onnx", "export_tensorrt", "free_input_dims", "stamp_onnx", "to_fp16"]

logger = logging.getLogger(__name__)

ONNX_OPSET = 17


def free_input_dims(model: Any) -> None:
    """Declare an ONNX model's input height and width, and its output's anchor axis, free (named axes).

    Only the declaration changes: the graph must compute its anchors from its input's shape
    (ultralytics' dynamic export does) to run at other sizes.
    """
    dims = model.graph.input[0].type.tensor_type.shape.dim
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    for dim, axis in ((dims[2], "height"), (dims[3], "width"), (out_dims[2], "anchors")):
        dim.dim_param = axis  # replaces a size: the two share one field


def stamp_onnx(
    src: Path,
    dst: Path,
    *,
    imgsz: int,
    name: str,
    version: str,
    description: str,
    thresholds: Mapping[str, float] | None = None,
    free_input: bool = False,
) -> Path:
    """Declare the input size (fixed at the square, or free), add anjian's metadata, check and save.

    ultralytics' dynamic export computes the detect head's anchors from the feature maps' shapes,
    so the graph runs at any multiple of the stride: left free, the detector pads each batch only
    to what its frames need (a 16:9 camera at 320x256, not 320x320; ``minimal_padding``). The
    ``imgsz`` metadata keeps the size the model was trained at, the letterbox's scale. Pinned by
    default: a model trained on square mosaics may score a class worse with less padding
    (anjian-n 2's ``fallen_person`` lost 7 AP50 points on 4:3 UR Fall frames), so freeing it is a
    choice made on non-square data (``anjian models free-input``).

    Args:
        src: An ultralytics ONNX export.
        dst: Where to write the result (may equal ``src``).
        imgsz: Square input size to pin.
        name: Model name (``anjian_model`` metadata; events name the model by it).
        version: Registry version (``version`` metadata becomes ``<name>-<version>``).
        description: One line saying what the model is for.
        thresholds: Calibrated operating score per class name (``anjian_thresholds``).
        free_input: Leave the input's height and width free (named axes) instead of pinning the square.

    Returns:
        ``dst``.

    Raises:
        models.errors.ModelMetadataError: ``thresholds`` names a class the model lacks or a score
            outside ``(0, 1)``.
    """
    import ast

    import onnx

    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    nc = len(ast.literal_eval(props["names"])) if "names" in props else None
    dims = model.graph.input[0].type.tensor_type.shape.dim
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    if nc is not None:
        out_dims[1].dim_value = 4 + nc
    if free_input:
        free_input_dims(model)
    else:
        dims[2].dim_value = imgsz
        dims[3].dim_value = imgsz
        out_dims[2].dim_value = sum((imgsz // s) ** 2 for s in (8, 16, 32))
    props["ultralytics_version"] = props.get("ultralytics_version") or props.get("version", "")
    props["version"] = f"{name}-{version}"
    props["anjian_model"] = name
    props["description"] = description
    props["output_layout"] = (
        "(batch, 4 + nc, anchors): cx, cy, w, h in input pixels, then per-class scores; no NMS"
    )
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    if thresholds:
        from anjian.training.thresholds import stamp_thresholds

        stamp_thresholds(dst, thresholds)
    return dst


def export_onnx(
    weights: Path,
    out: Path,
    *,
    imgsz: int,
    name: str,
    version: str = "0",
    description: str = "",
    thresholds: Mapping[str, float] | None = None,
    free_input: bool = False,
) -> Path:
    """Export ultralytics weights to an fp32 ONNX file with a dynamic batch axis (and a free input size if asked).

    Args:
        weights: An ultralytics ``.pt`` checkpoint.
        out: The ONNX file to write.
        imgsz: Square input size (a multiple of 32).
        name: Model name stamped into the metadata.
        version: Version stamped into the metadata.
        description: One line stamped into the metadata.
        thresholds: Calibrated operating score per class name, stamped into the metadata.
        free_input: Leave the input's height and width free (see :func:`stamp_onnx`).

    Returns:
        ``out``.

    Raises:
        ValueError: ``imgsz`` is not a positive multiple of 32, or ``weights`` is no readable
            ultralytics checkpoint (a folder, a text file, another program's ``.pt``).
    """
    if imgsz < 32 or imgsz % 32:
        raise ValueError(f"imgsz must be a positive multiple of 32, got {imgsz}")
    if not Path(weights).is_file():
        raise ValueError(
            f"{weights}: no such weights file" + (" (it is a folder)" if Path(weights).is_dir() else "")
        )
    offline_ultralytics()
    from ultralytics.models.yolo.model import YOLO

    with tempfile.TemporaryDirectory(prefix="anjian-export-") as tmp:
        local = Path(tmp) / "model.pt"
        local.write_bytes(Path(weights).read_bytes())  # ultralytics writes the export next to the weights
        try:
            model = YOLO(str(local), task="detect")
        except Exception as exc:  # noqa: BLE001 - torch and ultralytics raise many kinds for a bad checkpoint
            reason = next(
                (line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__
            )
            raise ValueError(
                f"{weights}: not a loadable ultralytics checkpoint ({type(exc).__name__}: {reason[:200]})"
            ) from None
        exported = model.export(
            format="onnx",
            imgsz=imgsz,
            opset=ONNX_OPSET,
            dynamic=True,
            simplify=importlib.util.find_spec("onnxslim") is not None,
            nms=False,
            half=False,
            device="cpu",
            verbose=False,
        )
        return stamp_onnx(
            Path(exported),
            Path(out),
            imgsz=imgsz,
            name=name,
            version=version,
            description=description or f"{name} detector",
            thresholds=thresholds,
            free_input=free_input,
        )


def to_fp16(src: Path, dst: Path) -> Path:
    """Convert an fp32 ONNX model to float16, inputs and outputs included.

    Halves the file; GPUs (CUDA, TensorRT) run it at fp16 speed. ONNX Runtime's CPU
    provider runs it too, slower than fp32: ship fp32 for CPU sites.

    Returns:
        ``dst``.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    # Resize takes its roi/scales as float32 whatever the data type: keep their constants in fp32
    resize_inputs = {name for node in model.graph.node if node.op_type == "Resize" for name in node.input[1:]}
    constants = [
        n.name for n in model.graph.node if n.op_type == "Constant" and set(n.output) & resize_inputs
    ]
    half = convert_float_to_float16(
        model, keep_io_types=False, disable_shape_infer=True, node_block_list=constants
    )
    del half.metadata_props[:]
    for key, value in {**props, "precision": "fp16"}.items():
        entry = half.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(half)
    onnx.save(half, str(dst))
    return dst


def export_tensorrt(weights: Path, out: Path, *, imgsz: int, half: bool = True) -> Path | None:
    """Build a TensorRT engine with ultralytics, where an NVIDIA GPU and TensorRT are present.

    Returns:
        ``out``, or ``None`` (logged) when there is no GPU or no TensorRT.
    """
    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("tensorrt") is None:
        logger.info("no NVIDIA GPU or no tensorrt package: TensorRT engine skipped")
        return None
    offline_ultralytics()
    from ultralytics.models.yolo.model import YOLO

    engine = YOLO(str(weights), task="detect").export(
        format="engine", imgsz=imgsz, half=half, dynamic=True, device=0, verbose=False
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(engine).replace(out)
    return Path(out)
