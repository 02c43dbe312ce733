"""The recipe of anjian's default detector ``anjian-n``, step by step and resumable.

``anjian-n`` is a YOLOv8n fine-tuned from COCO on the public sets in ``../shared/data``,
merged into the classes the six behaviours need::

    python -m training.anjian_n prepare --work /root/anjian-train   # merge, pseudo-label, init
    python -m training.anjian_n train --work /root/anjian-train     # resumable; run it detached
    python -m training.anjian_n train --work /root/anjian-train --resume
    python -m training.anjian_n finish --work /root/anjian-train    # evaluate, export, register

``prepare`` merges the sets with ``datasets/maps/anjian.yaml``, fills in the ``person``
boxes the cigarette, fire and pallet sets never label (COCO teacher, see
:mod:`training.pseudo_label`; ``--no-pseudo-labels`` for the ablation), writes the merged
YOLO set with one sub-folder per source (so each source's val split can be evaluated
alone), and builds the COCO-initialised checkpoint (:mod:`training.finetune_init`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from datasets.classmap import load_class_map
from datasets.labels import ProgressFn, no_progress
from datasets.merge import merge_sets
from datasets.yolo import load_yolo_set, write_yolo_set
from training.train import TrainConfig, train_detector

__all__ = ["SOURCES", "AnjianNRecipe", "main", "prepare", "train"]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
CLASS_MAP = REPO_ROOT / "datasets" / "maps" / "anjian.yaml"
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
COCO_WEIGHTS = Path("weights") / "coco_yolov8n_int8.onnx"

SOURCES: dict[str, str] = {
    "fall_hospital": 'Roboflow "hospital_bed-qt6yg" v3',
    "fire_smoke_cctv": 'Roboflow "fire-wrpgm" v8 (Cctv-fire)',
    "cigarette": 'Roboflow "smoking-detection-wpb75" v3',
    "forklift_person": 'Roboflow "forklift-dsitv" v5',
    "pallet": 'Roboflow "palet-zsfnn" v1',
}
"""Source folder under the data root to its origin (all CC BY 4.0)."""


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


def prepare(work: Path, recipe: AnjianNRecipe, *, progress: ProgressFn = no_progress) -> Path:
    """Merge, pseudo-label and write the training set; build the initial checkpoint.

    Returns:
        The merged set's ``data.yaml``.
    """
    work.mkdir(parents=True, exist_ok=True)
    sets = [
        load_yolo_set(recipe.data_root / name / "data.yaml", name=name, progress=progress) for name in SOURCES
    ]
    class_map = load_class_map(CLASS_MAP)
    merged, merge_report = merge_sets(sets, class_map, name="anjian-n", progress=progress)
    pseudo: dict[str, object] = {}
    if recipe.is_pseudo_labelled:
        from models.config import DetectorConfig
        from models.onnx_detector import OnnxDetector
        from training.pseudo_label import pseudo_label

        weights = recipe.data_root / COCO_WEIGHTS
        teacher = OnnxDetector(
            weights,
            DetectorConfig(path=str(weights), confidence_threshold=recipe.teacher_confidence, device="cpu"),
        )
        merged, pseudo_report = pseudo_label(
            merged, teacher, {"person": "person"}, min_confidence=recipe.teacher_confidence, progress=progress
        )
        pseudo = pseudo_report.to_dict()
    data_yaml = write_yolo_set(
        merged,
        work / "data",
        by_source=True,
        progress=progress,
        extra={"sources": dict(SOURCES), "pseudo_labels": pseudo},
    )
    (work / "merge_report.json").write_text(
        json.dumps({"merge": merge_report.to_dict(), "pseudo_labels": pseudo}, indent=2) + "\n"
    )
    from training.finetune_init import build_finetune_checkpoint

    build_finetune_checkpoint(recipe.data_root / COCO_WEIGHTS, merged.class_names, work / "init.pt")
    (work / "recipe.json").write_text(recipe.model_dump_json(indent=2) + "\n")
    return data_yaml


def train(work: Path, *, resume: bool = False) -> Path:
    """Train (or resume) the run under ``<work>/runs/anjian-n``; returns the best weights."""
    recipe = AnjianNRecipe.model_validate_json((work / "recipe.json").read_text())
    config = TrainConfig(
        data=work / "data" / "data.yaml",
        model=str(work / "init.pt"),
        project=work / "runs",
        name="anjian-n",
        epochs=recipe.epochs,
        imgsz=recipe.imgsz,
        batch=recipe.batch,
        workers=recipe.workers,
        seed=recipe.seed,
        close_mosaic=recipe.close_mosaic,
        cache=True,
        fraction=recipe.fraction,
        extra={
            "freeze": recipe.freeze,
            "lr0": recipe.lr0,
            "optimizer": "AdamW",
            "cos_lr": True,
            "warmup_epochs": 1.0,
        },
    )
    return train_detector(config, resume=resume).best


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the recipe (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m training.anjian_n", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["prepare", "train", "finish"])
    parser.add_argument("--work", type=Path, required=True, help="working folder, outside the repository")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--no-pseudo-labels", action="store_true", help="ablation: naive merge")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--freeze", type=int, default=10)
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--version", default="1", help="registry version written by 'finish'")
    parser.add_argument("--update", action="store_true", help="finish: rewrite meta and card of --version")
    parser.add_argument(
        "--ablation-work", type=Path, default=None, help="finish: compare with this run (--no-pseudo-labels)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = args.work.resolve()
    if args.step == "prepare":
        recipe = AnjianNRecipe(
            data_root=args.data_root.resolve(),
            is_pseudo_labelled=not args.no_pseudo_labels,
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            freeze=args.freeze,
            fraction=args.fraction,
        )
        print(prepare(work, recipe))
    elif args.step == "train":
        print(train(work, resume=args.resume))
    else:
        from training.anjian_n_release import finish

        print(finish(work, version=args.version, ablation_work=args.ablation_work, is_updating=args.update))
    return 0


if __name__ == "__main__":
    sys.exit(main())
