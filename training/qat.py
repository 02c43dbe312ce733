"""Quantisation-aware int8: fine-tune a registered model through NNCF's fake quantisers, export an IR.

Post-training quantisation (:mod:`anjian.training.quantize`) rounds weights and activations that
were trained in float; on some models (anjian-n 1's weights) that costs a few AP50 points on a
small class no choice of fp32 layers wins back. Quantisation-aware training lets the weights, and
the quantisers' ranges, adapt to the rounding instead:

1. **Recover** the registered ``model.onnx`` as a trainable ultralytics model
   (:func:`recover_onnx_model`): its float weights go into a YOLOv8 of the same scale and class
   count, and the recovered model must reproduce the file's outputs.
2. **Insert quantisers**: NNCF post-training quantisation of the torch model, calibrated on the
   same letterboxed images as the post-training tries, the head's decoding (DFL, anchors, box maths,
   output concat) and the first two convolutions left float (:data:`FLOAT_PATTERNS`).
3. **Fine-tune** the quantised copy to give the float model's answers (:func:`distillation_loss`)
   on the images of the set the model was trained on, briefly, at a low learning rate,
   batch-norm frozen (:class:`QatRecipe`). Distilling rather than fitting the labels keeps
   the int8 model close to the float one on every source, a small one too (a label fine-tune
   of anjian-n 1 gained 3.6 AP50 points on fall_hospital and lost 8.3 on pallet).
4. **Export** an OpenVINO IR (``images`` in, ``output0`` out, dynamic batch: the registered file's
   interface) that the quantiser's gate then judges like any other try.

Needs the ``train`` extra (torch, ultralytics, nncf).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from anjian.datasets.labels import ProgressFn, list_images, no_progress
from anjian.models.preprocess import read_letterboxed
from anjian.training.free_input import free_ir_input, has_free_input

__all__ = [
    "DEFAULT_QAT_EPOCHS",
    "DEFAULT_QAT_LR",
    "FLOAT_PATTERNS",
    "QatRecipe",
    "balanced_train_list",
    "distillation_loss",
    "quantize_aware",
    "recover_onnx_model",
]

logger = logging.getLogger(__name__)

FLOAT_PATTERNS: tuple[str, ...] = (r"^dfl/.*", r"^/.*", r"^conv/conv2d/[01]$")
"""NNCF torch node names kept float: the head's decoding and the first two convolutions.

ultralytics runs its modules from a loop, so NNCF names each node after the module chain that
called it below the model: the DFL's nodes start with ``dfl/``, the decoding's (anchors, box maths,
sigmoid, output concat) have no module and start with ``/``, and the stem's two strided
convolutions (``model.0``, ``model.1``) are ``conv/conv2d/0`` and ``1``. Those two see the
image's colour before any other layer (fire is mostly colour) and are under 2% of the arithmetic:
float there moved anjian-n 1's fire_smoke_cctv change from -1.5 to -1.1 points. Keeping the head's
six output convolutions float too (``^2/conv2d/\\d+$``) changed nothing measurable, nor did a
second loss term on the neck's three feature maps (relative squared error, as heavy as the head's
term at the start: fire_smoke_cctv -1.4, pallet -1.5).
"""

DEFAULT_QAT_EPOCHS = 2.0
"""Passes over the train split: anjian-n 1's worst source went -1.7 -> -1.5 points from 1 to 2 (pallet -1.3 -> -0.4)."""

DEFAULT_QAT_LR = 3e-5
"""Peak learning rate (Adam, cosine to zero)."""

_SCALES = {16: "n", 32: "s", 48: "m", 64: "l", 80: "x"}
"""YOLOv8 scale by the first convolution's output channels."""

_MAX_RECOVERY_ERROR = 1e-2
"""Largest output difference (pixels or score) between the file and the recovered model."""


