"""The recipe of anjian's default detector ``anjian-n``, step by step and resumable.

``anjian-n`` is a YOLOv8n fine-tuned from COCO on the licensed public sets (``../shared/data``
and the three staged by ``../shared/data/extra/stage.py``), merged into the classes the six
behaviours need::

    python -m anjian.training.anjian_n prepare --work W [--extra-root ~/anjian-data] [--holdout fire_smoke_cctv ...]
    nice -n 19 python -m anjian.training.anjian_n train --work W      # resumable: add --resume
    python -m anjian.training.anjian_n negatives --work W --model builtin:anjian-n  # optional: fire look-alikes
    python -m anjian.training.anjian_n zoom --work W --zoom-class fire  # optional: fires filling the view
    python -m anjian.training.anjian_n crosseval --work W             # held-out sources: model vs v1 vs teacher
    python -m anjian.training.anjian_n crosseval --work W --snapshot  # the same, mid-run, into W/snapshots/epoch-N
    python -m anjian.training.anjian_n finish --work W --version 2    # evaluate, export, register

Run ``train`` at the lowest priority of the whole machine: where the kernel groups processes by
session (autogroup, the default on desktop and server kernels), ``nice`` ranks a process only
inside its own session, so a training started with ``setsid`` or from another terminal still takes
a fair share from everything else; ``echo 19 > /proc/self/autogroup`` in the script that starts it
lowers the whole session (measured here: the pipeline bench lost 45% of its frames to a ``nice -n 19``
training until its autogroup was niced too).
Train one arm at a time: two trainings side by side on a 2-core machine each ran at ~3 s a batch where
one alone runs at ~0.5 s (each torch takes every core; they fight), so a second arm waits its turn
(``kill -STOP`` its process, ``kill -CONT`` when the first is done) rather than running beside it.

``prepare`` merges the training sources with ``datasets/maps/anjian.yaml``, lets the COCO
teacher fill in the ``person`` boxes the cigarette, fire and pallet sets never label
(:mod:`anjian.training.complete_labels`; ``--no-pseudo-labels`` for the ablation), writes the merged
YOLO set with one sub-folder per source (so each source's val split can be evaluated alone),
and builds the COCO-initialised checkpoint (:mod:`anjian.training.finetune_init`).
``--fill-smoke-from builtin:anjian-n/2`` then lets an anjian model fill the smoke ``fire_continuous``
shows and never labels (:class:`TeacherFill`; COCO knows no smoke).

``negatives`` (optional, before ``train``) adds fire hard negatives: the training images that
certainly show no fire (fire sources' frames without a fire box, and the sources in
:data:`FIRE_FREE_SOURCES`) that a model scores highest for fire are written into the training
set again (:mod:`anjian.training.hard_negatives`).

``zoom`` (optional, before ``train``) adds crops in which a class's box fills 40-95% of the view
(:mod:`anjian.training.zoom_crops`): mosaic shows every object at half its size, so without them
a flame filling the camera's view is one the model has never seen.

**Generalisation, not fit.** ``--holdout SOURCE`` keeps a whole source out of training; its
every image (train and val) is written to ``W/holdout`` and ``crosseval`` scores the model
there, next to the registered model and the COCO teacher. The recipe's variants are chosen
by those cross-source figures; the shipped model then trains on every source.

Every class the behaviours need has two sources (fire: ``fire_continuous`` / ``fire_smoke_cctv``;
fallen_person: ``ur_fall`` / ``fall_hospital``; cigarette: ``smoking_photos`` / ``cigarette``;
person: ``cctv_person`` / ``forklift_person`` and ``fall_hospital``), so two arms of the same recipe,
each holding out one side of every pair, score each class on each of its sources::

    prepare --work A --holdout fire_continuous ur_fall cctv_person smoking_photos ...
    prepare --work B --holdout fire_smoke_cctv fall_hospital cigarette forklift_person ...
    finish --work FULL --crosseval A/crosseval.json B/crosseval.json   # the card shows both
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field

from anjian.datasets.classmap import load_class_map
from anjian.datasets.labels import DetectionSet, ProgressFn, no_progress, video_key
from anjian.datasets.merge import merge_sets
from anjian.datasets.split import split_by_group
from anjian.datasets.yolo import load_yolo_set, write_yolo_set
from anjian.training.train import TrainConfig, train_detector

__all__ = [
    "EXTRA_SOURCES",
    "FIRE_FREE_SOURCES",
    "SOURCES",
    "AnjianNRecipe",
    "TeacherFill",
    "add_fire_negatives",
    "main",
    "prepare",
    "train",
    "training_set",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
CLASS_MAP = REPO_ROOT / "datasets" / "maps" / "anjian.yaml"
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
COCO_WEIGHTS = Path("weights") / "coco_yolov8n_int8.onnx"

SOURCES: dict[str, str] = {
    "fall_hospital": 'Roboflow "hospital_bed-qt6yg" v3, CC BY 4.0',
    "fire_smoke_cctv": 'Roboflow "fire-wrpgm" v8 (Cctv-fire), CC BY 4.0',
    "cigarette": 'Roboflow "smoking-detection-wpb75" v3, CC BY 4.0',
    "forklift_person": 'Roboflow "forklift-dsitv" v5, CC BY 4.0',
    "pallet": 'Roboflow "palet-zsfnn" v1, CC BY 4.0',
    "fire_continuous": 'Roboflow "continuous_fire" v6, CC BY 4.0',
}
"""Source folder under the data root (``../shared/data``) to its origin and licence."""

EXTRA_SOURCES: dict[str, str] = {
    "ur_fall": 'Roboflow "ur-fall-detection-dataset" v1 (UR Fall Detection frames), CC BY 4.0',
    "cctv_person": 'Roboflow "cctv-vh5b6" v2 (overhead indoor CCTV), CC BY 4.0',
    "smoking_photos": "Huyhoclaptrinh/smoking-detection (web and film photos), MIT",
}
"""Sources staged by ``../shared/data/extra/stage.py`` under the extra root, with origin and licence."""

DEFAULT_EXTRA_ROOT = Path.home() / "anjian-data"

FIRE_FREE_SOURCES: tuple[str, ...] = ("forklift_person", "pallet", "fall_hospital", "cctv_person", "ur_fall")
"""Sources that never show fire (warehouses, hospital rooms, offices): their look-alikes are fire hard
negatives. The smoking sets are not among them: a lighter's flame is fire, unlabelled there."""


