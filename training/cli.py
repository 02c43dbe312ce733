"""``anjian train | eval | export | models ...``: the analysts' side of the model loop.

Mounted on the ``anjian`` CLI by ``service/cli.py``. Importing this module loads neither
torch nor ultralytics: each command imports what it needs when it runs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from anjian.datasets.cli import dataset_app, rich_progress
from anjian.datasets.command_line import fail, failing_on
from anjian.datasets.errors import DatasetError
from anjian.models.errors import ModelError
from anjian.training.qat import DEFAULT_QAT_EPOCHS, DEFAULT_QAT_LR

if TYPE_CHECKING:
    from anjian.models.config import DetectorConfig
    from anjian.models.detector import Detector
    from anjian.training.compare import Comparison
    from anjian.training.evaluate import EvalReport
    from anjian.training.report import MatchCollector

__all__ = ["eval_command", "export_command", "models_app", "train_command"]

models_app = typer.Typer(
    help="List, promote and roll back model versions in the registry.", no_args_is_help=True
)
_err = Console(stderr=True)
_out = Console()

RegistryOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry",
        help="Site model registry: where versions are registered and promoted (default: the --config "
        "site's model.registry, else $ANJIAN_REGISTRY, else ~/.local/share/anjian/registry). The models "
        "shipped with anjian are read from the package after it, never written.",
    ),
]
ModelNameArg = Annotated[str, typer.Argument(help="Model name.")]
ClassMapOpt = Annotated[
    Path | None, typer.Option("--class-map", help="Maps the data's class names onto the model's.")
]
CrossDataOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--cross-data",
        help="YOLO data.yaml of a source the model never trained on: every image is scored, none calibrates "
        "(int8 tolerance: --max-cross-drop, or the one the int8 model was accepted with); repeat it.",
    ),
]
SiteConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Site YAML: use the registry its model.registry names."),
]
AllowLabelErrorsOpt = Annotated[
    bool,
    typer.Option(
        "--allow-label-errors",
        help="Score a split whose label files have errors (unknown class ids, malformed lines: their boxes are "
        "lost, so those objects count as background; `anjian dataset validate` lists them) instead of refusing "
        "it; the errors are printed as a warning.",
    ),
]


def _warn_label_errors(summaries: list[str] | tuple[str, ...]) -> None:
    """Print each scored split's label-error summary (``--allow-label-errors``) as a warning on stderr."""
    for summary in summaries:
        _err.print(f"[yellow]warning: scored with label errors: {escape(summary)}[/yellow]")


def _registry_write_error(exc: OSError, registry: Path | None) -> typer.Exit:
    """The one-line refusal of a registry that cannot be written (read-only disk, a path under a file, ...).

    An error about a file outside the registry (a command that also reads data) is named as such.
    """
    from anjian.models.registry import site_registry

    root = site_registry(registry)
    why = exc.strerror or str(exc)
    failed = Path(os.fsdecode(exc.filename)) if isinstance(exc.filename, str | bytes) else None
    if failed is not None and not failed.is_relative_to(root):
        return fail(f"{failed}: {why}")
    where = f" ({failed})" if failed is not None and failed != root else ""
    return fail(f"cannot write the registry {root}: {why}{where}")


def _site_registry(registry: Path | None, site_config: Path | None) -> Path | None:
    """The site registry to act on: --registry, else the site config's, else ``None`` (the default).

    A path that is a file is refused: listed, it read as an empty registry without a word.
    """
    from anjian.models.registry import site_registry

    root = registry
    if registry is None and site_config is not None:
        from anjian.models.config import registry_of_site_config

        with failing_on(ValueError):
            root = registry_of_site_config(site_config)
    folder = site_registry(root)
    try:
        is_file = folder.exists() and not folder.is_dir()
    except OSError as exc:  # a folder above it that may not be read
        raise fail(f"the model registry {folder}: {exc.strerror or exc}") from None
    if is_file:
        raise fail(f"the model registry {folder} is a file, not a folder")
    return root


_TRAIN_EXTRA_INSTALL = "pip install -e '.[train]'"
"""How to install the ``train`` extra (torch, ultralytics, onnx, nncf, matplotlib), as every message says it."""


