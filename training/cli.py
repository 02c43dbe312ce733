"""``anjian train | eval | export | models ...``: the analysts' side of the model loop.

Mounted on the ``anjian`` CLI by ``service/cli.py``. Importing this module loads neither
torch nor ultralytics: each command imports what it needs when it runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datasets.cli import rich_progress
from datasets.errors import DatasetError
from models.errors import ModelError

__all__ = ["eval_command", "export_command", "models_app", "train_command"]

models_app = typer.Typer(
    help="List, promote and roll back model versions in the registry.", no_args_is_help=True
)
_err = Console(stderr=True)
_out = Console()

RegistryOpt = Annotated[
    Path | None,
    typer.Option("--registry", help="Registry folder (default: the one shipped in models/registry)."),
]


def _fail(message: str) -> typer.Exit:
    """Print an error and return the exit to raise."""
    _err.print(f"[red]{message}[/red]")
    return typer.Exit(2)


def _num(value: float | None) -> str:
    """Three decimals or a dash."""
    return "–" if value is None or math.isnan(value) else f"{value:.3f}"


def train_command(
    data: Annotated[Path, typer.Option(help="YOLO data.yaml to train on.")] = Path("data.yaml"),
    model: Annotated[
        str,
        typer.Option(help="Start: an ultralytics .pt, a model .yaml, or 'coco' (COCO YOLOv8n, see --coco)."),
    ] = "coco",
    coco: Annotated[
        Path, typer.Option(help="The int8 COCO YOLOv8n ONNX to recover weights from (for --model coco).")
    ] = Path("../shared/data/weights/coco_yolov8n_int8.onnx"),
    project: Annotated[Path, typer.Option(help="Folder of training runs.")] = Path("runs"),
    name: Annotated[str, typer.Option(help="Run name (folder project/name).")] = "train",
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 30,
    imgsz: Annotated[int, typer.Option(help="Square input size, a multiple of 32.")] = 416,
    batch: Annotated[int, typer.Option(help="Images per batch.")] = 16,
    workers: Annotated[int, typer.Option(help="Dataloader workers.")] = 2,
    freeze: Annotated[int, typer.Option(help="Leading layers to keep frozen (10: backbone).")] = 0,
    lr0: Annotated[
        float | None, typer.Option(help="Initial learning rate (ultralytics default when unset).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue project/name/weights/last.pt.")] = False,
) -> None:
    """Train a detector offline (no downloads); checkpoints every epoch, resumable with --resume."""
    from training.train import TrainConfig, train_detector

    extra: dict[str, float | int | str | bool] = {}
    if freeze:
        extra["freeze"] = freeze
    if lr0 is not None:
        extra["lr0"] = lr0
    start = model
    try:
        if model == "coco" and not resume:
            import yaml

            from training.finetune_init import build_finetune_checkpoint

            names = yaml.safe_load(data.read_text())["names"]
            names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
            start = str(build_finetune_checkpoint(coco, names, project / name / "init.pt"))
        config = TrainConfig(
            data=data,
            model=start,
            project=project,
            name=name,
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            workers=workers,
            seed=seed,
            extra=extra,
        )
        run = train_detector(config, resume=resume)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    _out.print(f"weights: {run.best} (last: {run.last}); record: {run.record}")


def eval_command(
    model: Annotated[
        str, typer.Option(help="Model to score: an .onnx or .pt file, builtin:NAME or builtin:NAME/VERSION.")
    ],
    data: Annotated[Path, typer.Option(help="YOLO data.yaml (or a COCO JSON with --images).")],
    split: Annotated[
        str,
        typer.Option(
            help="Split of the data to score (train, val or test; a COCO JSON is read as this split)."
        ),
    ] = "val",
    class_map: Annotated[
        Path | None, typer.Option("--class-map", help="Maps the data's class names onto the model's.")
    ] = None,
    images: Annotated[Path | None, typer.Option(help="COCO only: image folder.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    confidence: Annotated[
        float,
        typer.Option(
            help="Detections scoring below this are dropped before scoring; keep it low (0.001) so that "
            "AP covers the whole precision-recall curve, not the site's alert threshold."
        ),
    ] = 0.001,
) -> None:
    """Per-class precision, recall, AP50 and AP50-95 of a model on a labelled split."""
    from datasets.classmap import load_class_map
    from datasets.cli import load_any
    from models.config import DetectorConfig
    from models.loader import load_detector
    from training.evaluate import evaluate_detector

    try:
        dataset = load_any(data, images=images, split=split)
        mapping = load_class_map(class_map) if class_map else None
        detector = load_detector(
            model, DetectorConfig(path=model, confidence_threshold=confidence, device="cpu")
        )
        report = evaluate_detector(detector, dataset, split=split, class_map=mapping, progress=rich_progress)
    except (DatasetError, ModelError, ValueError) as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"{report.model} on {report.data}: {report.images} images, {report.seconds:.0f} s")
    for column in ("class", "data classes", "images", "instances", "P", "R", "AP50", "AP50-95"):
        table.add_column(column)
    for c in report.classes:
        table.add_row(
            c.name,
            ",".join(c.data_classes),
            str(c.images),
            str(c.instances),
            _num(c.precision),
            _num(c.recall),
            _num(c.ap50),
            _num(c.ap50_95),
        )
    table.add_row("all", "", "", "", "", "", _num(report.map50), _num(report.map50_95))
    _out.print(table)
    if report.ignored_data_classes:
        _out.print(f"ignored data classes (no model class): {list(report.ignored_data_classes)}")
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")


def export_command(
    weights: Annotated[
        Path, typer.Argument(help="Trained ultralytics .pt (e.g. runs/train/weights/best.pt).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for model.onnx (and model-fp16.onnx, model.engine).")],
    imgsz: Annotated[int, typer.Option(help="Square input size.")] = 416,
    name: Annotated[str, typer.Option(help="Model name stamped into the file (events carry it).")] = "custom",
    version: Annotated[str, typer.Option(help="Version stamped into the file.")] = "0",
    half: Annotated[bool, typer.Option("--half/--no-half", help="Also write an fp16 ONNX.")] = True,
    tensorrt: Annotated[
        bool, typer.Option(help="Also build a TensorRT engine (needs an NVIDIA GPU).")
    ] = False,
    register: Annotated[
        bool, typer.Option(help="Register model.onnx as a new registry version of NAME.")
    ] = False,
    registry: RegistryOpt = None,
) -> None:
    """Export weights to ONNX (fp32, dynamic batch; fp16; TensorRT on a GPU), optionally register them."""
    from training.export import export_onnx, export_tensorrt, to_fp16

    try:
        onnx = export_onnx(weights, out / "model.onnx", imgsz=imgsz, name=name, version=version)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    _out.print(f"fp32: {onnx} ({onnx.stat().st_size / 1e6:.1f} MB)")
    if half:
        fp16 = to_fp16(onnx, out / "model-fp16.onnx")
        _out.print(f"fp16: {fp16} ({fp16.stat().st_size / 1e6:.1f} MB)")
    if tensorrt:
        engine = export_tensorrt(weights, out / "model.engine", imgsz=imgsz)
        _out.print(f"TensorRT: {engine}" if engine else "TensorRT: skipped (no NVIDIA GPU or no tensorrt)")
    if register:
        from models.registry import register_version

        meta = {"source_weights": str(weights), "imgsz": imgsz}
        record = weights.parent.parent / "anjian_train.json"
        if record.is_file():
            train = json.loads(record.read_text())
            meta.update(
                data_hash=train.get("data_hash"), training=train.get("config"), epochs=train.get("epochs")
            )
        card = f"# {name}\n\nExported from `{weights}` at imgsz {imgsz}. Add metrics with `anjian eval`.\n"
        entry = register_version(name, onnx, meta, card, root=registry)
        _out.print(f"registered {name} version {entry.version} (promote it with `anjian models promote`)")


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="One model (default: all).")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Versions with creation time, mAP50, data hash; * marks the promoted one."""
    from models.registry import builtin_model_names, list_versions

    names = [name] if name else builtin_model_names(registry)
    table = Table()
    for column in ("", "model", "version", "created", "mAP50", "data"):
        table.add_column(column)
    try:
        for model in names:
            for v in list_versions(model, root=registry):
                map50 = v.meta.get("map50")
                if map50 is None and isinstance(v.meta.get("val"), dict):
                    values = [r.get("map50") for r in v.meta["val"].values() if r.get("map50") is not None]
                    map50 = sum(values) / len(values) if values else None
                table.add_row(
                    "*" if v.is_promoted else "",
                    model,
                    v.version,
                    v.created_at,
                    _num(map50),
                    str(v.meta.get("data_hash", ""))[:19],
                )
    except ModelError as exc:
        raise _fail(str(exc)) from None
    _out.print(table)


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version to serve.")],
    scope: Annotated[str | None, typer.Option(help="Only for builtin:NAME@SCOPE (a site or camera).")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Serve VERSION as builtin:NAME; running pipelines swap to it at their next check."""
    from models.registry import promote

    try:
        previous = promote(name, version, scope=scope, root=registry)
    except (ModelError, ValueError) as exc:
        raise _fail(str(exc)) from None
    _out.print(f"{name}{'@' + scope if scope else ''}: {previous or '(none)'} -> {version}")


@models_app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    scope: Annotated[str | None, typer.Option(help="Roll back builtin:NAME@SCOPE only.")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Serve again the version promoted before the current one."""
    from models.registry import rollback

    try:
        version = rollback(name, scope=scope, root=registry)
    except (ModelError, ValueError) as exc:
        raise _fail(str(exc)) from None
    _out.print(f"{name}{'@' + scope if scope else ''}: rolled back to {version}")