FRAME_NUMBERED_SOURCES: tuple[str, ...] = ("fire_continuous", "ur_fall")
"""Sources naming a video's frames ``<video><frame>_png`` (``CarOne123_png``): re-drawn by that video name."""

MULTI_CAMERA_SOURCES: tuple[str, ...] = ("ur_fall",)
"""Sources filming each scene with several cameras (``fall-01-cam0-rgb-``, ``fall-01-cam1-rgb-``): re-drawn
by recording, both views on one side."""


class TeacherFill(BaseModel):
    """A second teacher filling a class some sources show and never label (after COCO's people).

    ``fire_continuous`` labels fire only, yet its videos are full of smoke: trained as background,
    that smoke pulled anjian-n 3's smoke scores down (its calibrated smoke threshold fell to 0.059
    from anjian-n 2's 0.361; anjian-n 2 finds smoke at >= 0.5 on 13 of 200 of those frames).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: str = Field(description="The teacher: a model file or builtin:NAME/VERSION.")
    classes: dict[str, str] = Field(description="The set's class to the teacher's class it is filled from.")
    sources: tuple[str, ...] = Field(
        min_length=1, description="The sources it fills: the footage it is trusted on."
    )
    min_confidence: float = Field(0.5, gt=0, lt=1, description="Teacher boxes scoring below are ignored.")


class AnjianNRecipe(BaseModel):
    """Settings of the anjian-n recipe, written to ``<work>/recipe.json`` by ``prepare``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_root: Path = Field(DEFAULT_DATA_ROOT, description="Folder holding the source sets and weights/.")
    is_pseudo_labelled: bool = Field(True, description="Fill in unlabelled persons with the COCO teacher.")
    teacher_confidence: float = Field(0.5, gt=0, lt=1, description="Teacher boxes scoring below are ignored.")
    epochs: int = Field(8, ge=1, le=1000, description="Training epochs.")
    imgsz: int = Field(320, ge=64, le=1280, multiple_of=32, description="Training input size.")
    freeze: int = Field(
        10, ge=0, le=22, description="Leading layers kept at their COCO weights (10: the whole backbone)."
    )
    fraction: float = Field(1.0, gt=0, le=1, description="Share of the train split used each run.")
    batch: int = Field(16, ge=1, le=256, description="Images per batch.")
    workers: int = Field(2, ge=0, le=16, description="Dataloader workers.")
    seed: int = Field(0, ge=0, description="Seed.")
    close_mosaic: int = Field(2, ge=0, description="Epochs at the end without mosaic.")
    lr0: float = Field(
        0.002, gt=0, lt=1, description="Initial learning rate (fine-tuning: lower than from scratch)."
    )
    extra_root: Path | None = Field(
        None,
        description="Folder of the staged extra sets (ur_fall, cctv_person, smoking_photos); None: not used.",
    )
    holdout: tuple[str, ...] = Field(
        (), description="Sources kept out of training and scored whole by crosseval (generalisation)."
    )
    train_every: dict[str, int] = Field(
        default_factory=lambda: {"ur_fall": 2},
        description="Keep every k-th train image of a source whose frames come from a few videos (near duplicates).",
    )
    resplit: dict[str, Annotated[float, Field(gt=0, le=0.5)]] = Field(
        default_factory=dict,
        description="Sources whose own train/val split is drawn again with this val share, each video "
        "(``video_key``) on one side. The command line re-draws fire_smoke_cctv at 0.2, fire_continuous "
        "at 0.3 and ur_fall at 0.2 (by recording, both cameras) unless told otherwise: the first ships 47 val "
        "frames, every one from a video whose neighbouring frames are in train (18 fire boxes, and a measure "
        "of memory); the second has frames of 29 of its 39 training videos in val; the third cuts 59 of its "
        "70 recordings (both cameras of a fall or a daily activity) across train and val.",
    )
    patience: int = Field(6, ge=1, description="Stop after this many epochs without a better fitness.")
    augment: dict[str, float] = Field(
        default_factory=lambda: {"hsv_h": 0.015, "hsv_s": 0.5, "hsv_v": 0.4, "scale": 0.5, "mosaic": 1.0},
        description="Ultralytics augmentation settings (colour jitter as CCTV white balance drifts, scale for "
        "small and frame-filling objects).",
    )

    teacher_fills: tuple[TeacherFill, ...] = Field(
        (),
        description="Further teachers, run after the COCO teacher, each filling its classes in its sources.",
    )

    cctv_degradation: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of training images made to look as a plant's CCTV delivers them (sub-stream "
        "resolution, blur, noise, clipped exposure, faded colour, JPEG): the sources are mostly clean photos.",
    )

    def sources(self) -> dict[str, Path]:
        """Every source this recipe can read: name to its ``data.yaml``."""
        out = {name: self.data_root / name / "data.yaml" for name in SOURCES}
        if self.extra_root is not None:
            out.update({name: self.extra_root / name / "data.yaml" for name in EXTRA_SOURCES})
        return out

    def origins(self) -> dict[str, str]:
        """Origin and licence of each source used."""
        return {name: {**SOURCES, **EXTRA_SOURCES}[name] for name in self.sources()}