def _require_train_extra(what: str, *modules: str) -> None:
    """Refuse, before any work, what needs modules of the ``train`` extra this install lacks.

    The one message of every analyst command that needs the extra (``train``, ``export``, ``eval`` of a
    ``.pt``, ``eval --report``, ``models calibrate --register``, ``models quantize``): what needs it, what
    is missing, how to install it; exit 2, never a traceback.

    Raises:
        typer.Exit: A module is not installed.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise fail(
            f"{what} needs the train extra ({', '.join(missing)} not installed): {_TRAIN_EXTRA_INSTALL}"
        )


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
        Path | None,
        typer.Option(
            help="The int8 COCO YOLOv8n ONNX to recover weights from (for --model coco). Default: "
            "shared/data/weights/coco_yolov8n_int8.onnx beside the anjian checkout, whatever the current folder."
        ),
    ] = None,
    project: Annotated[Path, typer.Option(help="Folder of training runs.")] = Path("runs"),
    name: Annotated[str, typer.Option(help="Run name (folder project/name).")] = "train",
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 30,
    imgsz: Annotated[int, typer.Option(help="Square input size, a multiple of 32.")] = 416,
    batch: Annotated[int, typer.Option(help="Images per batch.")] = 16,
    workers: Annotated[
        int,
        typer.Option(
            help="Dataloader worker processes (GPU training; on the CPU ultralytics loads data in the "
            "training process, and anjian_train.json records the count really used)."
        ),
    ] = 2,
    freeze: Annotated[int, typer.Option(help="Leading layers to keep frozen (10: backbone).")] = 0,
    lr0: Annotated[
        float | None, typer.Option(help="Initial learning rate (ultralytics default when unset).")
    ] = None,
    seed: Annotated[
        int,
        typer.Option(help="Seeds the new class head and every generator of training: same seed, same run."),
    ] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue project/name/weights/last.pt.")] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace a run already in project/name (deleted first). Without it, train refuses to "
            "start over an existing run: pick another --name or continue it with --resume.",
        ),
    ] = False,
    teacher: Annotated[
        bool,
        typer.Option(
            "--teacher/--no-teacher",
            help="Before training a merged set, let the COCO teacher (--coco) fill in the classes a source "
            "never labels (people in fire photos), so they are not learnt as background. On by default; "
            "--no-teacher trains on the gaps as they are (an ablation).",
        ),
    ] = True,
    teacher_confidence: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Teacher boxes scoring below this are not added.")
    ] = 0.5,
    cctv_degradation: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of training images made to look as a plant's camera delivers them (sub-stream "
            "resolution, blur, noise, clipped exposure, faded colour, JPEG). 0: off.",
        ),
    ] = 0.0,
) -> None:
    """Train a detector offline (no downloads); checkpoints every epoch, resumable with --resume.

    A new run never replaces an old one of the same --name unless --overwrite says so.
    """
    _require_train_extra("anjian train", "torch", "ultralytics", "onnx")
    from anjian.training.finetune_init import DEFAULT_COCO_ONNX
    from anjian.training.train import TrainConfig, check_training_set, prepare_new_run, train_detector

    extra: dict[str, float | int | str | bool] = {}
    if freeze:
        extra["freeze"] = freeze
    if lr0 is not None:
        extra["lr0"] = lr0
    start = model
    coco = coco or DEFAULT_COCO_ONNX
    with failing_on(FileNotFoundError, ValueError, OSError, DatasetError, ModelError):
        if not resume:
            prepare_new_run(project / name, overwrite=overwrite)
            if model == "coco" and not coco.is_file():
                raise FileNotFoundError(
                    f"--model coco starts from the int8 COCO YOLOv8n, but {coco} does not exist: pass --coco PATH"
                )
            check_training_set(data)  # before the teacher's pass: a set without val images cannot train
            data = _complete_labels(data, project / name / "data", coco, teacher, teacher_confidence)
        if model == "coco" and not resume:
            import yaml

            from anjian.training.finetune_init import build_finetune_checkpoint

            names = yaml.safe_load(data.read_text())["names"]
            names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
            start = str(build_finetune_checkpoint(coco, names, project / name / "init.pt", seed=seed))
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
            cctv_degradation=cctv_degradation,
            extra=extra,
        )
        run = train_detector(config, resume=resume)
    if run.note:
        _err.print(run.note, style="yellow", markup=False)
    _out.print(f"weights: {run.best} (last: {run.last}); record: {run.record}")


def _complete_labels(data: Path, out: Path, coco: Path, is_teaching: bool, confidence: float) -> Path:
    """The set to train on: ``data`` with its label gaps filled by the teacher (see complete_labels)."""
    from anjian.datasets.yolo import load_yolo_set
    from anjian.training.complete_labels import complete_labels, label_gaps

    if not is_teaching:
        for source, missing in label_gaps(load_yolo_set(data)).items():
            _err.print(
                f"[yellow]--no-teacher: {source} never labels {list(missing)}: learnt as background[/yellow]"
            )
        return data
    completion = complete_labels(data, out, coco, min_confidence=confidence, progress=rich_progress)
    for source, filled in completion.filled.items():
        _out.print(f"teacher filled {list(filled)} in {source}")
    for source, missing in completion.remaining_gaps.items():
        _err.print(
            f"[yellow]{source} never labels {list(missing)} and no teacher knows them: "
            "those objects are learnt as background there[/yellow]"
        )
    return completion.data_yaml


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
    class_map: ClassMapOpt = None,
    images: Annotated[Path | None, typer.Option(help="COCO only: image folder.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    confidence: Annotated[
        float,
        typer.Option(
            help="Detections scoring below this are dropped before scoring; keep it low (0.001) so that "
            "AP covers the whole precision-recall curve, not the site's alert threshold."
        ),
    ] = 0.001,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write an offline HTML report into this folder: confusion matrix, precision-recall "
            "and F1 curves, galleries of false positives and misses (needs the train extra's matplotlib).",
        ),
    ] = None,
    report_confidence: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=0.99,
            help="Confidence of the report's confusion matrix and galleries (an alert threshold).",
        ),
    ] = 0.25,
    gallery_size: Annotated[
        int, typer.Option(min=1, max=500, help="Crops per class in each gallery of the report, worst first.")
    ] = 12,
    record: Annotated[
        str | None,
        typer.Option(
            "--record",
            metavar="NAME/VERSION",
            help="Keep the results with that registry version: meta.json (evals) and its card, where "
            "`anjian models list` shows them. --model must be that version (builtin:NAME/VERSION, its "
            "model.onnx, or the .pt it was exported from).",
        ),
    ] = None,
    registry: RegistryOpt = None,
    site_config: SiteConfigOpt = None,
    allow_label_errors: AllowLabelErrorsOpt = False,
) -> None:
    """Per-class precision, recall, AP50 and AP50-95 of a model on a labelled split."""
    from anjian.datasets.classmap import load_class_map
    from anjian.datasets.cli import load_any
    from anjian.training.eval_record import check_recorded_model, parse_version_ref, record_evaluation
    from anjian.training.evaluate import evaluate_detector
    from anjian.training.label_errors import check_label_errors

    if model.lower().endswith(".pt"):
        _require_train_extra("anjian eval of a .pt model", "torch", "ultralytics")
    root = _site_registry(registry, site_config)
    with failing_on(DatasetError, ModelError, ValueError, ModuleNotFoundError):
        target = parse_version_ref(record) if record else None
        if target is not None:
            check_recorded_model(model, *target, root=root)
        dataset = load_any(data, images=images, split=split)
        label_errors = check_label_errors(dataset, split, is_allowed=allow_label_errors, data=data)
        mapping = load_class_map(class_map) if class_map else None
        detector = _load_scoring_detector(model, confidence, root)
        collector = _report_collector(report_dir)
        report = evaluate_detector(
            detector, dataset, split=split, class_map=mapping, progress=rich_progress, on_image=collector
        )
    _warn_label_errors([label_errors] if label_errors else [])
    report.extra.update(_eval_conditions(model, detector, data, split, class_map, confidence))
    report.extra["thresholds"] = _calibrated_thresholds(report, json_out)
    table = Table(title=f"{report.model} on {report.data}: {report.images} images, {report.seconds:.0f} s")
    columns = (
        "class",
        "data classes",
        "scored on",
        "images",
        "instances",
        "P",
        "R",
        "AP50",
        "AP50-95",
        "false alarms",
    )
    for column in columns:
        table.add_column(column)
    for c in report.classes:
        table.add_row(
            c.name,
            ",".join(c.data_classes),
            f"{c.images_scored} images ({', '.join(c.sources)})",
            str(c.images),
            str(c.instances),
            _num(c.precision),
            _num(c.recall),
            _num(c.ap50),
            _num(c.ap50_95),
            f"{c.false_alarms} at >= {c.alarm_confidence:.2f}",
        )
    table.add_row("all", "", "", "", "", "", "", _num(report.map50), _num(report.map50_95), "")
    _out.print(table)
    if report.unreadable_images:
        _out.print(
            f"[red]{len(report.unreadable_images)} unreadable image(s); their boxes count as missed:[/red] "
            + ", ".join(escape(name) for name in report.unreadable_images[:5])
            + (" ..." if len(report.unreadable_images) > 5 else "")
        )
    if report.ignored_data_classes:
        _out.print(f"ignored data classes (no model class): {list(report.ignored_data_classes)}")
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if target is not None:
        folder = record_evaluation(*target, report.to_dict(), root=root)
        _out.print(f"recorded with {target[0]}/{target[1]}: {folder / 'meta.json'} (evals) and card.md")
    if report_dir is not None and collector is not None:
        from anjian.training.report import write_eval_report

        try:
            index = write_eval_report(
                report,
                collector.images,
                detector.class_names,
                report_dir,
                confidence=report_confidence,
                per_class=gallery_size,
            )
        except (OSError, ValueError) as exc:
            raise fail(f"cannot write the report into {report_dir}: {exc}") from None
        _out.print(f"report: {index}")


def _calibrated_thresholds(report: EvalReport, json_out: Path | None) -> dict[str, dict[str, object]]:
    """Each class's operating threshold from this evaluation's PR curves; printed, and kept in the JSON."""

    from anjian.training.thresholds import calibrate_thresholds

    choices = calibrate_thresholds([report])
    if choices:
        how = (
            f"stamp them with `anjian export ... --thresholds {json_out}`"
            if json_out is not None
            else "add --json FILE to keep them for `anjian export ... --thresholds FILE`"
        )
        _out.print(
            escape(
                "calibrated thresholds (F2 for fire, smoke, fallen_person; F1 otherwise): "
                + ", ".join(f"{n} {c.threshold:.3f}" for n, c in choices.items())
                + f" ({how})"
            )
        )
    return {name: choice.to_dict() for name, choice in choices.items()}


def _report_collector(report_dir: Path | None) -> MatchCollector | None:
    """What keeps each image's matches for ``--report`` (``None`` without it); fails early without matplotlib."""
    if report_dir is None:
        return None
    from anjian.training.report import MatchCollector

    _require_train_extra("anjian eval --report", "matplotlib")
    return MatchCollector()


