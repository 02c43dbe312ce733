"""Crop sets and a crop model for the second stage: cigarettes on each person's upper body.

A 320-pixel view of a room cannot show a cigarette; the upper body of each person, cut from
the full-resolution frame, can. :func:`build_crop_set` cuts those crops exactly as the
running second stage does (:func:`anjian.models.crop_geometry.upper_body_regions`), moves
each source's cigarette boxes into them and writes a one-class YOLO set:

- **positives**: sources with cigarette boxes (``cigarette``; ``smoking_photos``, whose
  ``smoking`` boxes hold the cigarette with the hand or mouth). A box covering more than
  ``max_box_fraction`` of its image is no cigarette box (some ``smoking_photos`` boxes cover
  the whole photo): such an image is left out, since its crops would teach "no cigarette"
  where there is one.
- **negatives**: upper bodies from people-only sources (``forklift_person``,
  ``cctv_person``), at most ``negatives_per_positive`` per positive crop.

People come from the source's own ``person`` labels where it has them, else from a person
detector loaded by the one detector loader (the COCO teacher, or the primary model itself). :func:`train_crop_model` trains YOLOv8n from the
COCO weights on the set (niced; ``ANJIAN_TRAIN_THREADS`` and ``YOLO_OFFLINE`` as every
training run here).

Run: ``python -m anjian.training.cigarette_crops build --work W --positive smoking_photos=...``
then ``train --work W``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from anjian.datasets.boxes import cxcywh_to_xyxy
from anjian.datasets.labels import DetectionSet, LabelledImage
from anjian.datasets.yolo import load_yolo_set
from anjian.models.config import DetectorConfig
from anjian.models.crop_geometry import boxes_into_crop, upper_body_regions
from anjian.models.detector import Detector
from anjian.models.loader import load_detector

__all__ = ["CropSetReport", "CropSpec", "build_crop_set", "main", "train_crop_model"]

logger = logging.getLogger(__name__)

CIGARETTE_NAMES = frozenset({"cigarette", "smoking"})
"""Source class names whose boxes become the crop set's ``cigarette``."""


@dataclass(frozen=True, slots=True)
class CropSpec:
    """How crops are cut: the same numbers the second stage runs with (``SecondStageConfig``)."""

    fraction: float = 0.6
    margin: float = 0.15
    person_score: float = 0.35
    min_inside: float = 0.6
    max_side_px: int = 384


@dataclass(slots=True)
class CropSetReport:
    """What :func:`build_crop_set` wrote, per split: crops, boxes, and what it left out."""

    positive_crops: dict[str, int]
    negative_crops: dict[str, int]
    boxes: dict[str, int]
    dropped_images: int
    lost_boxes: int

    def to_dict(self) -> dict[str, object]:
        """The report as JSON-ready data."""
        return {
            "positive_crops": self.positive_crops,
            "negative_crops": self.negative_crops,
            "boxes": self.boxes,
            "dropped_implausible_images": self.dropped_images,
            "boxes_outside_every_crop": self.lost_boxes,
        }


def _people(
    dataset: DetectionSet, image: LabelledImage, picture: np.ndarray, teacher: Detector, spec: CropSpec
) -> np.ndarray:
    """Person boxes of one image: its labels where the source has ``person``, else the teacher's."""
    h, w = picture.shape[:2]
    if "person" in dataset.class_names:
        person_id = dataset.class_names.index("person")
        return cxcywh_to_xyxy(image.boxes[image.class_ids == person_id, 1:], (w, h))
    found = teacher.detect([picture])[0]
    names = found.names()
    keep = np.array([n == "person" for n in names], bool) & (found.confidence >= spec.person_score)
    return found.xyxy[keep] if len(found) else np.zeros((0, 4), np.float32)