_TRAIN_CONFIG_FIELDS: Final[set[str]] = {
    "epochs",
    "imgsz",
    "batch",
    "workers",
    "seed",
    "close_mosaic",
    "patience",
    "fraction",
    "cctv_degradation",
}
"""The recipe's settings that ``TrainConfig`` takes as they are, under the same name."""


def _load_source(
    name: str, data_yaml: Path, every: int, progress: ProgressFn, *, val_share: float | None = None
) -> DetectionSet:
    """One source set, its train split thinned to every ``every``-th image (sorted by name).

    With ``val_share``, the source's own splits are replaced by a split keeping each video
    on one side (:func:`anjian.datasets.labels.video_key`), ``val_share`` of the groups in val.
    """
    if not data_yaml.is_file():
        raise FileNotFoundError(
            f"source {name!r}: {data_yaml} is missing (shared sets: ../shared/data; extra sets: "
            "stage them with ../shared/data/extra/stage.py)"
        )
    dataset = load_yolo_set(data_yaml, name=name, progress=progress)
    if val_share is not None:
        numbered, multi_camera = name in FRAME_NUMBERED_SOURCES, name in MULTI_CAMERA_SOURCES
        redrawn = split_by_group(
            dataset,
            {"train": 1 - val_share, "val": val_share},
            key=lambda image: video_key(
                image.image, is_frame_numbered=numbered, is_multi_camera=multi_camera
            ),
        )
        dataset.images = redrawn.images
    if every > 1:
        train = sorted((im for im in dataset.images if im.split == "train"), key=lambda im: im.image.name)
        kept = {id(im) for im in train[::every]}
        dataset.images = [im for im in dataset.images if im.split != "train" or id(im) in kept]
    return dataset