def _eval_conditions(
    model: str, detector: object, data: Path, split: str, class_map: Path | None, confidence: float
) -> dict[str, object]:
    """What an eval's figures depend on, for its JSON: model, input size, precision, threshold, data digest."""
    from anjian.datasets.hashing import dataset_digest

    info = getattr(detector, "info", None)
    is_yolo_set = data.is_dir() or data.suffix in (".yaml", ".yml")
    return {
        "model_spec": model,
        "imgsz": list(info.input_hw) if info is not None else None,
        "cpu_precision": str(getattr(detector, "precision", "fp32")),  # _load_scoring_detector: fp32
        "confidence_threshold": confidence,
        "split": split,
        "class_map": str(class_map) if class_map else None,
        "data_hash": dataset_digest(data / "data.yaml" if data.is_dir() else data) if is_yolo_set else None,
    }


def export_command(
    weights: Annotated[
        Path, typer.Argument(help="Trained ultralytics .pt (e.g. runs/train/weights/best.pt).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for model.onnx (and model-fp16.onnx, model.engine).")],
    imgsz: Annotated[int, typer.Option(help="Square input size.")] = 416,
    name: Annotated[str, typer.Option(help="Model name stamped into the file (events carry it).")] = "custom",
    version: Annotated[str, typer.Option(help="Version stamped into the file.")] = "0",
    half: Annotated[bool, typer.Option("--half/--no-half", help="Also write an fp16 ONNX.")] = True,
    free_input: Annotated[
        bool,
        typer.Option(
            "--free-input",
            help="Leave the input size free: each batch padded only to what its frames need (16:9 at 320x256 "
            "for 320, a band of grey kept each side); check the classes on non-square data first.",
        ),
    ] = False,
    tensorrt: Annotated[
        bool, typer.Option(help="Also build a TensorRT engine (needs an NVIDIA GPU).")
    ] = False,
    register: Annotated[
        bool,
        typer.Option(
            help="Register model.onnx as a new version of NAME in the site registry (not served until "
            "`anjian models promote NAME VERSION`)."
        ),
    ] = False,
    registry: RegistryOpt = None,
    site_config: SiteConfigOpt = None,
    thresholds: Annotated[
        Path | None,
        typer.Option(
            "--thresholds",
            help="Stamp each class's operating threshold into the model (rules without min_confidence use "
            "them): the JSON `anjian eval --json` wrote for these weights, or {class: score}.",
        ),
    ] = None,
    quantize_data: Annotated[
        list[Path] | None,
        typer.Option(
            "--quantize-data",
            help="With --register: also make the int8 model for CPUs, calibrated on this set's train split and "
            "kept only if AP50 on each set's val split stays within 1 point (repeat: one per source; see "
            "`anjian models quantize`).",
        ),
    ] = None,
    quantize_class_map: Annotated[
        Path | None,
        typer.Option(
            "--quantize-class-map", help="Maps the --quantize-data sets' class names onto the model's."
        ),
    ] = None,
) -> None:
    """Export weights to ONNX (fp32, dynamic batch; fp16; TensorRT on a GPU), optionally register (and quantise) them."""
    if quantize_data and not register:
        raise fail("--quantize-data quantises the registered version: add --register")
    _require_train_extra(
        "anjian export", "torch", "ultralytics", "onnx", *(("nncf",) if quantize_data else ())
    )
    from anjian.training.export import export_onnx, export_tensorrt, to_fp16
    from anjian.training.thresholds import load_thresholds_json

    with failing_on(FileNotFoundError, ValueError, ModelError):
        calibrated = load_thresholds_json(thresholds) if thresholds is not None else None
        onnx = export_onnx(
            weights,
            out / "model.onnx",
            imgsz=imgsz,
            name=name,
            version=version,
            thresholds=calibrated,
            free_input=free_input,
        )
    if calibrated:
        _out.print(f"thresholds: {calibrated}")
    _out.print(f"fp32: {onnx} ({onnx.stat().st_size / 1e6:.1f} MB)")
    if half:
        fp16 = to_fp16(onnx, out / "model-fp16.onnx")
        _out.print(f"fp16: {fp16} ({fp16.stat().st_size / 1e6:.1f} MB)")
    if tensorrt:
        engine = export_tensorrt(weights, out / "model.engine", imgsz=imgsz)
        _out.print(f"TensorRT: {engine}" if engine else "TensorRT: skipped (no NVIDIA GPU or no tensorrt)")
    if register:
        from anjian.models.registry import register_version

        meta = {"source_weights": str(weights), "imgsz": imgsz, "thresholds": calibrated or {}}
        record = weights.parent.parent / "anjian_train.json"
        if record.is_file():
            train = json.loads(record.read_text())
            meta.update(
                data_hash=train.get("data_hash"), training=train.get("config"), epochs=train.get("epochs")
            )
            meta["data_version"] = train.get("data_version")
        card = (
            f"# {name}\n\nExported from `{weights}` at imgsz {imgsz}. Add metrics with "
            f"`anjian eval --model builtin:{name}/VERSION --data … --record {name}/VERSION`.\n"
        ) + _card_data_line(meta)
        try:
            entry = register_version(name, onnx, meta, card, root=_site_registry(registry, site_config))
        except (FileExistsError, ValueError) as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise _registry_write_error(exc, _site_registry(registry, site_config)) from None
        _out.print(
            f"registered {name} version {entry.version} in {entry.directory}; not served until "
            f"`anjian models promote {name} {entry.version}`"
        )
        if quantize_data:
            models_quantize(
                name,
                entry.version,
                quantize_data,
                class_map=quantize_class_map,
                registry=_site_registry(registry, site_config),
            )


