"""In-memory labelled detection sets: images, normalised boxes, class names and issues.

Every importer (:mod:`anjian.datasets.yolo`, :mod:`anjian.datasets.coco`) produces a
:class:`DetectionSet`; merge, split, stats and the writer consume one. Problems found while
reading or checking a set are :class:`Issue` records gathered in a report rather than
exceptions, so an analyst sees every problem of a set at once.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "WHOLE_SPLIT",
    "DetectionSet",
    "Issue",
    "IssueKind",
    "LabelledImage",
    "ProgressFn",
    "Severity",
    "empty_boxes",
    "group_key",
    "list_images",
    "no_progress",
    "video_key",
]

T = TypeVar("T")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""File suffixes (lower case) read as images."""

_AUGMENTED_MARK = ".rf."  # Roboflow names augmented copies <original>.rf.<hash>.jpg
# Roboflow names a frame it sampled from an uploaded video <video>_mp4-<frame>_jpg
_VIDEO_FRAME = re.compile(
    r"^(?P<video>.+_(?:mp4|avi|mov|mkv|webm|m4v|mpg|mpeg|flv|wmv))-\d+(?:_[a-z]+)?$", re.IGNORECASE
)
# a set that names frames <video><frame>_png (no separator): CarOne123_png, Img_25883_jpg
_NUMBERED_FRAME = re.compile(r"^(?P<video>.*[A-Za-z_-])\d+(?:_(?:png|jpe?g|bmp|webp))?$", re.IGNORECASE)
# a recording seen by several cameras, one video each: fall-01-cam0-rgb-, fall-01-cam1-rgb-
_CAMERA_VIEW = re.compile(r"^(?P<recording>.+?)-cam\d+(?:[-_][A-Za-z0-9]+)*[-_]?$", re.IGNORECASE)


class ProgressFn(Protocol):
    """Wraps an iterable to show progress (the CLI passes a rich progress bar)."""

    def __call__(self, items: Iterable[T], description: str, total: int) -> Iterable[T]:
        """Yield ``items`` unchanged while reporting progress."""
        ...


def no_progress(items: Iterable[T], description: str, total: int) -> Iterable[T]:
    """The silent :class:`ProgressFn`."""
    return items


def group_key(image: Path) -> str:
    """Name shared by an image and its augmented copies: the stem before ``.rf.``.

    Roboflow exports augmented copies of one photo as ``<name>.rf.<hash>.jpg``; they must
    stay on one side of a train/val split, or val measures memory instead of generalisation.

    Example:
        >>> group_key(Path("10_100052_png_jpg.rf.753a6df7.jpg"))
        '10_100052_png_jpg'
    """
    name = image.name
    cut = name.find(_AUGMENTED_MARK)
    return name[:cut] if cut > 0 else image.stem


def video_key(image: Path, *, is_frame_numbered: bool = False, is_multi_camera: bool = False) -> str:
    """Name shared by every frame sampled from one video, else the image's :func:`group_key`.

    Roboflow names a frame of an uploaded video ``<video>_mp4-<frame>_jpg`` (then ``.rf.<hash>``).
    Some sets append the frame number to the video's name (``CarOne123_png``): say so with
    ``is_frame_numbered`` (it would also join stills named ``img_1``, ``img_2`` ..., so it is
    asked for per set, never guessed). Neighbouring frames are near copies: a val split holding
    frames of a training video measures memory, so a split meant to measure the model keeps
    each video on one side. Sets that film one scene with several cameras name each view's
    video ``<recording>-cam<k>-…`` (UR Fall: ``fall-01-cam0-rgb-``); with ``is_multi_camera``
    the key is the recording, so a fall's views stay on one side too.

    Example:
        >>> video_key(Path("fire2_mp4-79_jpg.rf.82c481ab.jpg"))
        'fire2_mp4'
        >>> video_key(Path("img_727_jpg.rf.72947ba6.jpg"))
        'img_727_jpg'
        >>> video_key(Path("CarOne123_png.rf.5e1d.jpg"), is_frame_numbered=True)
        'CarOne'
        >>> video_key(Path("fall-01-cam1-rgb-076_png.rf.9e2a.jpg"), is_frame_numbered=True, is_multi_camera=True)
        'fall-01'
    """
    group = group_key(image)
    found = _VIDEO_FRAME.match(group) or (_NUMBERED_FRAME.match(group) if is_frame_numbered else None)
    video = found["video"] if found else group
    view = _CAMERA_VIEW.match(video) if is_multi_camera else None
    return view["recording"] if view else video