def prepare(work: Path, recipe: AnjianNRecipe, *, progress: ProgressFn = no_progress) -> Path:
    """Merge, complete the labels and write the training set (and the held-out set); build the init.

    Returns:
        The training set's ``data.yaml``.
    """
    work.mkdir(parents=True, exist_ok=True)
    paths = recipe.sources()
    unknown = sorted(set(recipe.holdout) - set(paths))
    if unknown:
        raise ValueError(f"--holdout names {unknown}, not among the sources {sorted(paths)}")
    unknown = sorted(set(recipe.resplit) - set(paths))
    if unknown:
        staged = [name for name in unknown if name in EXTRA_SOURCES and recipe.extra_root is None]
        hint = (  # the default --resplit names ur_fall, which only --extra-root brings
            f"; {', '.join(staged)} is read from --extra-root: pass --extra-root DIR (e.g. {DEFAULT_EXTRA_ROOT}, "
            "staged by ../shared/data/extra/stage.py), or a --resplit without it (e.g. --resplit "
            "fire_smoke_cctv=0.2 fire_continuous=0.3)"
            if staged
            else ""
        )
        raise ValueError(f"resplit names {unknown}, not among the sources {sorted(paths)}{hint}")
    unknown = sorted({s for fill in recipe.teacher_fills for s in fill.sources} - set(paths))
    if unknown:
        raise ValueError(f"a teacher fill names sources {unknown}, not among the sources {sorted(paths)}")
    class_map = load_class_map(CLASS_MAP)
    trained = [
        _load_source(
            name, path, recipe.train_every.get(name, 1), progress, val_share=recipe.resplit.get(name)
        )
        for name, path in paths.items()
        if name not in recipe.holdout
    ]
    merged, merge_report = merge_sets(trained, class_map, name="anjian-n", progress=progress)
    extra = {"sources": {n: o for n, o in recipe.origins().items() if n not in recipe.holdout}}
    raw_yaml = write_yolo_set(merged, work / "merged", by_source=True, progress=progress, extra=extra)
    from anjian.training.complete_labels import complete_labels

    pseudo: dict[str, object] = {}
    data_yaml = raw_yaml
    if recipe.is_pseudo_labelled:
        completion = complete_labels(
            raw_yaml,
            work / "data",
            recipe.data_root / COCO_WEIGHTS,
            min_confidence=recipe.teacher_confidence,
            progress=progress,
        )
        data_yaml = completion.data_yaml
        pseudo = completion.report.to_dict() if completion.report else {}
    for number, fill in enumerate(recipe.teacher_fills, start=1):
        trained_sources = [source for source in fill.sources if source not in recipe.holdout]
        completion = complete_labels(
            data_yaml,
            work / f"data-fill{number}",
            fill.teacher,
            min_confidence=fill.min_confidence,
            classes=fill.classes,
            sources=trained_sources,
            progress=progress,
        )
        data_yaml = completion.data_yaml
        pseudo = (yaml.safe_load(data_yaml.read_text()) or {}).get("pseudo_labels", pseudo)
    if recipe.holdout:
        held = [_load_source(name, paths[name], 1, progress) for name in recipe.holdout]
        held_merged, _ = merge_sets(held, class_map, name="holdout", progress=progress)
        write_yolo_set(
            held_merged,
            work / "holdout",
            by_source=True,
            progress=progress,
            extra={"sources": {n: recipe.origins()[n] for n in recipe.holdout}},
        )
    (work / "merge_report.json").write_text(
        json.dumps({"merge": merge_report.to_dict(), "pseudo_labels": pseudo}, indent=2) + "\n"
    )
    from anjian.training.finetune_init import build_finetune_checkpoint

    build_finetune_checkpoint(recipe.data_root / COCO_WEIGHTS, merged.class_names, work / "init.pt")
    (work / "recipe.json").write_text(recipe.model_dump_json(indent=2) + "\n")
    (work / "training_set.txt").write_text(str(data_yaml) + "\n")
    return data_yaml