@dataclass(frozen=True, slots=True)
class QatRecipe:
    """How to fine-tune with quantisers in the graph.

    Attributes:
        data: YOLO ``data.yaml`` of the set the model was trained on (its train split fine-tunes);
            the merged set of the anjian-n recipe, for example.
        epochs: Passes over the train split (fractions allowed: 0.5 is half of one).
        lr: Peak learning rate (Adam), decayed to zero along a cosine.
        batch: Images per step.
        seed: Seeds the data order and augmentation.
        is_source_balanced: Repeat the train images of each source with fewer than the mean
            source's count (whole copies, :func:`balanced_train_list`), so that a small source
            (pallet: 7% of anjian-n's images) weighs in the fine-tune about as much as the others
            instead of being fitted least. Needs the merged set's layout, one folder per source
            under the train split.
    """

    data: Path
    epochs: float = DEFAULT_QAT_EPOCHS
    lr: float = DEFAULT_QAT_LR
    batch: int = 16
    seed: int = 0
    is_source_balanced: bool = False

    def __post_init__(self) -> None:
        if not self.epochs > 0:
            raise ValueError(f"QAT needs a positive number of epochs, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"QAT needs a positive learning rate, got {self.lr}")
        if self.batch < 1:
            raise ValueError(f"QAT needs a batch of at least 1, got {self.batch}")

    def describe(self) -> dict[str, Any]:
        """The recipe for ``meta.json``."""
        return {
            "data": str(self.data),
            "epochs": self.epochs,
            "lr": self.lr,
            "batch": self.batch,
            "seed": self.seed,
            "is_source_balanced": self.is_source_balanced,
        }


def recover_onnx_model(onnx: Path) -> Any:
    """A trainable ultralytics ``DetectionModel`` carrying the float weights of an ultralytics YOLOv8 export.

    The scale comes from the first convolution's width, the class count and names from the file's
    metadata, the class branch's width from its weights (a model fine-tuned from COCO keeps COCO's).

    Raises:
        ValueError: The file is not a YOLOv8 detect export this can rebuild, or the rebuilt
            model does not reproduce its outputs.
    """
    from anjian.training.coco_init import load_float_onnx_weights, transplant_weights
    from anjian.training.finetune_init import write_model_yaml
    from anjian.training.ultralytics_env import offline_ultralytics

    offline_ultralytics()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    weights = load_float_onnx_weights(onnx)
    first = weights.get("model.0.conv.weight")
    if first is None or first.shape[0] not in _SCALES:
        raise ValueError(
            f"{onnx}: not an ultralytics YOLOv8 export (no model.0 convolution of a known width)"
        )
    names = _class_names(onnx)
    with tempfile.TemporaryDirectory(prefix="anjian-qat-") as tmp:
        yaml_path = write_model_yaml(Path(tmp) / "model.yaml", len(names), _SCALES[first.shape[0]])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model: Any = DetectionModel(str(yaml_path), nc=len(names), verbose=False)  # type: ignore[no-untyped-call]
    _fit_class_branch(model, weights)
    try:
        transplant_weights(model, weights)
    except ValueError as exc:
        raise ValueError(f"{onnx}: cannot rebuild it as a YOLOv8 ({exc})") from None
    model.names = dict(enumerate(names))
    _check_recovery(onnx, model)
    return model


def _class_names(onnx: Path) -> list[str]:
    """The class names an ultralytics export keeps in its metadata."""
    import ast

    import onnx as onnx_lib

    meta = {p.key: p.value for p in onnx_lib.load(str(onnx), load_external_data=False).metadata_props}
    if "names" not in meta:
        raise ValueError(f"{onnx}: no class names in its metadata (not an ultralytics export)")
    names = ast.literal_eval(meta["names"])
    return [names[k] for k in sorted(names)]


def _fit_class_branch(model: Any, weights: dict[str, np.ndarray]) -> None:
    """Rebuild the head's class branch at the width the file's weights have (COCO's 80 for a fine-tune)."""
    from torch import nn
    from ultralytics.nn.modules import Conv as UntypedConv

    conv: Any = UntypedConv
    head = model.model[-1]
    index = len(model.model) - 1
    width = weights.get(f"model.{index}.cv3.0.0.conv.weight")
    if width is None or width.shape[0] == head.cv3[0][0].conv.out_channels:
        return
    c3 = int(width.shape[0])
    head.cv3 = nn.ModuleList(
        nn.Sequential(conv(branch[0].conv.in_channels, c3, 3), conv(c3, c3, 3), nn.Conv2d(c3, head.nc, 1))
        for branch in head.cv3
    )


def _check_recovery(onnx: Path, model: Any) -> None:
    """Raise unless the recovered model's outputs match the file's on a test pattern."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    height, width = (shape[2], shape[3]) if all(isinstance(d, int) for d in shape[2:]) else (320, 320)
    pattern = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: pattern})[0]
    model.eval()
    with torch.no_grad():
        got = model(torch.from_numpy(pattern))[0].numpy()
    error = float(np.abs(got - expected).max()) if got.shape == expected.shape else math.inf
    if not error <= _MAX_RECOVERY_ERROR:
        raise ValueError(
            f"{onnx}: the rebuilt YOLOv8 does not reproduce the file (largest output difference {error:.3g}); "
            "quantisation-aware training supports ultralytics YOLOv8 detect exports"
        )


def quantize_aware(
    onnx: Path,
    images: Sequence[Path],
    recipe: QatRecipe,
    out_xml: Path,
    *,
    input_hw: tuple[int, int],
    progress: ProgressFn = no_progress,
    report: Callable[[str], None] = logger.info,
) -> Path:
    """Quantisation-aware int8 of ``onnx``: quantisers calibrated on ``images``, fine-tuned per ``recipe``.

    Args:
        onnx: The registered fp32 model (an ultralytics YOLOv8 export).
        images: Calibration images (BGR files), letterboxed as the pipeline does.
        recipe: The fine-tune.
        out_xml: Where to write the IR (``.bin`` beside it).
        input_hw: The model's input size (the largest, where its input size is free).
        progress: Wraps the fine-tune's steps.
        report: Called with a line per step.

    Returns:
        ``out_xml``.

    Raises:
        ValueError: The model cannot be rebuilt, no calibration image can be read, or the
            training set has no train images.
    """
    # NNCF compiles its fake-quantisation kernels on first use (cached per user); on a loaded 2-core box
    # that can pass NNCF's 60 s default, which would fail the try rather than wait.
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "600")
    import nncf
    import torch

    readable = [p for p in images if cv2.imread(str(p)) is not None]
    if not readable:
        raise ValueError("none of the calibration images can be read")

    def to_input(path: Path) -> Any:
        return torch.from_numpy(read_letterboxed(path, input_hw))

    model = recover_onnx_model(onnx)
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        quantized = nncf.quantize(
            model,
            nncf.Dataset(readable, to_input),
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(readable),
            ignored_scope=nncf.IgnoredScope(patterns=list(FLOAT_PATTERNS)),  # each must match: names fixed
        )
        steps = _fine_tune(quantized, recover_onnx_model(onnx), recipe, input_hw, progress)
    report(f"QAT: {steps} steps of {recipe.batch} images at lr {recipe.lr:g} on {recipe.data}'s train split")
    xml = _export_ir(quantized, out_xml, input_hw, to_input(readable[0]), report)
    if has_free_input(onnx):  # the IR takes what the registered file takes
        with tempfile.TemporaryDirectory(prefix="qat-fixed-", dir=out_xml.parent) as fixed:
            shutil.move(xml, Path(fixed) / xml.name)
            shutil.move(xml.with_suffix(".bin"), Path(fixed) / xml.with_suffix(".bin").name)
            free_ir_input(Path(fixed) / xml.name, xml, input_hw=input_hw)
        report("QAT: the IR's anchor grid follows its input's shape, like the registered file's")
    return xml


def _fine_tune(
    model: Any, teacher: Any, recipe: QatRecipe, input_hw: tuple[int, int], progress: ProgressFn
) -> int:
    """Fine-tune ``model`` (quantisers in place) to match ``teacher`` on the train split's images.

    Returns the steps taken. The labels are not used: the goal is the float model's answers,
    not better ones, so a source with few images is not traded for one with many.
    """
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    if not Path(recipe.data).is_file():
        raise ValueError(f"QAT training set {recipe.data}: no such data.yaml")
    cfg: Any = get_cfg(
        overrides={
            "data": str(recipe.data),
            "imgsz": max(input_hw),
            "batch": recipe.batch,
            "mosaic": 0.0,  # as the recipe's last epochs: whole images
            "workers": 0,
            "seed": recipe.seed,
        }
    )
    data = check_det_dataset(str(recipe.data))
    with tempfile.TemporaryDirectory(prefix="anjian-qat-") as scratch:
        train: Any = data["train"]
        if recipe.is_source_balanced:
            repeats = balanced_train_list(Path(str(train)), Path(scratch) / "train.txt")
            logger.info("QAT source-balanced: each source's train images repeated %s", repeats)
            train = str(Path(scratch) / "train.txt")
        dataset: Any = build_yolo_dataset(cfg, train, recipe.batch, data, mode="train", stride=32)
    if len(dataset) == 0:
        raise ValueError(f"QAT training set {recipe.data}: no train images")
    loader = build_dataloader(dataset, recipe.batch, 0, shuffle=True, pin_memory=False, device="cpu")
    steps = max(1, math.ceil(len(loader) * recipe.epochs))
    for net in (model, teacher):
        net.train()  # the head's raw maps (DFL logits, score logits), as in training
        for module in net.modules():  # the recovered batch-norms are identities: keep them so
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
    teacher.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=recipe.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps))
    )
    batches = itertools.islice(itertools.chain.from_iterable(itertools.repeat(loader)), steps)
    for batch in progress(batches, "QAT fine-tune", steps):
        images = batch["img"].float() / 255
        with torch.no_grad():
            target = teacher(images)
        loss = distillation_loss(model(images), target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_norm=10.0)
        optimizer.step()
        schedule.step()
    model.eval()
    return steps


def balanced_train_list(train_dir: Path, out: Path) -> dict[str, int]:
    """Write ``out``, a YOLO image list of ``train_dir`` in which each small source repeats whole.

    A source is a folder under ``train_dir`` (the merged set's layout); one with fewer images than
    the mean source is listed ``round(mean / count)`` times, the others once, so every source weighs
    about as much per epoch. Images right under ``train_dir`` are listed once.

    Returns:
        The repeats per source (``""`` for images outside any source folder).

    Raises:
        ValueError: ``train_dir`` is not a folder or holds no image.
    """
    if not train_dir.is_dir():
        raise ValueError(f"QAT source balance needs the train split as a folder, got {train_dir}")
    by_source: dict[str, list[Path]] = {}
    for image in list_images(train_dir):
        relative = image.relative_to(train_dir)
        by_source.setdefault(relative.parts[0] if len(relative.parts) > 1 else "", []).append(image)
    if not by_source:
        raise ValueError(f"QAT source balance: no images under {train_dir}")
    sources = [images for name, images in by_source.items() if name]
    mean = sum(map(len, sources)) / len(sources) if sources else 0.0
    repeats = {name: max(1, round(mean / len(images))) if name else 1 for name, images in by_source.items()}
    lines = [
        str(image)
        for name, images in sorted(by_source.items())
        for _ in range(repeats[name])
        for image in images
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dict(sorted(repeats.items()))


def distillation_loss(student: dict[str, Any], teacher: dict[str, Any]) -> Any:
    """How far the int8 model's raw head maps are from the float model's, weighted to where it sees objects.

    Scores: binary cross-entropy of the student's logits against the teacher's probabilities.
    Boxes: KL divergence of each side's DFL distribution from the teacher's. Both are averaged
    over anchors weighted by the teacher's score there relative to that class's best in the
    batch (plus a floor, so that background stays background): the handful of anchors that make
    detections are not drowned by the thousands that make none, and a class the model is rarely
    sure of (fire, at AP50 0.4) weighs as much as one it is (person).

    Args:
        student: The quantised model's training-mode head output (``boxes``: ``(B, 4*reg_max, A)``
            logits, ``scores``: ``(B, classes, A)`` logits).
        teacher: The float model's, same shapes.

    Returns:
        A scalar tensor.
    """
    import torch
    import torch.nn.functional as F

    target_scores = teacher["scores"].sigmoid()  # (B, C, A)
    peak = target_scores.amax(dim=(0, 2), keepdim=True).clamp(min=0.05)  # each class's best in the batch
    weight = (target_scores / peak).amax(1) + 0.01  # (B, A)
    cls = F.binary_cross_entropy_with_logits(student["scores"], target_scores, reduction="none").sum(1)
    batch, channels, anchors = teacher["boxes"].shape
    sides = (batch, 4, channels // 4, anchors)
    target_dist = teacher["boxes"].view(sides).softmax(2)
    kl = (target_dist * (torch.log(target_dist + 1e-9) - student["boxes"].view(sides).log_softmax(2))).sum(2)
    per_anchor = cls + kl.sum(1)
    return (per_anchor * weight).sum() / weight.sum()


def _export_ir(
    model: Any, out_xml: Path, input_hw: tuple[int, int], example: Any, report: Callable[[str], None]
) -> Path:
    """The quantised torch model as an OpenVINO IR with the registered file's interface."""
    import openvino as ov
    import torch

    head = model.model[-1]
    head.export, head.format = True, "openvino"  # one (batch, 4 + classes, anchors) output, as exported
    try:
        with torch.no_grad():
            expected = model(example).numpy()
            converted = ov.convert_model(
                model, example_input=example, input=[ov.PartialShape([-1, 3, *input_hw])]
            )
    finally:
        head.export = False
    converted.inputs[0].get_tensor().set_names({"images"})
    converted.outputs[0].get_tensor().set_names({"output0"})
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(example.numpy())[0]
    report(
        "QAT: the IR's scores differ from the fake-quantised model's by at most "
        f"{float(np.abs(got[:, 4:] - expected[:, 4:]).max()):.3f}"
    )
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(converted, str(out_xml))
    return out_xml
