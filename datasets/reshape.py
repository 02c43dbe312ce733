"""Non-square copies of a labelled split: each image cut to a camera's aspect (16:9, 4:3), its boxes clipped.

Why: most public detection sets are exported as squares (Roboflow stretches every image to
640x640), while CCTV frames are 16:9 or 4:3. A model whose input size is free (``anjian
export --free-input``) runs such frames without the square's padding bands, and a square
val split cannot show what that does: at the square and free alike it runs at the square.
Scoring a version on a reshaped copy of each val split (``anjian eval``, ``anjian models
free-input --cross-data``) shows it per class and source.

Each image is cut to one window of the aspects asked for, in turn (the first image to the
first aspect, the second to the second, ...): the whole width and a band of the height
for a wider aspect, the whole height and a band of the width for a narrower one, at an
offset drawn from ``seed``. A box keeps its place in the picture (clipped to the window) if
at least ``min_visible`` of its area lies inside; one cut further is dropped and counted
(``boxes_dropped``): a sliver of an object is neither a fair miss nor a fair find.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anjian.datasets.boxes import cxcywh_to_xyxy
from anjian.datasets.errors import DatasetError
from anjian.datasets.labels import DetectionSet, LabelledImage, ProgressFn, no_progress

__all__ = ["ReshapeReport", "parse_aspect", "reshape_set"]

_ASPECT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:/]\s*(\d+(?:\.\d+)?)\s*$")
_JPEG_QUALITY = 95  # the crops are scored, not stored for long: keep what the source had


def parse_aspect(text: str) -> float:
    """Width over height from ``"16:9"``, ``"4:3"`` or ``"1.85:1"`` (``/`` works as well as ``:``).

    Raises:
        ValueError: Not two positive numbers separated by ``:`` or ``/``.
    """
    match = _ASPECT.match(text)
    if not match or float(match[1]) <= 0 or float(match[2]) <= 0:
        raise ValueError(
            f"aspect {text!r}: expected width:height with two positive numbers, e.g. 16:9 or 4:3"
        )
    return float(match[1]) / float(match[2])


@dataclass(slots=True)
class ReshapeReport:
    """What :func:`reshape_set` wrote.

    Attributes:
        images: Images cut, per aspect as given (e.g. ``{"16:9": 201, "4:3": 201}``).
        boxes_kept: Boxes inside their window (at least ``min_visible`` of their area).
        boxes_dropped: Boxes cut further than that, left out of the labels.
        unreadable: Images that could not be read (left out, named).
    """

    images: dict[str, int] = field(default_factory=dict)
    boxes_kept: int = 0
    boxes_dropped: int = 0
    unreadable: list[Path] = field(default_factory=list)


def reshape_set(
    dataset: DetectionSet,
    aspects: Sequence[str],
    crops_dir: Path,
    *,
    splits: Sequence[str] = ("val",),
    min_visible: float = 0.5,
    seed: int = 0,
    progress: ProgressFn = no_progress,
) -> tuple[DetectionSet, ReshapeReport]:
    """Cut every image of ``splits`` to one of ``aspects`` in turn and clip its boxes to the window.

    Args:
        dataset: The set to reshape (its other splits are left out of the result).
        aspects: Window shapes as ``width:height`` (see :func:`parse_aspect`), used in turn.
        crops_dir: Folder the cut images are written into as JPEG (created; one sub-folder per
            source and split, so equal names from two sources never collide).
        splits: The splits to reshape.
        min_visible: Share of a box's area that must lie inside the window for it to stay.
        seed: Draws the windows' offsets; the same seed cuts the same windows.
        progress: Wraps the per-image loop.

    Returns:
        The reshaped set (same classes and ``labelled_classes``; images in ``crops_dir``) and what was done.

    Raises:
        ValueError: No aspect, a malformed one, or ``min_visible`` outside ``(0, 1]``.
        DatasetError: None of ``splits`` has an image.
    """
    import cv2

    if not aspects:
        raise ValueError("give at least one aspect (width:height, e.g. 16:9)")
    ratios = [parse_aspect(a) for a in aspects]
    if not 0.0 < min_visible <= 1.0:
        raise ValueError(f"min_visible must be in (0, 1], got {min_visible}")
    chosen = [im for im in dataset if im.split in splits]
    if not chosen:
        raise DatasetError(
            f"{dataset.name}: no image in split(s) {', '.join(splits)} (it has {dataset.splits})"
        )
    rng = random.Random(seed)
    report = ReshapeReport(images={a: 0 for a in aspects})
    reshaped: list[LabelledImage] = []
    for index, item in enumerate(progress(chosen, f"reshape {dataset.name}", len(chosen))):
        image = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
        if image is None:
            report.unreadable.append(item.image)
            continue
        aspect = aspects[index % len(aspects)]
        x0, y0, width, height = _window(image.shape[1], image.shape[0], ratios[index % len(ratios)], rng)
        boxes, dropped = _clip_boxes(
            item.boxes, (image.shape[1], image.shape[0]), (x0, y0, width, height), min_visible
        )
        out = crops_dir / (item.source or dataset.name) / item.split / f"{item.image.stem}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(
            str(out), image[y0 : y0 + height, x0 : x0 + width], [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
        ):
            raise OSError(f"could not write {out}")
        reshaped.append(item.replace(image=out, boxes=boxes))
        report.images[aspect] += 1
        report.boxes_kept += len(boxes)
        report.boxes_dropped += dropped
    result = DetectionSet(
        name=f"{dataset.name}-{'-'.join(a.replace(':', 'x') for a in aspects)}",
        class_names=dataset.class_names,
        images=reshaped,
        labelled_classes=dict(dataset.labelled_classes),
    )
    return result, report


def _window(width: int, height: int, aspect: float, rng: random.Random) -> tuple[int, int, int, int]:
    """``(x0, y0, w, h)`` of a window of ``aspect`` as large as the image allows, at a drawn offset."""
    if width / height >= aspect:  # the image is wider: keep the whole height
        crop_w, crop_h = max(1, min(width, round(height * aspect))), height
    else:
        crop_w, crop_h = width, max(1, min(height, round(width / aspect)))
    return rng.randint(0, width - crop_w), rng.randint(0, height - crop_h), crop_w, crop_h


def _clip_boxes(
    boxes: np.ndarray, image_wh: tuple[int, int], window: tuple[int, int, int, int], min_visible: float
) -> tuple[np.ndarray, int]:
    """The ``(k, 5)`` boxes normalised to the window, those with ``min_visible`` of their area inside; and how many went."""
    if not len(boxes):
        return boxes.astype(np.float32).reshape(0, 5), 0
    x0, y0, width, height = window
    corners = cxcywh_to_xyxy(boxes[:, 1:5], image_wh) - np.array([x0, y0, x0, y0], np.float64)
    clipped = np.clip(corners, 0, [width, height, width, height])
    area = np.prod(corners[:, 2:] - corners[:, :2], axis=1)
    inside = np.prod(np.maximum(clipped[:, 2:] - clipped[:, :2], 0), axis=1)
    keep = inside >= min_visible * np.maximum(area, 1e-9)
    kept = clipped[keep]
    scale = np.array([width, height], np.float64)
    centre = (kept[:, :2] + kept[:, 2:]) / 2 / scale
    size = (kept[:, 2:] - kept[:, :2]) / scale
    rows = np.concatenate([boxes[keep, :1], centre, size], axis=1).astype(np.float32)
    return rows, int((~keep).sum())