_LIST_COLUMNS = ("", "model", "version", "from", "created", "mAP50", "AP50 per set", "promoted for", "data")


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="One model (default: all).")] = None,
    registry: RegistryOpt = None,
    site_config: SiteConfigOpt = None,
) -> None:
    """Versions of the site registry and the shipped ones: where from, mAP50 per evaluated set, scopes.

    * marks the version builtin:NAME serves; "promoted for" lists the scopes (builtin:NAME@SCOPE)
    pinned to a version. mAP50 is the version's own figure, else the mean over the sets it was
    evaluated on (the release's validation splits and every `anjian eval --record`).
    """
    from anjian.models.registry import builtin_model_names, dangling_pointers, list_versions, site_registry
    from anjian.training.eval_record import ap50_by_data

    root = _site_registry(registry, site_config)
    names = [name] if name else builtin_model_names(root)
    table = Table(title=f"site registry {site_registry(root)}, then the models shipped with anjian")
    for column in _LIST_COLUMNS:
        table.add_column(column)
    dangling: list[str] = []
    with failing_on(ModelError):
        for model in names:
            dangling += _list_dangling(table, model, dangling_pointers(model, root=root))
            for v in list_versions(model, root=root):
                by_data = ap50_by_data(v.meta)
                map50 = v.meta.get("map50")
                if not isinstance(map50, int | float):
                    map50 = sum(by_data.values()) / len(by_data) if by_data else None
                table.add_row(
                    "*" if v.is_promoted else "",
                    model,
                    v.version,
                    "shipped" if v.is_shipped else "site",
                    v.created_at,
                    _num(map50),
                    ", ".join(f"{data} {value:.3f}" for data, value in by_data.items()) or "–",
                    ", ".join(v.scopes),
                    str(v.meta.get("data_hash") or "")[:19],
                )
    _out.print(table)
    for line in dangling:
        _err.print(f"[red]{escape(line)}[/red]")


def _list_dangling(table: Table, model: str, pointers: dict[str | None, str]) -> list[str]:
    """A "!" row per pointer of ``model`` naming a missing version; the lines that explain them."""
    lines = []
    for scope, version in sorted(pointers.items(), key=lambda item: item[0] or ""):
        spec = f"builtin:{model}{'@' + scope if scope else ''}"
        table.add_row("!", model, version, "missing", "–", "–", "–", scope or "", "")
        lines.append(
            f"{spec}: promoted version {version} of {model} is missing (folder deleted?): running pipelines "
            "keep their model and a restart fails; promote another or restore it"
        )
    return lines


def _site_detector_config(site_config: Path | None, registry: Path | None) -> DetectorConfig:
    """How the site runs its detector (its ``model:`` section; the defaults without --config), in ``registry``.

    Raises:
        typer.Exit: The site config cannot be read or its ``model:`` section is invalid.
    """
    import yaml
    from pydantic import ValidationError

    from anjian.models.config import DetectorConfig

    if site_config is None:
        return DetectorConfig(registry=registry)
    try:
        raw = yaml.safe_load(site_config.read_text(encoding="utf-8"))
        section = raw.get("model") if isinstance(raw, dict) else None
        config = DetectorConfig.model_validate(section or {})
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"{site_config}: cannot read the site config: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"model.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(f"{site_config}: {problems}") from None
    return config.model_copy(update={"registry": registry})