def training_set(work: Path) -> Path:
    """The ``data.yaml`` ``prepare`` wrote for training (labels completed unless the ablation)."""
    pointer = work / "training_set.txt"
    return Path(pointer.read_text().strip()) if pointer.is_file() else work / "data" / "data.yaml"


def train(work: Path, *, resume: bool = False) -> Path:
    """Train (or resume) the run under ``<work>/runs/anjian-n``; returns the best weights."""
    recipe = AnjianNRecipe.model_validate_json((work / "recipe.json").read_text())
    config = TrainConfig(
        data=training_set(work),
        model=str(work / "init.pt"),
        project=work / "runs",
        name="anjian-n",
        cache=True,
        **recipe.model_dump(include=_TRAIN_CONFIG_FIELDS),
        extra={
            "freeze": recipe.freeze,
            "lr0": recipe.lr0,
            "optimizer": "AdamW",
            "cos_lr": True,
            "warmup_epochs": 1.0,
            **recipe.augment,
        },
    )
    return train_detector(config, resume=resume).best


def add_fire_negatives(
    work: Path,
    model: str,
    *,
    min_score: float = 0.25,
    limit: int = 500,
    copies: int = 2,
    progress: ProgressFn = no_progress,
) -> Path:
    """Mine the training set's fire look-alikes with ``model`` and write them in again (see the module doc).

    Returns:
        The folder of the added images.
    """
    from anjian.models.config import DetectorConfig
    from anjian.models.loader import load_detector
    from anjian.training.hard_negatives import add_hard_negatives, mine_hard_negatives

    data_yaml = training_set(work)
    detector = load_detector(
        model, DetectorConfig(path=model, confidence_threshold=max(0.001, min(min_score, 0.05)))
    )
    negatives = mine_hard_negatives(
        detector,
        data_yaml,
        class_name="fire",
        free_sources=FIRE_FREE_SOURCES,
        min_score=min_score,
        limit=limit,
        progress=progress,
    )
    logger.info(
        "%d fire look-alikes at fire score >= %.2f, written %d times each", len(negatives), min_score, copies
    )
    return add_hard_negatives(data_yaml, negatives, class_name="fire", copies=copies)


def _parse_resplit(items: Sequence[str]) -> dict[str, float]:
    """``SOURCE=SHARE`` words of ``--resplit`` as a mapping (the shares are checked by the recipe)."""
    out: dict[str, float] = {}
    for item in items:
        source, sep, share = item.partition("=")
        try:
            if not sep or not source:
                raise ValueError
            out[source] = float(share)
        except ValueError:
            raise ValueError(
                f"--resplit takes SOURCE=SHARE (e.g. fire_smoke_cctv=0.2), got {item!r}"
            ) from None
    return out


