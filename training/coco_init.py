"""Recover float YOLOv8n weights from the COCO int8 ONNX file, as a trainable ultralytics model.

The only COCO-pretrained detector available offline is an int8 ONNX export of
ultralytics' YOLOv8n (``coco_yolov8n_int8.onnx``; see ``../shared/data/README.md``).
Every quantised convolution keeps three initialisers named after the *fused*
ultralytics module path: ``model.N....conv.weight_quantized`` (uint8), ``..._scale``
and ``..._zero_point``; biases stay float. The float weight is
``(quantized - zero_point) * scale``, and it fits ``YOLO("yolov8n.yaml")`` once conv
and batch-norm are folded. To keep the model trainable this module *unfolds* it
instead: each batch-norm becomes the identity (weight 1, running mean 0, running
variance ``1 - eps`` so that ``sqrt(var + eps) == 1`` exactly) plus the fused bias.

ultralytics and onnx are imported inside the functions: they are the ``train`` extra.
A model trained from these weights inherits their AGPL-3.0 licence and must credit them.

Example:
    >>> yolo = recover_yolov8n_from_int8(Path("coco_yolov8n_int8.onnx"))
    >>> save_recovered_checkpoint(Path("coco_yolov8n_int8.onnx"), Path("yolov8n_coco.pt"))
"""

from __future__ import annotations

import ast
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "load_float_onnx_weights",
    "load_int8_float_weights",
    "recover_yolov8n_from_int8",
    "save_recovered_checkpoint",
    "transplant_weights",
]

logger = logging.getLogger(__name__)

_QUANTIZED = ".weight_quantized"


def load_int8_float_weights(onnx_path: Path) -> tuple[dict[str, np.ndarray], dict[int, str]]:
    """Dequantise the convolution weights of an int8 YOLO ONNX file.

    Args:
        onnx_path: The int8 ONNX file (ONNX Runtime dynamic quantisation of an ultralytics export).

    Returns:
        ``{fused module path + ".weight"/".bias": float32 array}`` and the class names
        from the file's metadata.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file holds no quantised weights or no class names.
    """
    import onnx
    from onnx import numpy_helper

    if not onnx_path.is_file():
        raise FileNotFoundError(f"int8 model not found: {onnx_path}")
    model = onnx.load(str(onnx_path))
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    weights: dict[str, np.ndarray] = {}
    for name, quantized in arrays.items():
        if not name.endswith(_QUANTIZED):
            continue
        base = name.removesuffix("_quantized")
        scale = arrays[f"{base}_scale"].astype(np.float32)
        zero_point = arrays[f"{base}_zero_point"].astype(np.float32)
        if scale.ndim == 1:  # per-channel along the output axis
            scale = scale.reshape(-1, *([1] * (quantized.ndim - 1)))
            zero_point = zero_point.reshape(-1, *([1] * (quantized.ndim - 1)))
        weights[base] = (quantized.astype(np.float32) - zero_point) * scale
    for name, array in arrays.items():
        if name.startswith("model.") and name.endswith(".bias"):
            weights[name] = array.astype(np.float32)
    if not weights:
        raise ValueError(f"{onnx_path}: no '*{_QUANTIZED}' initialisers; is it an int8 ultralytics export?")
    props = {p.key: p.value for p in model.metadata_props}
    if "names" not in props:
        raise ValueError(f"{onnx_path}: no 'names' metadata")
    names = ast.literal_eval(props["names"])
    return weights, {int(k): str(v) for k, v in names.items()}


