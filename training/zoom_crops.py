"""Zoomed crops: a class seen filling the view, not only small in a scene.

Mosaic, the default YOLO augmentation, puts four images in one training image: every object is
seen at about half its size, and with ``scale`` 0.9 at most about as large as in its photo. The
fire source's flames take a median 22% of the image side, so a model trained on it has almost
never seen a flame filling 50-90% of the view, which is what a camera shows when the fire is near
it, and what the held-out CCTV fires look like (median 45%). Such a model misses the large
fires (issue 17: "flames filling the whole frame: no event").

:func:`add_zoom_crops` cuts, from each training image showing the class, square crops around one
of its boxes so that the box fills a random share of the crop's side (``fill``), and writes them
into the training set as their own source folder (``images/train/<class>_zoom``) with every box
moved into the crop (boxes mostly outside are dropped, as the YOLO augmentations drop them). The
crops keep the photo's own pixels (no up-sampling here; the trainer resizes as it does any image).
Running it again replaces the folder. A report (``zoom_crops_<class>.json``) says how many crops
came from which source.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from anjian.datasets.boxes import cxcywh_to_xyxy
from anjian.datasets.labels import IMAGE_SUFFIXES, ProgressFn, Severity, no_progress
from anjian.datasets.yolo import empty_source_folders, read_class_names, read_label_file
from anjian.models.crop_geometry import boxes_into_crop

__all__ = ["ZoomCropReport", "ZoomSpec", "add_zoom_crops", "zoom_crop_region"]

MIN_VISIBLE = 0.1
"""Least share of a box's area inside the crop for it to stay (ultralytics' ``box_candidates`` rule)."""


@dataclass(frozen=True, slots=True)
class ZoomSpec:
    """How the crops are cut.

    Attributes:
        fill: Range the chosen box's longer side takes of the crop's side, drawn uniformly.
        per_image: Crops cut from each image showing the class (each around a box drawn at random).
        min_side_px: Smallest crop side in pixels: a smaller one is grown to it (the box then fills
            less), so a tiny object does not become a few blown-up pixels.
        seed: Seed of the draws, so a recipe run is repeatable.
    """

    fill: tuple[float, float] = (0.4, 0.95)
    per_image: int = 1
    min_side_px: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        low, high = self.fill
        if not 0 < low <= high <= 1:
            raise ValueError(f"fill must be a range within (0, 1], got {self.fill}")
        if self.per_image < 1:
            raise ValueError(f"per_image must be >= 1, got {self.per_image}")
        if self.min_side_px < 8:
            raise ValueError(f"min_side_px must be >= 8, got {self.min_side_px}")


@dataclass(slots=True)
class ZoomCropReport:
    """What :func:`add_zoom_crops` wrote.

    Attributes:
        class_name: The class zoomed into.
        folder: The folder of the crops in the training set.
        crops: Crops written.
        images: Training images that showed the class.
        skipped: Of those, images where no crop zooms in (the box already fills the view).
        by_source: Crops per source folder.
    """

    class_name: str
    folder: Path
    crops: int = 0
    images: int = 0
    skipped: int = 0
    by_source: dict[str, int] = field(default_factory=dict)


def zoom_crop_region(
    box_xyxy: np.ndarray, image_wh: tuple[int, int], fill: float, min_side_px: int, rng: np.random.Generator
) -> np.ndarray | None:
    """A square crop in which ``box_xyxy``'s longer side takes ``fill`` of the side, placed at random.

    The crop holds the whole box and lies inside the image; where it would be grown past the
    image's shorter side it zooms nothing in and ``None`` comes back.

    Args:
        box_xyxy: ``(4,)`` the box, image pixels.
        image_wh: Image ``(width, height)``.
        fill: Share of the crop's side the box's longer side takes, in ``(0, 1]``.
        min_side_px: Smallest crop side.
        rng: Draws the crop's position around the box.

    Returns:
        ``(4,) int`` crop ``x1, y1, x2, y2`` or ``None``.
    """
    width, height = image_wh
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    side = max(max(x2 - x1, y2 - y1) / fill, float(min_side_px))
    if side >= 0.9 * min(width, height):
        return None
    side = round(side)
    # the crop's left edge: the box inside the crop and the crop inside the image
    low_x, high_x = max(0.0, x2 - side), min(x1, width - side)
    low_y, high_y = max(0.0, y2 - side), min(y1, height - side)
    if low_x > high_x or low_y > high_y:
        return None
    left = round(rng.uniform(low_x, high_x))
    top = round(rng.uniform(low_y, high_y))
    return np.array([left, top, left + side, top + side])


def _read_rows(label: Path, class_count: int) -> np.ndarray:
    """The ``class, cx, cy, w, h`` rows of one training label file (none where it is absent).

    Raises:
        ValueError: The file has a line the reader had to drop (it names the file and line).
    """
    if not label.is_file():
        return np.zeros((0, 5), np.float32)
    rows, issues = read_label_file(label, class_count)
    errors = [issue for issue in issues if issue.severity is Severity.ERROR]
    if errors:
        raise ValueError(f"{label}: {errors[0].detail}")
    return rows


def _write_crop(
    picture: np.ndarray, crop: np.ndarray, rows: np.ndarray, image_out: Path, label_out: Path
) -> int:
    """Write one crop and its labels; returns the number of boxes it keeps."""
    height, width = picture.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in crop)
    moved, kept = boxes_into_crop(cxcywh_to_xyxy(rows[:, 1:], (width, height)), crop, min_inside=MIN_VISIBLE)
    side_w, side_h = x2 - x1, y2 - y1
    cv2.imwrite(str(image_out), picture[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, 95])
    lines = [
        f"{int(c)} {(b[0] + b[2]) / 2 / side_w:.6f} {(b[1] + b[3]) / 2 / side_h:.6f} "
        f"{(b[2] - b[0]) / side_w:.6f} {(b[3] - b[1]) / side_h:.6f}\n"
        for c, b in zip(rows[kept, 0], moved, strict=True)
        if b[2] - b[0] >= 2 and b[3] - b[1] >= 2
    ]
    label_out.write_text("".join(lines))
    return len(lines)


def add_zoom_crops(
    data_yaml: Path,
    *,
    class_name: str = "fire",
    spec: ZoomSpec = ZoomSpec(),
    sources: Collection[str] | None = None,
    progress: ProgressFn = no_progress,
) -> ZoomCropReport:
    """Cut zoomed crops around ``class_name`` from the train split and add them as source ``<class>_zoom``.

    Args:
        data_yaml: A training set written one folder per source (``write_yolo_set(by_source=True)``).
        class_name: The class to zoom into.
        spec: How the crops are cut.
        sources: Source folders to cut from; ``None``: every source whose ``labelled_classes``
            include the class (only a source that labels it has all of its instances boxed).
        progress: Wraps the image loop.

    Returns:
        What was written.

    Raises:
        ValueError: The set has no such class, or no source labels it.
    """
    import yaml

    data = yaml.safe_load(data_yaml.read_text())
    names = read_class_names(data, data_yaml)
    if class_name not in names:
        raise ValueError(f"the training set has no class {class_name!r}; its classes are {list(names)}")
    class_id = names.index(class_name)
    labelled = data.get("labelled_classes") or {}
    chosen = sorted(
        sources if sources is not None else (s for s, classes in labelled.items() if class_name in classes)
    )
    root = data_yaml.parent
    if not chosen:
        raise ValueError(f"no source of {data_yaml} labels {class_name!r}: name the sources to cut from")
    missing = [s for s in chosen if not (root / "images" / "train" / s).is_dir()]
    if missing:
        raise ValueError(f"{data_yaml} has no train folder for sources {missing}")
    images_out, labels_out = empty_source_folders(root, "train", f"{class_name}_zoom")
    report = ZoomCropReport(class_name=class_name, folder=images_out)
    rng = np.random.default_rng(spec.seed)
    work = [
        (source, image)
        for source in chosen
        for image in sorted((root / "images" / "train" / source).iterdir())
        if image.suffix.lower() in IMAGE_SUFFIXES
    ]
    for source, image in progress(work, f"zoom into {class_name}", len(work)):
        rows = _read_rows(root / "labels" / "train" / source / f"{image.stem}.txt", len(names))
        targets = np.flatnonzero(rows[:, 0] == class_id)
        if not len(targets):
            continue
        picture = cv2.imread(str(image))
        if picture is None:
            continue
        report.images += 1
        height, width = picture.shape[:2]
        boxes = cxcywh_to_xyxy(rows[:, 1:], (width, height))
        written = 0
        for k in range(spec.per_image):
            chosen_box = boxes[int(rng.choice(targets))]
            crop = zoom_crop_region(
                chosen_box, (width, height), float(rng.uniform(*spec.fill)), spec.min_side_px, rng
            )
            if crop is None:
                continue
            stem = f"{source}__{image.stem}__zoom{k}"
            if _write_crop(picture, crop, rows, images_out / f"{stem}.jpg", labels_out / f"{stem}.txt"):
                written += 1
        if not written:
            report.skipped += 1
        report.crops += written
        report.by_source[source] = report.by_source.get(source, 0) + written
    summary = {**asdict(report), "folder": str(images_out), "spec": asdict(spec)}
    (root / f"zoom_crops_{class_name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return report