class Severity(StrEnum):
    """How bad an issue is: errors lose data, warnings were repaired, info is worth knowing."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class IssueKind(StrEnum):
    """What is wrong with a file of a set."""

    MISSING_IMAGE = "missing_image"
    """A label file has no image next to it."""
    UNREADABLE_IMAGE = "unreadable_image"
    """The image file is empty or cannot be decoded."""
    MALFORMED_LINE = "malformed_line"
    """A label line is not ``class cx cy w h`` with numbers."""
    UNKNOWN_CLASS = "unknown_class"
    """A class id or category the set does not name."""
    BOX_OUT_OF_RANGE = "box_out_of_range"
    """A box leaves the image (clipped) or has no area (dropped)."""
    DUPLICATE_BOX = "duplicate_box"
    """The same class and box twice in one image (one kept)."""
    DUPLICATE_IMAGE = "duplicate_image"
    """Two image files with the same bytes."""
    EMPTY_LABEL_FILE = "empty_label_file"
    """A label file without boxes: a background image (fine if meant)."""
    MISSING_LABEL_FILE = "missing_label_file"
    """An image without a label file: read as a background image."""
    GROUP_ACROSS_SPLITS = "group_across_splits"
    """Augmented copies of one photo sit in different splits."""
    CONVERTED_SHAPE = "converted_shape"
    """A labelling tool's shape stored as an axis-aligned box (rotated box, polygon) or left out."""
    MISPLACED_LABEL_FILE = "misplaced_label_file"
    """A label file beside its image instead of under ``labels/``: not read (YOLO looks in ``labels/``)."""
    CROWD_REGION = "crowd_region"
    """A COCO crowd annotation (``iscrowd``) left out: the objects in it read as background."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a set.

    Attributes:
        kind: What is wrong.
        severity: Error (data lost), warning (repaired) or info.
        path: The file concerned.
        detail: Human-readable specifics (line number, values).
    """

    kind: IssueKind
    severity: Severity
    path: Path
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "path": str(self.path),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class LabelledImage:
    """One image and its boxes.

    Attributes:
        image: Path of the image file.
        split: Split it belongs to (``train``, ``val``, ...).
        boxes: ``(n, 5) float32`` rows ``class_id, cx, cy, w, h``; coordinates normalised to
            ``[0, 1]`` by the image's width and height.
        source: Name of the set it was read from (kept through merges).
    """

    image: Path
    split: str
    boxes: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        """Check the box array's shape."""
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 5:
            raise ValueError(f"boxes must be (n, 5) class,cx,cy,w,h rows; got shape {self.boxes.shape}")

    @property
    def group(self) -> str:
        """Group of augmented copies this image belongs to (see :func:`group_key`)."""
        return group_key(self.image)

    @property
    def class_ids(self) -> np.ndarray:
        """``(n,) int64`` class ids of the boxes."""
        return self.boxes[:, 0].astype(np.int64)

    def replace(self, **changes: object) -> LabelledImage:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


WHOLE_SPLIT = "all"
"""Split name of a set scored whole (:meth:`DetectionSet.as_one_split`)."""


@dataclass(slots=True)
class DetectionSet:
    """A labelled detection set in memory.

    Attributes:
        name: Short name (used to prefix file names when sets are merged).
        class_names: Class id to name, in id order.
        images: The labelled images of every split.
        issues: Problems found while reading it.
        labelled_classes: Per source set, the class names that source labels exhaustively;
            boxes of other classes may be missing from its images (see ``merge``).
    """

    name: str
    class_names: tuple[str, ...]
    images: list[LabelledImage] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    labelled_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        """Split names present, train first, then val, then the rest sorted."""
        order = {"train": 0, "val": 1, "test": 2}
        return sorted({im.split for im in self.images}, key=lambda s: (order.get(s, 3), s))

    def in_split(self, split: str) -> list[LabelledImage]:
        """Images of one split."""
        return [im for im in self.images if im.split == split]

    def as_one_split(self, split: str = WHOLE_SPLIT) -> DetectionSet:
        """The same set with every image (train, val, test) in ``split``: a source scored whole.

        Used where a model is judged on a source it never trained on, so that no split of it is
        any less unseen than another.
        """
        return dataclasses.replace(self, images=[im.replace(split=split) for im in self.images])

    def box_count(self) -> int:
        """Total number of boxes."""
        return sum(len(im.boxes) for im in self.images)

    def __iter__(self) -> Iterator[LabelledImage]:
        """Iterate over the images."""
        return iter(self.images)

    def __len__(self) -> int:
        """Number of images."""
        return len(self.images)


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, through symlinked sub-folders), sorted.

    Ultralytics finds a split's images with a recursive glob, which enters a symlinked
    sub-folder (``images/train/siteA -> /data/siteA/images/train``): every tool here must see
    the same images, or a set is validated, counted and hashed without images it trains on. A
    link back to a folder being walked (a loop) is not entered again. Paths are kept as walked
    (not resolved), so each image's label file is found where ultralytics looks for it.
    """
    found: list[Path] = []
    ancestors: dict[str, frozenset[str]] = {str(folder): frozenset({os.path.realpath(folder)})}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        above = ancestors.pop(dirpath, frozenset())
        kept = []
        for name in sorted(dirnames):
            child = os.path.join(dirpath, name)
            real = os.path.realpath(child)
            if real not in above:  # a link to a folder on the way down: a loop
                kept.append(name)
                ancestors[child] = above | {real}
        dirnames[:] = kept
        for name in filenames:
            path = Path(dirpath, name)
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found.append(path)
    return sorted(found)


def empty_boxes() -> np.ndarray:
    """A ``(0, 5) float32`` box array."""
    return np.zeros((0, 5), np.float32)