def _serving_problem(name: str, version: str, config: DetectorConfig) -> str | None:
    """Why ``NAME/VERSION`` cannot serve with ``config`` (it does not load, or fails a test detection), else ``None``.

    The checks a running pipeline makes before it swaps to a promoted model, and the loader a restart
    uses: a version refused here would be refused there, or take the service down at its next start.
    """
    from anjian.models.loader import load_detector, probe_detector

    try:
        detector = load_detector(f"builtin:{name}/{version}", config)
    except ModelError as exc:
        return str(exc)
    problem = probe_detector(detector)
    return f"it loads but cannot run: {problem}" if problem else None


@models_app.command("promote")
def models_promote(
    name: ModelNameArg,
    version: Annotated[str, typer.Argument(help="Version to serve.")],
    scope: Annotated[str | None, typer.Option(help="Only for builtin:NAME@SCOPE (a site or camera).")] = None,
    registry: RegistryOpt = None,
    site_config: SiteConfigOpt = None,
    is_forced: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote even a version that does not load or fails its test detection (with a warning): "
            "running pipelines keep their model, and a restart fails.",
        ),
    ] = False,
) -> None:
    """Serve VERSION as builtin:NAME; running pipelines swap to it at their next check.

    VERSION may be the site's or a shipped one. Promoting the promoted version changes nothing.
    The version is loaded first (with the --config site's model settings) and must detect on a
    blank frame: a broken one is refused unless --force.
    """
    from anjian.models.registry import promote, resolve_model_path

    registry = _site_registry(registry, site_config)
    label = f"{name}{'@' + scope if scope else ''}"
    config = _site_detector_config(site_config, registry)
    try:
        resolve_model_path(f"builtin:{name}/{version}", root=registry)  # no such version: the registry's word
        problem = _serving_problem(name, version, config)
        if problem is not None and not is_forced:
            raise fail(f"{name}/{version} cannot serve, not promoted: {problem} (--force promotes it anyway)")
        if problem is not None:
            warning = f"{name}/{version} cannot serve, promoted anyway (--force): {problem}"
            _err.print(f"[yellow]warning: {escape(warning)}[/yellow]")
        promotion = promote(name, version, scope=scope, root=registry)
    except (ModelError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise _registry_write_error(exc, registry) from None
    previous = promotion.previous
    if not promotion.is_changed:
        _out.print(f"{label}: version {version} is promoted already; nothing changed")
        return
    if previous == version:  # a scope that followed the model's promotion is now pinned
        _out.print(f"{label}: pinned to {version} (it followed {name}'s promoted version {version})")
        return
    _out.print(f"{label}: {previous or '(none)'} -> {version}")
    _show_promotion_comparison(name, version, previous, registry)


@models_app.command("rollback")
def models_rollback(
    name: ModelNameArg,
    scope: Annotated[str | None, typer.Option(help="Roll back builtin:NAME@SCOPE only.")] = None,
    registry: RegistryOpt = None,
    site_config: SiteConfigOpt = None,
) -> None:
    """Undo the last promotion: A, B, C promoted in turn roll back to B, then to A, then to the shipped version."""
    from anjian.models.registry import undo_promotion

    registry = _site_registry(registry, site_config)
    try:
        undone = undo_promotion(name, scope=scope, root=registry)
    except (ModelError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise _registry_write_error(exc, registry) from None
    _out.print(
        f"{name}{'@' + scope if scope else ''}: rolled back to {undone.version} (from {undone.previous})"
    )


def _load_scoring_detector(spec: str, confidence: float, registry: Path | None) -> Detector:
    """The detector ``eval`` and ``compare`` score: low confidence floor, CPU, fp32, resolved in ``registry``.

    fp32 even where the version has an accepted int8 model or the CPU computes bf16 (what
    ``model.cpu_precision: auto`` would run): versions are compared on their own file, and a
    figure or calibrated threshold does not depend on the CPU that measured it; the int8 model's
    figures are in its ``int8`` record. A second stage's crop model resolves in ``registry`` too.
    """
    from anjian.models.config import DetectorConfig
    from anjian.models.loader import load_detector
    from anjian.models.registry import resolve_model_path

    path = str(resolve_model_path(spec, root=registry))
    config = DetectorConfig(
        path=path, confidence_threshold=confidence, device="cpu", cpu_precision="fp32", registry=registry
    )
    return load_detector(path, config)


def _delta_cell(value: float) -> str:
    """A signed difference, green when A is better, red when worse (dash when undefined)."""
    if math.isnan(value):
        return "–"
    colour = "green" if value > 0.005 else "red" if value < -0.005 else "default"
    return f"[{colour}]{value:+.3f}[/{colour}]"


def _print_comparison(comparison: Comparison) -> None:
    """One table per data set: each class's AP50, AP50-95, P and R for A and B, and A - B."""

    from anjian.training.compare import METRICS

    labels = {"ap50": "AP50", "ap50_95": "AP50-95", "precision": "P", "recall": "R"}
    a, b = comparison.a.label, comparison.b.label
    for d in comparison.data:
        version = f", data version {d.data_version}" if d.data_version else ""
        table = Table(title=escape(f"A = {a}, B = {b} on {d.data} ({d.images} images{version})"))
        for column in ("class (instances)", "", "A", "B", "A - B"):
            table.add_column(column, justify="left" if column in ("class (instances)", "") else "right")
        for c in d.classes:
            for k, metric in enumerate(METRICS):
                table.add_row(
                    escape(f"{c.name} ({c.instances})") if k == 0 else "",
                    labels[metric],
                    _num(c.a.get(metric) if c.a else None),
                    _num(c.b.get(metric) if c.b else None),
                    _delta_cell(c.delta(metric)),
                    end_section=k == len(METRICS) - 1,
                )
        for k, metric in enumerate(("ap50", "ap50_95")):
            mean_a, mean_b = d.common_mean(metric, "a"), d.common_mean(metric, "b")
            table.add_row(
                "mean, shared classes" if k == 0 else "",
                labels[metric],
                _num(mean_a),
                _num(mean_b),
                _delta_cell(mean_a - mean_b),
            )
        _out.print(table)


@models_app.command("compare")
def models_compare(
    model_a: Annotated[
        str,
        typer.Argument(help="A, the candidate: an .onnx or .pt file, builtin:NAME or builtin:NAME/VERSION."),
    ],
    model_b: Annotated[str, typer.Argument(help="B, the model A is compared with (same forms).")],
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="YOLO data.yaml to score both on; repeat it to compare on several sets at once "
            "(in-source val splits and cross-source sets).",
        ),
    ],
    split: Annotated[str, typer.Option(help="Split of each set to score.")] = "val",
    class_map: Annotated[
        Path | None, typer.Option("--class-map", help="Maps the data's class names onto the models'.")
    ] = None,
    confidence: Annotated[
        float, typer.Option(help="Lowest score kept (keep it low so AP covers the whole curve).")
    ] = 0.001,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the comparison as JSON here.")
    ] = None,
    is_recording: Annotated[
        bool,
        typer.Option(
            "--record/--no-record",
            help="Keep the result in each registry version's meta.json (comparisons) and card.md.",
        ),
    ] = True,
    registry: RegistryOpt = None,
    site_config: SiteConfigOpt = None,
    allow_label_errors: AllowLabelErrorsOpt = False,
) -> None:
    """Side by side before promoting: per-class AP50, AP50-95, P and R of A and B on each set, and A - B."""
    from anjian.datasets.classmap import load_class_map
    from anjian.training.compare import ModelRef, compare_models, load_compared_data
    from anjian.training.comparison_record import record_comparison, registry_version_of
    from anjian.training.label_errors import check_label_errors

    registry = _site_registry(registry, site_config)
    found = [registry_version_of(spec, root=registry) for spec in (model_a, model_b)]
    if found[0] is not None and found[1] is not None and found[0][:2] == found[1][:2]:
        raise fail(f"A and B are the same registry version ({found[0][0]}/{found[0][1]})")
    with failing_on(DatasetError, ModelError, ValueError):
        mapping = load_class_map(class_map) if class_map else None
        sides = []
        for spec, where in zip((model_a, model_b), found, strict=True):
            detector = _load_scoring_detector(spec, confidence, registry)
            ref = ModelRef(spec, detector.version, where[0] if where else None, where[1] if where else None)
            sides.append((ref, detector))
        sets = [load_compared_data(path, progress=rich_progress) for path in data]
        found_errors = [
            check_label_errors(s.dataset, split, is_allowed=allow_label_errors, data=s.path) for s in sets
        ]
        comparison, _ = compare_models(
            sides[0],
            sides[1],
            sets,
            split=split,
            class_map=mapping,
            progress=rich_progress,
            settings={"confidence": confidence, "class_map": str(class_map) if class_map else None},
        )
    _warn_label_errors([summary for summary in found_errors if summary])
    _print_comparison(comparison)
    if json_out:
        json_out.write_text(json.dumps(comparison.to_dict(), indent=2) + "\n")
    if is_recording:
        for where, view in zip(found, (comparison, comparison.swapped()), strict=True):
            if where is not None:
                folder = record_comparison(where[0], where[1], view, root=registry)
                _out.print(
                    f"recorded with {where[0]}/{where[1]} in {folder}: meta.json (comparisons) and card.md"
                )


