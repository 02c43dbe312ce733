"""Train anjian's small demo fire/smoke detector on synthetic footage and export it to ONNX.

``make demo`` needs a detector that sees the flames of the generated demo clip without
downloading anything. This module renders a synthetic training set with
:mod:`anjian.datasets.synthetic`, trains a slim YOLOv8 detector *from scratch* on the CPU with
ultralytics, exports it to ONNX and writes ``model.onnx``, ``card.md`` and ``meta.json``
into a registry folder such as ``models/registry/anjian-demo/1``.

Nothing may reach the network: ultralytics is imported only after ``YOLO_OFFLINE`` and
``YOLO_AUTOINSTALL=false`` are set (so ``check_requirements`` never pip-installs), no
weights are fetched (the model comes from its yaml, or from ``--init-from``; ultralytics'
``pretrained=False`` would drop the latter, so it is set only without one), the AMP check that downloads
``yolo11n.pt`` is off (``amp=False``), plots are off, and the one font ultralytics checks
for when it reads a dataset is served from matplotlib's bundled DejaVu Sans.

Run it as ``python -m anjian.training.demo_model --out models/registry/anjian-demo/1``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from anjian.datasets.synthetic import CLASS_NAMES, write_training_set
from anjian.training.export import ONNX_OPSET, stamp_onnx
from anjian.training.ultralytics_env import OFFLINE_TRAIN_ARGS, offline_ultralytics, use_all_cores

__all__ = ["ClassMetrics", "DemoModelMeta", "DemoRecipe", "main", "train_demo_model"]

logger = logging.getLogger(__name__)

MODEL_NAME = "anjian-demo"


class _Frozen(BaseModel):
    """Base of this module's records: strict fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoRecipe(_Frozen):
    """How the demo model was trained; recorded in ``meta.json`` and the model card."""

    images: int = Field(1000, ge=2, description="Synthetic images rendered, train and val together.")
    val_fraction: float = Field(0.15, ge=0.0, le=0.9, description="Share of the images held out for val.")
    render_size_wh: tuple[int, int] = Field((480, 270), description="Size the images are rendered at.")
    epochs: int = Field(35, ge=1, description="Training epochs.")
    imgsz: int = Field(320, ge=32, description="Square network input size, pixels (multiple of 32).")
    batch: int = Field(16, ge=1, description="Images per training batch.")
    depth_multiple: float = Field(0.33, gt=0, description="YOLOv8 depth multiple (0.33 is the 'n' scale).")
    width_multiple: float = Field(0.125, gt=0, description="YOLOv8 width multiple (0.25 is the 'n' scale).")
    seed: int = Field(0, ge=0, description="Seeds the synthetic set and the training run.")
    workers: int = Field(0, ge=0, le=8, description="Dataloader worker processes.")
    init_from: str | None = Field(
        None,
        description="Where training starts: an ultralytics checkpoint (.pt) of the same classes (weights and "
        "batch-norm statistics as they were), or the ONNX export of an earlier demo model of the same scale "
        "(fused weights, batch-norms unfolded to the identity; class outputs re-sized for new classes start "
        "fresh); None: from scratch.",
    )


class ClassMetrics(_Frozen):
    """Validation metrics of one class, as ultralytics reported them."""

    name: str
    precision: float
    recall: float
    map50: float = Field(description="AP at IoU 0.5.")
    map50_95: float = Field(description="AP averaged over IoU 0.5:0.95.")
    instances: int = Field(description="Labelled boxes of this class in the val split.")


class DemoModelMeta(_Frozen):
    """Contents of ``meta.json`` next to the exported model."""

    name: str
    version: str
    classes: tuple[str, ...]
    imgsz: int
    map50: float
    map50_95: float
    metrics: tuple[ClassMetrics, ...]
    created_at: datetime
    training_seconds: float = Field(description="Wall time of the ultralytics training run alone.")
    total_seconds: float = Field(description="Wall time of rendering, training, validating and exporting.")
    hardware: str
    recipe: DemoRecipe
    onnx_sha256: str
    onnx_bytes: int