def _run_step(args: argparse.Namespace, work: Path) -> None:
    """Run one step of the recipe with the parsed command line."""
    if args.step == "prepare":
        recipe = AnjianNRecipe(
            data_root=args.data_root.resolve(),
            is_pseudo_labelled=not args.no_pseudo_labels,
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            freeze=args.freeze,
            fraction=args.fraction,
            extra_root=args.extra_root.resolve() if args.extra_root else None,
            holdout=tuple(args.holdout),
            patience=args.patience,
            cctv_degradation=args.cctv_degradation,
            lr0=args.lr0,
            augment={**AnjianNRecipe().augment, "mosaic": args.mosaic, "scale": args.scale},
            resplit=_parse_resplit(args.resplit),
            teacher_fills=tuple(
                TeacherFill(teacher=model, classes={"smoke": "smoke"}, sources=("fire_continuous",))
                for model in args.fill_smoke_from
            ),
        )
        print(prepare(work, recipe))
    elif args.step == "negatives":
        print(
            add_fire_negatives(
                work, args.model, min_score=args.min_score, limit=args.limit, copies=args.copies
            )
        )
    elif args.step == "zoom":
        from anjian.training.zoom_crops import ZoomSpec, add_zoom_crops

        seed = AnjianNRecipe.model_validate_json((work / "recipe.json").read_text()).seed
        report = add_zoom_crops(
            training_set(work),
            class_name=args.zoom_class,
            spec=ZoomSpec(fill=tuple(args.zoom_fill), per_image=args.zoom_per_image, seed=seed),
        )
        print(f"{report.crops} crops from {report.images} images into {report.folder}")
    elif args.step == "train":
        print(train(work, resume=args.resume))
    elif args.step == "crosseval":
        from anjian.training.anjian_n_crosseval import crosseval

        print(crosseval(work, is_snapshot=args.snapshot))
    else:
        from anjian.training.anjian_n_release import finish

        print(
            finish(
                work,
                version=args.version,
                ablation_work=args.ablation_work,
                is_updating=args.update,
                is_promoting=not args.no_promote,
                crosseval_jsons=args.crosseval,
                is_quantizing=not args.no_int8,
            )
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the recipe (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m anjian.training.anjian_n", description=__doc__.splitlines()[0]
    )
    parser.add_argument("step", choices=["prepare", "negatives", "zoom", "train", "crosseval", "finish"])
    parser.add_argument("--work", type=Path, required=True, help="working folder, outside the repository")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument(
        "--extra-root", type=Path, default=None, help=f"staged extra sets (e.g. {DEFAULT_EXTRA_ROOT})"
    )
    parser.add_argument("--holdout", nargs="*", default=[], help="sources kept out of training, scored whole")
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument(
        "--resplit",
        nargs="*",
        default=["fire_smoke_cctv=0.2", "fire_continuous=0.3", "ur_fall=0.2"],
        metavar="SOURCE=SHARE",
        help="draw a source's val split again, whole videos on one side, SHARE of them in val "
        "(default: fire_smoke_cctv=0.2 fire_continuous=0.3 ur_fall=0.2; give --resplit alone for none)",
    )
    parser.add_argument("--no-pseudo-labels", action="store_true", help="ablation: naive merge")
    parser.add_argument(
        "--fill-smoke-from",
        nargs="*",
        default=[],
        metavar="MODEL",
        help="prepare: fill the smoke fire_continuous never labels with this model's confident smoke "
        "(e.g. builtin:anjian-n/2), after the COCO teacher's people",
    )
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--freeze", type=int, default=10)
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--cctv-degradation", type=float, default=0.0, help="share of training images made to look like CCTV"
    )
    parser.add_argument("--lr0", type=float, default=0.002, help="initial learning rate")
    parser.add_argument("--mosaic", type=float, default=1.0, help="share of training images made as mosaics")
    parser.add_argument("--scale", type=float, default=0.5, help="random scale gain range (+/-)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="crosseval: score the best weights now, into W/snapshots/epoch-N",
    )
    parser.add_argument(
        "--model", default="builtin:anjian-n", help="negatives: the model whose mistakes are mined"
    )
    parser.add_argument("--min-score", type=float, default=0.25, help="negatives: lowest fire score kept")
    parser.add_argument("--limit", type=int, default=500, help="negatives: at most this many images")
    parser.add_argument("--copies", type=int, default=2, help="negatives: times each is written again")
    parser.add_argument("--zoom-class", default="fire", help="zoom: the class the crops zoom into")
    parser.add_argument("--zoom-per-image", type=int, default=1, help="zoom: crops cut from each image")
    parser.add_argument(
        "--zoom-fill", type=float, nargs=2, default=(0.4, 0.95), help="zoom: share of the crop the box takes"
    )
    parser.add_argument("--version", default="1", help="registry version written by 'finish'")
    parser.add_argument("--update", action="store_true", help="finish: rewrite meta and card of --version")
    parser.add_argument("--no-promote", action="store_true", help="finish: register without promoting")
    parser.add_argument("--no-int8", action="store_true", help="finish: do not quantise the registered model")
    parser.add_argument(
        "--crosseval",
        type=Path,
        nargs="*",
        default=[],
        help="finish: crosseval.json of each held-out arm of the recipe, for the card (default: W/crosseval.json)",
    )
    parser.add_argument(
        "--ablation-work", type=Path, default=None, help="finish: compare with this run (--no-pseudo-labels)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = args.work.resolve()
    try:
        _run_step(args, work)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {args.step}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