_QAT_DATA_HELP = (
    "YOLO data.yaml of the set the model was trained on: enables the quantisation-aware try (the int8 model "
    "fine-tuned to match the float one on that set's train images)."
)


@models_app.command("quantize")
def models_quantize(
    name: ModelNameArg,
    version: Annotated[str, typer.Argument(help="Version to quantise (its model.onnx).")],
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="YOLO data.yaml whose train split calibrates and whose val split judges; repeat it, one "
            "per source (the sets the model was trained on).",
        ),
    ],
    class_map: ClassMapOpt = None,
    cross_data: CrossDataOpt = None,
    calibration_images: Annotated[
        int, typer.Option(min=1, max=10000, help="Calibration images in all, drawn evenly from the sets.")
    ] = 300,
    seed: Annotated[int, typer.Option(help="Seeds the draw of calibration images.")] = 0,
    max_source_drop: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Accept only if each source's mean AP50 falls at most this."),
    ] = 0.01,
    max_class_drop: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Also hold each class's AP50 to this fall.")
    ] = None,
    max_cross_drop: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Accept only if each --cross-data source's AP50 falls at most this."
        ),
    ] = 0.015,
    start_at: Annotated[
        str | None,
        typer.Option(
            help="Skip the mixed-precision tries before this one (decode, head, qat, accuracy-control), e.g. "
            "when an earlier run rejected them."
        ),
    ] = None,
    qat_data: Annotated[Path | None, typer.Option("--qat-data", help=_QAT_DATA_HELP)] = None,
    qat_epochs: Annotated[
        float, typer.Option(min=0.01, max=20.0, help="QAT: passes over the train split.")
    ] = DEFAULT_QAT_EPOCHS,
    qat_lr: Annotated[float, typer.Option(min=1e-8, max=1e-2, help="QAT: peak learning rate (Adam).")] = (
        DEFAULT_QAT_LR
    ),
    qat_balance_sources: Annotated[
        bool,
        typer.Option(
            "--qat-balance-sources",
            help="QAT: repeat the train images of each source smaller than the mean (a folder per source).",
        ),
    ] = False,
    registry: RegistryOpt = None,
    site_config: SiteConfigOpt = None,
) -> None:
    """int8 for CPUs: NNCF quantisation, kept only if AP50 on every val split (and unseen source) holds.

    The accepted model (OpenVINO IR) goes beside model.onnx and runs by default on CPUs without native
    bf16; the table goes into meta.json and the card either way. Needs the train extra (nncf).
    """
    _require_train_extra(
        "anjian models quantize", "nncf", *(("torch", "ultralytics", "onnx") if qat_data is not None else ())
    )
    from anjian.training.qat import QatRecipe
    from anjian.training.quantize import FLOAT_LADDER, quantize_and_record

    if qat_data is not None and not qat_data.is_file():
        raise fail(f"--qat-data {qat_data}: no such data.yaml")
    qat = (
        QatRecipe(qat_data, epochs=qat_epochs, lr=qat_lr, is_source_balanced=qat_balance_sources)
        if qat_data is not None
        else None
    )
    names = [scope.name for scope in FLOAT_LADDER]
    if start_at is not None and start_at not in names:
        raise fail(f"--start-at must be one of {names}, got {start_at!r}")
    ladder = FLOAT_LADDER[names.index(start_at) if start_at else 0 :]
    root = _site_registry(registry, site_config)
    with failing_on(DatasetError, ModelError, ValueError, PermissionError):
        record = quantize_and_record(
            name,
            version,
            data,
            class_map=class_map,
            root=root,
            cross_data=cross_data or (),
            calibration_count=calibration_images,
            seed=seed,
            max_source_drop=max_source_drop,
            max_class_drop=max_class_drop,
            max_cross_drop=max_cross_drop,
            ladder=ladder,
            qat=qat,
            progress=rich_progress,
            report=_out.print,
        )
    from anjian.training.int8_gate import Int8Verdict

    verdict = Int8Verdict.from_dict(record["gate"])
    _out.print(verdict.markdown())
    if record["status"] == "accepted":
        _out.print(
            f"{name}/{version}: int8 accepted ({record['bytes'] / 1e6:.1f} MB); "
            "CPUs without native bf16 run it by default"
        )
    else:
        raise fail(f"{name}/{version}: int8 rejected, CPUs keep fp32: " + "; ".join(verdict.failures))