def _write_model_yaml(path: Path, recipe: DemoRecipe) -> Path:
    """Write ultralytics' YOLOv8 detector yaml for our two classes at the recipe's scale."""
    import ultralytics
    import yaml

    cfg = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8.yaml").read_text())
    cfg.pop("scales")
    cfg.update(
        nc=len(CLASS_NAMES), depth_multiple=recipe.depth_multiple, width_multiple=recipe.width_multiple
    )
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _class_metrics(metrics: Any) -> tuple[float, float, tuple[ClassMetrics, ...]]:
    """Overall mAP50, mAP50-95 and per-class rows from an ultralytics ``DetMetrics``."""
    nt = getattr(metrics, "nt_per_class", None)
    rows = []
    for i, class_id in enumerate(metrics.ap_class_index):
        p, r, ap50, ap = metrics.class_result(i)
        rows.append(
            ClassMetrics(
                name=CLASS_NAMES[int(class_id)],
                precision=round(float(p), 4),
                recall=round(float(r), 4),
                map50=round(float(ap50), 4),
                map50_95=round(float(ap), 4),
                instances=int(nt[int(class_id)]) if nt is not None else -1,
            )
        )
    return round(float(metrics.box.map50), 4), round(float(metrics.box.map), 4), tuple(rows)


def _hardware(threads: int) -> str:
    """One line naming the machine the model was trained on."""
    import torch
    from ultralytics.utils.torch_utils import get_cpu_info

    cpu = get_cpu_info() or platform.processor() or platform.machine()
    return (
        f"CPU only: {cpu}, {os.cpu_count()} cores visible, {threads} torch threads, torch {torch.__version__}"
    )


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _start(recipe: DemoRecipe) -> str:
    """Where training started, for the card."""
    if recipe.init_from is None:
        return "trained from scratch (no pretrained weights)"
    return f"started from the weights of `{Path(recipe.init_from).name}` of an earlier demo model (see below)"


def _write_card(path: Path, meta: DemoModelMeta) -> None:
    """Write the markdown model card."""
    r = meta.recipe
    rows = "\n".join(
        f"| {m.name} | {m.instances} | {m.precision:.3f} | {m.recall:.3f} | {m.map50:.3f} | {m.map50_95:.3f} |"
        for m in meta.metrics
    )
    path.write_text(
        f"""# {meta.name} {meta.version}

**A demo model, not for real sites.** A small YOLOv8 detector trained only on synthetic
workshop footage that anjian renders itself (`datasets/synthetic/`). It exists so that
`make demo` raises real alerts on a fresh clone with no external data. It has never seen a
real camera image: on real footage expect misses and false alarms. The model for real sites is
`anjian-n` (real, labelled data, `training/`).

## Model
- Architecture: ultralytics YOLOv8 detector, depth x{r.depth_multiple}, width x{r.width_multiple}; {_start(r)}.
- Classes: {", ".join(f"`{c}` ({i})" for i, c in enumerate(meta.classes))}.
- Input: `images`, float32 `(batch, 3, {meta.imgsz}, {meta.imgsz})`, RGB in `[0, 1]`, letterboxed
  (grey 114 padding); batch is dynamic.
- Output: `output0`, float32 `(batch, {4 + len(meta.classes)}, {sum((meta.imgsz // s) ** 2 for s in (8, 16, 32))})`:
  per anchor `cx, cy, w, h` in input pixels, then one sigmoid score per class (no objectness).
  NMS is **not** in the graph.
- ONNX opset {ONNX_OPSET}; {meta.onnx_bytes / 1e6:.2f} MB; sha256 `{meta.onnx_sha256}`.
- Metadata (`metadata_props`): ultralytics' `names`, `imgsz`, `stride`, `task`, `batch`, ... plus
  `version` = `{meta.name}-{meta.version}`, `anjian_model` = `{meta.name}`, `ultralytics_version`, `output_layout`.

## Training recipe
- Data: {r.images} synthetic images rendered at {r.render_size_wh[0]}x{r.render_size_wh[1]} (seed {r.seed}),
  {r.val_fraction:.0%} held out for val: workshops with flames and smoke, people standing, walking,
  lying, smoking or on the phone, loaded pallets, dust on the floor, exit doors; about a third
  hold no flame but static amber lamps, reflections, cones, hi-vis vests and yellow floor markings.
- {r.epochs} epochs, imgsz {r.imgsz}, batch {r.batch}, ultralytics defaults otherwise
  (optimizer auto, mosaic, HSV and flip augmentation), deterministic, seed {r.seed}.
- Training took {meta.training_seconds / 60:.1f} min ({meta.total_seconds / 60:.1f} min with rendering,
  validation and export) on {meta.hardware}.
- Reproduce: `python -m anjian.training.demo_model --out models/registry/{meta.name}/{meta.version}
  --images {r.images} --epochs {r.epochs} --imgsz {r.imgsz} --seed {r.seed}`.

## Validation (synthetic val split, as ultralytics reported it)
mAP50 {meta.map50:.3f}, mAP50-95 {meta.map50_95:.3f}.

| class | instances | precision | recall | mAP50 | mAP50-95 |
|---|---|---|---|---|---|
{rows}

These figures measure the synthetic world only and say nothing about real footage.

Created {meta.created_at.isoformat(timespec="seconds")}.
"""
    )