def recover_yolov8n_from_int8(onnx_path: Path) -> Any:
    """Build an unfused, trainable ``ultralytics.YOLO`` YOLOv8n carrying the file's float weights.

    Args:
        onnx_path: The int8 COCO YOLOv8n ONNX file.

    Returns:
        An ``ultralytics.YOLO`` model (80 COCO classes, names set) whose predictions match
        the int8 file's up to quantisation error.

    Raises:
        ValueError: A recovered tensor has no place in YOLOv8n, or one is missing.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO  # type: ignore[attr-defined]

    weights, names = load_int8_float_weights(onnx_path)
    yolo: Any = YOLO("yolov8n.yaml", task="detect")
    net: Any = yolo.model
    used = transplant_weights(net, weights)
    unused = sorted(set(weights) - used - {k for k in weights if ".dfl." in k})
    if unused:
        raise ValueError(f"recovered tensors with no place in yolov8n: {unused[:5]} ...")
    net.names = names
    yolo.overrides["imgsz"] = 640
    logger.info("recovered %d tensors from %s", len(used), onnx_path.name)
    return yolo


def transplant_weights(net: Any, weights: dict[str, np.ndarray], *, is_strict: bool = True) -> set[str]:
    """Copy fused float conv weights, keyed by ultralytics module path, into an unfused model.

    Each ``Conv`` (conv + batch-norm) takes the fused weight and bias with its batch-norm
    made the identity (see the module docstring); each bare ``Conv2d`` (the head's outputs)
    takes its weight and bias.

    Args:
        net: The ``ultralytics`` ``DetectionModel`` to fill.
        weights: Float tensors named ``model.N....conv.weight`` / ``.bias`` (an export's
            initialisers, or the dequantised int8 ones).
        is_strict: Raise on a tensor whose shape does not fit its module; otherwise leave
            that module as initialised (a head re-sized for other classes).

    Returns:
        The names of the tensors copied.

    Raises:
        ValueError: With ``is_strict``, a tensor that does not fit its module.
    """
    import torch
    from ultralytics.nn.modules import Conv

    used: set[str] = set()
    with torch.no_grad():
        for path, module in dict(net.named_modules()).items():
            if isinstance(module, Conv) and f"{path}.conv.weight" in weights:
                weight, bias = weights[f"{path}.conv.weight"], weights.get(f"{path}.conv.bias")
                if bias is None or tuple(module.conv.weight.shape) != weight.shape:
                    if is_strict:
                        raise ValueError(
                            f"{path}: recovered tensors do not fit {tuple(module.conv.weight.shape)}"
                        )
                    continue
                module.conv.weight.copy_(torch.from_numpy(weight))
                bn: Any = module.bn
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(bias))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                used.update({f"{path}.conv.weight", f"{path}.conv.bias"})
            elif (
                isinstance(module, torch.nn.Conv2d)
                and f"{path}.weight" in weights
                and f"{path}.weight" not in used  # the inner conv of a Conv handled above
                and ".dfl." not in path
            ):
                weight, bias = weights[f"{path}.weight"], weights.get(f"{path}.bias")
                if bias is None or tuple(module.weight.shape) != weight.shape or module.bias is None:
                    if is_strict:
                        raise ValueError(f"{path}: recovered tensors do not fit {tuple(module.weight.shape)}")
                    continue
                module.weight.copy_(torch.from_numpy(weight))
                module.bias.copy_(torch.from_numpy(bias))
                used.update({f"{path}.weight", f"{path}.bias"})
    return used


def load_float_onnx_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """The float initialisers of an ultralytics ONNX export, by module path (``model.0.conv.weight``)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    return {
        init.name: numpy_helper.to_array(init).astype(np.float32)
        for init in graph.initializer
        if init.name.startswith("model.") and init.data_type == onnx.TensorProto.FLOAT
    }


def save_recovered_checkpoint(onnx_path: Path, pt_path: Path) -> Path:
    """Recover the float model and save it as an ultralytics ``.pt`` checkpoint.

    The checkpoint loads with ``YOLO(pt_path)`` for ``predict``, ``export`` and ``train``.

    Returns:
        ``pt_path``.
    """
    yolo = recover_yolov8n_from_int8(onnx_path)
    pt_path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(pt_path))
    return pt_path