@models_app.command("free-input")
def models_free_input(
    name: ModelNameArg,
    version: Annotated[
        str, typer.Argument(help="Version whose weights to register again with the input size free.")
    ],
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="YOLO data.yaml whose val split scores the freed model (and judges its int8 again); repeat it, "
            "one per source.",
        ),
    ],
    class_map: ClassMapOpt = None,
    cross_data: CrossDataOpt = None,
    registry: RegistryOpt = None,
    site_config: SiteConfigOpt = None,
) -> None:
    """Register a version again with its input size free: 16:9 cameras run at 320x256, not the padded square.

    Same weights; the fp32 model is scored at both shapes, an accepted int8 model is judged again.
    Square images run at the square either way: give non-square sets (--cross-data) to see what changes.
    The new version is not promoted. Needs the train extra (onnx).
    """
    _require_train_extra("anjian models free-input", "onnx")
    from anjian.models.registry import resolve_model_path
    from anjian.training.free_input import FreeInputError
    from anjian.training.free_input_version import register_free_input_version
    from anjian.training.quantize import load_sources

    root = _site_registry(registry, site_config)
    try:
        # an unknown version is named before any data is read
        resolve_model_path(f"builtin:{name}/{version}", root=root)
        sources = load_sources(data, class_map, cross_data=cross_data or ())
        registered = register_free_input_version(name, version, sources, root=root, report=_out.print)
    except (DatasetError, ModelError, FreeInputError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise _registry_write_error(exc, root) from None
    _out.print(
        f"{name}/{registered.version}: {name}/{version} with its input size free, registered (not promoted); "
        f"its card: {registered.directory / 'card.md'}"
    )


@models_app.command("calibrate")
def models_calibrate(
    name: ModelNameArg,
    version: Annotated[str, typer.Argument(help="Version whose thresholds to calibrate (its model.onnx).")],
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="YOLO data.yaml whose val split is scored; repeat it, one per source (each class's PR curve is "
            "pooled over them).",
        ),
    ],
    class_map: ClassMapOpt = None,
    register: Annotated[
        bool,
        typer.Option(
            help="Register the model with these thresholds stored in it as a new version (same weights; not "
            "served until `anjian models promote NAME VERSION`)."
        ),
    ] = False,
    new_version: Annotated[
        str | None,
        typer.Option("--new-version", help="Number of the new version (default: the next free one)."),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the thresholds chosen here (what `anjian export --thresholds` reads)."
        ),
    ] = None,
    registry: RegistryOpt = None,
    site_config: SiteConfigOpt = None,
    allow_label_errors: AllowLabelErrorsOpt = False,
) -> None:
    """Each class's operating threshold from the PR curves of labelled val splits (F2 for fire, smoke, falls).

    The rules default to the thresholds stored in the model file; a model without them runs the rules'
    hand-set scores. With --register the calibrated copy becomes a new version beside the old one.
    """
    if register:  # before the scoring: the new version's file is written with onnx
        _require_train_extra("anjian models calibrate --register", "onnx")
    from anjian.training.recalibrate import recalibrate_version

    try:
        result = recalibrate_version(
            name,
            version,
            data,
            class_map=class_map,
            root=_site_registry(registry, site_config),
            register=register,
            new_version=new_version,
            progress=rich_progress,
            allow_label_errors=allow_label_errors,
        )
    except (DatasetError, ModelError, ValueError, FileExistsError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise _registry_write_error(exc, _site_registry(registry, site_config)) from None
    _warn_label_errors(result.label_errors)
    table = Table(title=f"{result.model}: thresholds from the val splits of {', '.join(result.sources)}")
    for column in ("class", "before", "threshold", "beta", "precision", "recall", "instances"):
        table.add_column(column)
    for class_name, choice in result.choices.items():
        before = result.previous.get(class_name)
        table.add_row(
            class_name,
            "none" if before is None else f"{before:.3f}",
            f"{choice.threshold:.3f}",
            f"{choice.beta:g}",
            _num(choice.precision),
            _num(choice.recall),
            str(choice.instances),
        )
    _out.print(table)
    if json_out is not None:
        thresholds = {n: c.to_dict() for n, c in result.choices.items()}
        record = {"model": result.model, "sources": list(result.sources), "thresholds": thresholds}
        json_out.write_text(json.dumps(record, indent=2) + "\n")  # export --thresholds reads it
    if result.registered is not None:
        _out.print(
            f"registered {name} version {result.registered.version} in {result.registered.directory} (the weights "
            f"of {result.model} with these thresholds); not served until "
            f"`anjian models promote {name} {result.registered.version}`"
        )


def _show_promotion_comparison(name: str, version: str, current: str | None, registry: Path | None) -> None:
    """After a promotion: the stored comparison with the version it replaced, or how to make one."""
    from anjian.training.comparison_record import comparison_for_promotion

    if current is None or current == version:
        return
    comparison = comparison_for_promotion(name, version, current, root=registry)
    if comparison is None:
        _out.print(
            f"{name}/{version} was never compared with {name}/{current}: "
            f"anjian models compare builtin:{name}/{version} builtin:{name}/{current} --data …"
        )
        return
    _print_comparison(comparison)


@dataset_app.command("fire-clips")
def dataset_fire_clips(
    out: Annotated[
        Path, typer.Option(help="Folder for the clips, site.yaml and clips.yaml (outside the repository).")
    ],
    frames: Annotated[
        Path, typer.Option(help="Frames of real fire videos, named <video><frame>_<ext>.rf.<hash>.jpg.")
    ] = Path("../shared/data/fire_continuous"),
    videos: Annotated[
        Path, typer.Option(help="Folder of the people-only and fall videos the spec adds.")
    ] = Path("../shared/data/videos"),
    min_frames: Annotated[int, typer.Option(min=2, help="Leave out videos with fewer frames.")] = 20,
    max_frames: Annotated[int, typer.Option(min=2, help="Frames per clip at most (the first ones).")] = 50,
    fps: Annotated[
        int, typer.Option(min=1, max=30, help="Clip frame rate, also the eval camera's analysis rate.")
    ] = 5,
    size: Annotated[int, typer.Option(min=64, max=1920, help="Square frame size in pixels (even).")] = 448,
    people_frames: Annotated[
        Path | None,
        typer.Option(
            help="A staged people set of dense video frames (ur_fall): its recordings become real-time clips, "
            "daily activities expecting nothing, falls one fallen_person."
        ),
    ] = None,
    people_min_frames: Annotated[
        int, typer.Option(min=2, help="Leave out people recordings with fewer frames.")
    ] = 60,
) -> None:
    """Real fire clips from consecutive frames of each video, and an eval-events spec (fire, people, falls)."""
    from anjian.training.fire_clips import build_fire_clips, build_people_clips, write_eval_set

    with failing_on(FileNotFoundError, ValueError):
        clips = build_fire_clips(
            frames, out, min_frames=min_frames, max_frames=max_frames, fps=fps, size_wh=(size, size)
        )
        people = (
            build_people_clips(
                people_frames,
                out / "people",
                min_frames=people_min_frames,
                max_frames=max(people_min_frames, 300),
                size_wh=(size, size),
            )
            if people_frames is not None
            else []
        )
    if not clips:
        raise fail(f"no video in {frames} has {min_frames} frames or more")
    site, spec = write_eval_set(clips, out, videos_dir=videos, people_clips=people, fps=fps)
    for clip in [*clips, *people]:
        fall = f", falls at {clip.fall_start_s:.1f} s" if clip.fall_start_s is not None else ""
        _out.print(
            f"{clip.path.name}: {len(clip.frame_numbers)} frames, {clip.seconds:.1f} s ({clip.video}{fall})"
        )
    _out.print(f"{len(clips)} fire clips, {len(people)} people clips; spec {spec}, site {site}")
    _out.print(
        f"score a model: anjian eval-events {spec} --config {site} --model builtin:anjian-n --json out.json"
    )


@dataset_app.command("label-export")
def dataset_label_export(
    source: Annotated[
        Path,
        typer.Argument(
            help="YOLO data.yaml (or its folder) of the images to label: a harvest's to_label, any set."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder to write for CVAT and Label Studio.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Pre-label with this model: an .onnx or .pt file, builtin:NAME or builtin:NAME/VERSION "
            "(default: the set's own labels are the pre-labels)."
        ),
    ] = None,
    confidence: Annotated[
        float, typer.Option(min=0.01, max=0.99, help="With --model: the lowest score of a pre-label.")
    ] = 0.25,
    split: Annotated[str | None, typer.Option(help="Only this split (default: every image, once).")] = None,
    image_url: Annotated[
        str,
        typer.Option(
            help="Label Studio's URL of each image, {name} standing for its file name (default: Label "
            "Studio's local files, with the export folder as LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)."
        ),
    ] = "/data/local-files/?d=images/{name}",
    registry: RegistryOpt = None,
) -> None:
    """Images to label with pre-labels, for CVAT (CVAT for images 1.1) and Label Studio (JSON tasks)."""
    from anjian.datasets.labelling import tasks_from_set, write_labelling_export
    from anjian.datasets.yolo import load_yolo_set
    from anjian.training.prelabel import predict_label_boxes

    with failing_on(DatasetError, ModelError, ValueError, OSError):
        dataset = load_yolo_set(source, progress=rich_progress)
        predictions = None
        class_names: tuple[str, ...] = dataset.class_names
        version = ""
        if model is not None:
            from anjian.models.config import DetectorConfig
            from anjian.models.loader import load_detector
            from anjian.models.registry import resolve_model_path

            path = str(resolve_model_path(model, root=registry))
            detector = load_detector(
                path, DetectorConfig(path=path, confidence_threshold=confidence, device="cpu")
            )
            wanted = {im.image for im in dataset.images if split is None or im.split == split}
            predictions = predict_label_boxes(detector, sorted(wanted), progress=rich_progress)
            class_names = tuple(detector.class_names[k] for k in sorted(detector.class_names))
            version = detector.version
        tasks = tasks_from_set(dataset, predictions=predictions, split=split, progress=rich_progress)
        manifest = write_labelling_export(
            tasks,
            class_names,
            out,
            model=version,
            image_url=image_url,
            task_name=dataset.name,
            progress=rich_progress,
        )
    boxes = sum(len(t.boxes) for t in tasks)
    _out.print(
        f"{len(tasks)} images, {boxes} pre-labels ({version or 'the set’s own labels'}) -> {out}: "
        f"CVAT {out / 'cvat' / 'annotations.xml'}, Label Studio {out / 'label_studio' / 'tasks.json'}; "
        f"steps in {out / 'README.md'}, manifest {manifest.name}"
    )


def _card_data_line(meta: dict[str, object]) -> str:
    """The model card's line naming the training data: its named dataset version, if any, and digest."""
    digest, version = meta.get("data_hash"), meta.get("data_version")
    if not digest:
        return ""
    if isinstance(version, dict) and version.get("name"):
        how = "" if version.get("is_exact") else f" ({version.get('derived_by')})"
        return f"\nTrained on dataset version `{version['name']}`{how}, digest `{digest}`.\n"
    return f"\nTrained on data with digest `{digest}` (not a named dataset version).\n"