def train_demo_model(
    out_dir: Path, recipe: DemoRecipe, *, version: str = "1", work_dir: Path | None = None
) -> Path:
    """Render a synthetic set, train the demo detector (from scratch or an earlier one) and export it.

    Writes ``model.onnx`` (opset 17, dynamic batch, fixed ``imgsz``, no NMS),
    ``card.md`` and ``meta.json`` into ``out_dir``.

    Args:
        out_dir: Registry folder to write into (created if missing).
        recipe: What to render and how to train (``DemoRecipe()``: the shipped model's recipe).
        version: Registry version, stored in the metadata as ``anjian-demo-<version>``.
        work_dir: Folder for the dataset and ultralytics run; a temporary one (deleted
            afterwards) when ``None``.

    Returns:
        Path of the exported ``model.onnx``.

    Raises:
        ValueError: If ``recipe.imgsz`` is not a multiple of 32.

    Example:
        >>> train_demo_model(Path("models/registry/anjian-demo/3"), DemoRecipe(epochs=20), version="3")
    """
    if recipe.imgsz % 32:
        raise ValueError(f"imgsz must be a multiple of 32, got {recipe.imgsz}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        return _train_in(out_dir, Path(work_dir).resolve(), recipe, version)
    with tempfile.TemporaryDirectory(prefix="anjian-demo-") as tmp:
        return _train_in(out_dir, Path(tmp), recipe, version)


def _initialised(model: Any, onnx_path: Path, pt_path: Path) -> Any:
    """``model`` with an earlier demo model's weights wherever their shapes fit, as a checkpoint-backed YOLO.

    ultralytics trains from a model's weights only when it was loaded from a checkpoint, so
    the filled model is saved and loaded back.
    """
    from ultralytics.models.yolo.model import YOLO

    from anjian.training.coco_init import load_float_onnx_weights, transplant_weights

    weights = load_float_onnx_weights(onnx_path)
    used = transplant_weights(model.model, weights, is_strict=False)
    logger.info("initialised %d of %d tensors from %s", len(used), len(weights), onnx_path)
    model.save(str(pt_path))
    return YOLO(str(pt_path), task="detect")


def _train_in(out_dir: Path, work: Path, recipe: DemoRecipe, version: str) -> Path:
    """Run the whole recipe with scratch files under ``work``."""
    t0 = time.perf_counter()
    logger.info("rendering %d synthetic images into %s", recipe.images, work / "data")
    data_yaml = write_training_set(
        work / "data", recipe.images, recipe.render_size_wh, recipe.seed, recipe.val_fraction
    )

    offline_ultralytics()
    import torch
    from ultralytics.models.yolo.model import YOLO

    model = YOLO(str(_write_model_yaml(work / "anjian-demo-det.yaml", recipe)), task="detect")
    if recipe.init_from is not None and Path(recipe.init_from).suffix == ".pt":
        model = YOLO(recipe.init_from, task="detect")  # an ultralytics checkpoint of this recipe's classes
    elif recipe.init_from is not None:
        model = _initialised(model, Path(recipe.init_from), work / "init.pt")
    threads_before = torch.get_num_threads()
    threads = use_all_cores(model)
    t_train = time.perf_counter()
    model.train(
        data=str(data_yaml),
        epochs=recipe.epochs,
        imgsz=recipe.imgsz,
        batch=recipe.batch,
        workers=recipe.workers,
        seed=recipe.seed,
        deterministic=True,
        pretrained=recipe.init_from is not None,  # False would drop the weights just loaded
        cache="ram",
        project=str(work / "runs"),
        name="train",
        exist_ok=True,
        verbose=False,
        **OFFLINE_TRAIN_ARGS,
    )
    training_s = time.perf_counter() - t_train
    torch.set_num_threads(threads_before)
    metrics = model.val(
        data=str(data_yaml),
        imgsz=recipe.imgsz,
        batch=recipe.batch,
        device="cpu",
        workers=0,
        plots=False,
        project=str(work / "runs"),
        name="val",
        exist_ok=True,
        verbose=False,
    )
    map50, map50_95, rows = _class_metrics(metrics)

    has_onnxslim = importlib.util.find_spec("onnxslim") is not None
    exported = Path(
        model.export(
            format="onnx",
            imgsz=recipe.imgsz,
            opset=ONNX_OPSET,
            dynamic=True,
            simplify=has_onnxslim,
            nms=False,
            device="cpu",
        )
    )
    onnx_path = out_dir / "model.onnx"
    stamp_onnx(
        exported,
        onnx_path,
        imgsz=recipe.imgsz,
        name=MODEL_NAME,
        version=version,
        description="anjian demo fire/smoke detector, trained only on synthetic footage; not for real sites",
    )
    meta = DemoModelMeta(
        name=MODEL_NAME,
        version=version,
        classes=CLASS_NAMES,
        imgsz=recipe.imgsz,
        map50=map50,
        map50_95=map50_95,
        metrics=rows,
        created_at=datetime.now(UTC),
        training_seconds=round(training_s, 1),
        total_seconds=round(time.perf_counter() - t0, 1),
        hardware=_hardware(threads),
        recipe=recipe,
        onnx_sha256=_sha256(onnx_path),
        onnx_bytes=onnx_path.stat().st_size,
    )
    (out_dir / "meta.json").write_text(meta.model_dump_json(indent=2) + "\n")
    _write_card(out_dir / "card.md", meta)
    logger.info("wrote %s (mAP50 %.3f) in %.0fs", onnx_path, map50, meta.total_seconds)
    return onnx_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train the demo model into a registry folder.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m anjian.training.demo_model",
        description=__doc__.splitlines()[0],
        argument_default=argparse.SUPPRESS,  # a recipe setting not given keeps DemoRecipe's default
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="registry folder, e.g. models/registry/anjian-demo/1"
    )
    parser.add_argument("--images", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--imgsz", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--width", type=float, dest="width_multiple", help="YOLOv8 width multiple")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--version", default=None, help="registry version; defaults to the name of --out")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the dataset and runs here")
    parser.add_argument(
        "--init-from",
        type=lambda text: str(Path(text)),
        help="start from a checkpoint (.pt, same classes) or an earlier demo model's ONNX (same scale)",
    )
    args = vars(parser.parse_args(argv))
    out, version, work_dir = args.pop("out"), args.pop("version"), args.pop("work_dir")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = train_demo_model(out, DemoRecipe(**args), version=version or out.name, work_dir=work_dir)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
