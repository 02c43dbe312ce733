"""Hard negatives for one class: training images without it that a model still takes for it.

A fire detector trained on fire photos learns "orange and bright"; on a plant's cameras that is
a forklift, a warm lamp, a hi-vis vest or a reflection. :func:`mine_hard_negatives` runs a model
over the training images that certainly show no fire (sources that label fire but have no fire
box in the image, and sources the recipe names as free of it: warehouses, hospital rooms,
offices) and keeps those it scores highest for the class. :func:`add_hard_negatives` writes each
into the training set again, ``copies`` times, as its own source folder
(``images/train/<class>_hard_negatives``) with the image's labels, so that the next training
sees the look-alikes as often as the real thing; the images themselves are linked, not copied.

The miner reads the YOLO set ``write_yolo_set(..., by_source=True)`` wrote (one folder per
source); the model is any the one loader reads (``builtin:anjian-n``, an ``.onnx``, a ``.pt``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from anjian.datasets.labels import IMAGE_SUFFIXES, ProgressFn, no_progress
from anjian.datasets.yolo import empty_source_folders, read_class_names
from anjian.models.detector import Detector

__all__ = ["HardNegative", "add_hard_negatives", "mine_hard_negatives"]

logger = logging.getLogger(__name__)

REPORT_NAME = "hard_negatives.json"


@dataclass(frozen=True, slots=True)
class HardNegative:
    """A training image without the class that the model scores high for it.

    Attributes:
        image: The image file in the training set.
        label: Its label file (the boxes of the classes its source labels).
        source: The source folder it came from.
        score: The model's highest score for the class on it.
    """

    image: Path
    label: Path
    source: str
    score: float


def _class_id(names: Sequence[str], class_name: str) -> int:
    if class_name not in names:
        raise ValueError(f"the training set has no class {class_name!r}; its classes are {list(names)}")
    return list(names).index(class_name)


def _has_class(label: Path, class_id: int) -> bool:
    if not label.is_file():
        return False
    return any(line.split()[:1] == [str(class_id)] for line in label.read_text().splitlines())


def _candidates(
    data_yaml: Path, class_name: str, free_sources: Collection[str]
) -> tuple[list[tuple[Path, Path, str]], list[str]]:
    """Train images certainly without ``class_name``: (image, label, source), and the sources read."""
    import yaml

    data = yaml.safe_load(data_yaml.read_text())
    class_id = _class_id(read_class_names(data, data_yaml), class_name)
    labelled = data.get("labelled_classes") or {}
    root = data_yaml.parent
    train = root / "images" / "train"
    out: list[tuple[Path, Path, str]] = []
    read: list[str] = []
    for folder in sorted(p for p in train.iterdir() if p.is_dir()) if train.is_dir() else []:
        source = folder.name
        if source.endswith("_hard_negatives"):
            continue
        labels_exhaustively = class_name in labelled.get(source, ())
        if not labels_exhaustively and source not in free_sources:
            continue  # may show the class unlabelled (a lighter's flame in a smoking photo)
        read.append(source)
        for image in sorted(folder.iterdir()):
            if image.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            label = root / "labels" / "train" / source / f"{image.stem}.txt"
            if not _has_class(label, class_id):
                out.append((image, label, source))
    return out, read


def mine_hard_negatives(
    detector: Detector,
    data_yaml: Path,
    *,
    class_name: str = "fire",
    free_sources: Collection[str] = (),
    min_score: float = 0.25,
    limit: int = 500,
    batch_size: int = 8,
    progress: ProgressFn = no_progress,
) -> list[HardNegative]:
    """The training images without ``class_name`` that ``detector`` scores at least ``min_score`` for it.

    Args:
        detector: The model whose mistakes are mined (its class names must include ``class_name``;
            its score floor should be at most ``min_score``).
        data_yaml: A training set written one folder per source.
        class_name: The class the negatives are for.
        free_sources: Sources that do not label the class but certainly never show it. A source
            that labels it contributes its images without a box of it.
        min_score: Lowest score kept.
        limit: At most this many, highest scores first.
        batch_size: Images per call to the detector.
        progress: Wraps the image loop.

    Returns:
        The hard negatives, highest score first.

    Raises:
        ValueError: The set or the model lacks the class, or no source can give negatives.
    """
    model_names = detector.class_names
    wanted = [k for k, v in model_names.items() if v == class_name]
    if not wanted:
        raise ValueError(
            f"the model has no class {class_name!r}; its classes are {sorted(model_names.values())}"
        )
    candidates, read = _candidates(data_yaml, class_name, free_sources)
    if not read:
        raise ValueError(
            f"no source of {data_yaml} is certain to show no {class_name}: name some with free_sources"
        )
    found: list[HardNegative] = []
    batches = [candidates[i : i + batch_size] for i in range(0, len(candidates), batch_size)]
    for batch in progress(batches, f"mine {class_name} look-alikes", len(batches)):
        images = [cv2.imread(str(image)) for image, _, _ in batch]
        readable = [(item, im) for item, im in zip(batch, images, strict=True) if im is not None]
        if not readable:
            continue
        results = detector.detect([im for _, im in readable])
        for (image, label, source), detections in zip((item for item, _ in readable), results, strict=True):
            scores = detections.confidence[np.isin(detections.class_id, wanted)]
            best = float(scores.max()) if scores.size else 0.0
            if best >= min_score:
                found.append(HardNegative(image, label, source, round(best, 4)))
    found.sort(key=lambda n: (-n.score, str(n.image)))
    logger.info(
        "%d of %d images without %s (from %s) score >= %.2f for it",
        len(found),
        len(candidates),
        class_name,
        ", ".join(read),
        min_score,
    )
    return found[:limit]


def add_hard_negatives(
    data_yaml: Path, negatives: Sequence[HardNegative], *, class_name: str = "fire", copies: int = 2
) -> Path:
    """Write ``copies`` copies of each negative into the training set as source ``<class>_hard_negatives``.

    An earlier run's folder is replaced, so mining again never piles copies up. The images are
    symbolic links to the training set's own; each gets its label file. A report of what was added
    (``hard_negatives.json`` beside ``data.yaml``) says which images, from which source, at what score.

    Returns:
        The folder of the added images.

    Raises:
        ValueError: ``copies`` < 1.
    """
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    root = data_yaml.parent
    images, labels = empty_source_folders(root, "train", f"{class_name}_hard_negatives")
    for negative in negatives:
        text = negative.label.read_text() if negative.label.is_file() else ""
        for k in range(copies):
            stem = f"{negative.source}__{negative.image.stem}__hn{k}"
            (images / f"{stem}{negative.image.suffix.lower()}").symlink_to(negative.image.resolve())
            (labels / f"{stem}.txt").write_text(text)
    by_source: dict[str, int] = {}
    for negative in negatives:
        by_source[negative.source] = by_source.get(negative.source, 0) + 1
    report = {
        "class": class_name,
        "copies": copies,
        "images": len(negatives),
        "by_source": by_source,
        "negatives": [{**asdict(n), "image": str(n.image), "label": str(n.label)} for n in negatives],
    }
    (root / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return images