def _write_crop(picture: np.ndarray, crop: np.ndarray, boxes: np.ndarray, out: Path, spec: CropSpec) -> None:
    """Save one crop (shrunk to ``max_side_px``) and its YOLO label file."""
    x1, y1, x2, y2 = (int(v) for v in crop)
    patch = picture[y1:y2, x1:x2]
    cw, ch = x2 - x1, y2 - y1
    scale = min(1.0, spec.max_side_px / max(cw, ch))
    if scale < 1.0:
        patch = cv2.resize(
            patch, (max(1, round(cw * scale)), max(1, round(ch * scale))), interpolation=cv2.INTER_AREA
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), patch)
    rows = [
        f"0 {(b[0] + b[2]) / 2 / cw:.6f} {(b[1] + b[3]) / 2 / ch:.6f} {(b[2] - b[0]) / cw:.6f} {(b[3] - b[1]) / ch:.6f}"
        for b in boxes
    ]
    label = out.parents[2] / "labels" / out.parent.name / (out.stem + ".txt")
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_text("".join(r + "\n" for r in rows))


def build_crop_set(
    positives: dict[str, Path],
    negatives: dict[str, Path],
    out: Path,
    *,
    teacher: Detector,
    spec: CropSpec | None = None,
    max_box_fraction: float = 0.2,
    negatives_per_positive: float = 1.0,
    seed: int = 0,
) -> CropSetReport:
    """Write a one-class (``cigarette``) YOLO set of upper-body crops under ``out``.

    Each source's ``train`` and ``val`` splits become the crop set's ``train`` and ``val``.

    Args:
        positives: Source name to ``data.yaml`` of sets with cigarette (or ``smoking``) boxes.
        negatives: Source name to ``data.yaml`` of people-only sets.
        out: Folder for ``images/``, ``labels/``, ``data.yaml`` and ``report.json``.
        teacher: Person detector for sources without person labels: the COCO YOLOv8n, or the
            primary model the second stage will run behind (its people are the ones cropped
            at run time, and at 320 pixels it is four times cheaper than the 640-pixel teacher).
        spec: Crop geometry; the second stage's defaults when ``None``.
        max_box_fraction: A cigarette box covering more of its image than this marks the
            image as mislabelled; it is left out.
        negatives_per_positive: Negative crops kept per positive crop, per split.
        seed: Chooses which negative crops are kept.

    Returns:
        Counts of what was written and left out.

    Raises:
        ValueError: A positive source has no cigarette class, or nothing was written.
    """
    spec = spec or CropSpec()
    report = CropSetReport({}, {}, {}, 0, 0)
    negative_pool: dict[str, list[tuple[LabelledImage, np.ndarray]]] = {}
    for role, sources in (("positive", positives), ("negative", negatives)):
        for name, yaml in sources.items():
            dataset = load_yolo_set(yaml, name=name)
            wanted = [i for i, n in enumerate(dataset.class_names) if n in CIGARETTE_NAMES]
            if role == "positive" and not wanted:
                raise ValueError(f"{name}: no cigarette class in {list(dataset.class_names)}")
            for image in dataset.images:
                picture = cv2.imread(str(image.image))
                if picture is None:
                    continue
                h, w = picture.shape[:2]
                targets = cxcywh_to_xyxy(image.boxes[np.isin(image.class_ids, wanted), 1:], (w, h))
                area = (targets[:, 2] - targets[:, 0]) * (targets[:, 3] - targets[:, 1])
                if role == "positive" and (area > max_box_fraction * w * h).any():
                    report.dropped_images += 1
                    continue
                people = _people(dataset, image, picture, teacher, spec)
                crops = upper_body_regions(people, (w, h), fraction=spec.fraction, margin=spec.margin)
                covered = np.zeros(len(targets), bool)
                for k, crop in enumerate(crops):
                    inside, kept = boxes_into_crop(targets, crop, min_inside=spec.min_inside)
                    covered |= kept
                    stem = f"{name}__{image.image.stem}__{k}"
                    if role == "negative":
                        negative_pool.setdefault(image.split, []).append((image, crop))
                        continue
                    if not len(inside):
                        continue
                    _write_crop(picture, crop, inside, out / "images" / image.split / f"{stem}.jpg", spec)
                    report.positive_crops[image.split] = report.positive_crops.get(image.split, 0) + 1
                    report.boxes[image.split] = report.boxes.get(image.split, 0) + len(inside)
                report.lost_boxes += int((~covered).sum()) if role == "positive" else 0
    rng = random.Random(seed)
    for split, pool in sorted(negative_pool.items()):
        rng.shuffle(pool)
        count = round(negatives_per_positive * report.positive_crops.get(split, 0))
        for k, (image, crop) in enumerate(pool[:count]):
            picture = cv2.imread(str(image.image))
            if picture is None:
                continue
            stem = f"{image.source}__{image.image.stem}__n{k}"
            _write_crop(picture, crop, np.zeros((0, 4)), out / "images" / split / f"{stem}.jpg", spec)
            report.negative_crops[split] = report.negative_crops.get(split, 0) + 1
    if not sum(report.positive_crops.values()):
        raise ValueError("no crop holds a cigarette box: check the sources and the person teacher")
    (out / "data.yaml").write_text(
        "# upper-body crops for the cigarette second stage (anjian.training.cigarette_crops)\n"
        "train: images/train\nval: images/val\nnc: 1\nnames: ['cigarette']\n"
    )
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def train_crop_model(work: Path, *, epochs: int, imgsz: int, resume: bool = False) -> Path:
    """Train YOLOv8n from the COCO weights on ``work/crops``; returns the best weights.

    Args:
        work: The folder :func:`build_crop_set` wrote ``crops/`` into.
        epochs: Epochs of this run.
        imgsz: Square input size (the second stage's crop size).
        resume: Continue ``work/runs/anjian-cig``.
    """
    from anjian.training.finetune_init import DEFAULT_COCO_ONNX, build_finetune_checkpoint
    from anjian.training.train import TrainConfig, train_detector

    init = work / "init.pt"
    if not init.is_file():
        build_finetune_checkpoint(DEFAULT_COCO_ONNX, ["cigarette"], init, seeds={})
    config = TrainConfig(
        data=work / "crops" / "data.yaml",
        model=str(init),
        project=work / "runs",
        name="anjian-cig",
        epochs=epochs,
        imgsz=imgsz,
        batch=16,
        workers=0,
        close_mosaic=1,
        cache=True,
        extra={"lr0": 0.002, "optimizer": "AdamW", "cos_lr": True, "warmup_epochs": 1.0, "scale": 0.3},
    )
    return train_detector(config, resume=resume).best


def _named(pairs: Sequence[str]) -> dict[str, Path]:
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"expected NAME=path/to/data.yaml, got {pair!r}")
        out[name] = Path(path)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``build`` a crop set or ``train`` a crop model (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m anjian.training.cigarette_crops")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write W/crops from the sources")
    build.add_argument("--work", type=Path, required=True)
    build.add_argument("--positive", action="append", default=[], help="NAME=data.yaml with cigarette boxes")
    build.add_argument("--negative", action="append", default=[], help="NAME=data.yaml of people only")
    build.add_argument(
        "--teacher", type=Path, required=True, help="person detector (COCO YOLOv8n or the primary)"
    )
    build.add_argument("--fraction", type=float, default=0.6)
    build.add_argument("--margin", type=float, default=0.15)
    build.add_argument("--max-box-fraction", type=float, default=0.2)
    train = commands.add_parser("train", help="train W/runs/anjian-cig on W/crops")
    train.add_argument("--work", type=Path, required=True)
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--imgsz", type=int, default=224)
    train.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.nice(10)
    if args.command == "build":
        report = build_crop_set(
            _named(args.positive),
            _named(args.negative),
            args.work / "crops",
            teacher=load_detector(
                args.teacher,
                DetectorConfig(
                    path=str(args.teacher), confidence_threshold=0.2, device="cpu", intra_op_threads=1
                ),
            ),
            spec=CropSpec(fraction=args.fraction, margin=args.margin),
            max_box_fraction=args.max_box_fraction,
        )
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(train_crop_model(args.work, epochs=args.epochs, imgsz=args.imgsz, resume=args.resume))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
