"""Bring corrected labels back from CVAT or Label Studio as a clean labelled set.

:func:`read_corrections` reads either tool's export (found by its content: CVAT XML or a
zip holding it, Label Studio JSON), finds each image in the export folder through its
manifest (or by file name in an image folder), and returns a :class:`DetectionSet` with
each image's original split and source. Everything that was not carried over exactly is an
:class:`Issue`: labels outside the class list (dropped, error), boxes clipped or dropped,
rotated boxes and polygons flattened, images the tool exported but anjian cannot find.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from anjian.datasets.boxes import clean_boxes
from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labelling.cvat import read_cvat
from anjian.datasets.labelling.label_studio import read_label_studio
from anjian.datasets.labelling.tasks import Manifest, ToolImage, read_manifest
from anjian.datasets.labels import (
    DetectionSet,
    Issue,
    IssueKind,
    LabelledImage,
    Severity,
    empty_boxes,
    list_images,
)

__all__ = ["CorrectionsReport", "read_corrections", "tool_of"]


@dataclass(frozen=True, slots=True)
class CorrectionsReport:
    """What came back.

    Attributes:
        tool: ``cvat`` or ``label_studio``.
        images: Images carried into the set.
        boxes: Boxes carried into the set.
        unlabelled: Tasks left out because nobody annotated them (Label Studio).
        unknown_images: Image names in the export that anjian could not find.
    """

    tool: str
    images: int
    boxes: int
    unlabelled: tuple[str, ...]
    unknown_images: tuple[str, ...]


def tool_of(path: Path) -> str:
    """Which tool an export file comes from: ``cvat`` (XML, or a zip of it) or ``label_studio`` (JSON).

    Raises:
        DatasetFormatError: It is neither.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path} does not exist")
    if zipfile.is_zipfile(path):
        return "cvat"
    with path.open("rb") as fh:
        head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "cvat"
    if head.startswith((b"[", b"{")):
        return "label_studio"
    raise DatasetFormatError(
        f"{path}: neither a CVAT XML export (annotations.xml, or its zip) nor a Label Studio JSON export"
    )


def _image_index(folder: Path, manifest: Manifest | None, images_dir: Path | None) -> dict[str, Path]:
    """Export name to image file: the export's ``images/``, else any image under ``images_dir``."""
    index: dict[str, Path] = {}
    if images_dir is not None:
        for image in list_images(images_dir):
            index.setdefault(image.name, image)
    if manifest is not None:
        for name, record in manifest.images.items():
            copy = folder / "images" / name
            index[name] = copy if copy.is_file() else Path(str(record["image"]))
    return index


def _size(image: Path, tool: ToolImage) -> tuple[int, int]:
    """The image's width and height: as the tool saw it, else read from the file."""
    if tool.width > 0 and tool.height > 0:
        return tool.width, tool.height
    picture = cv2.imread(str(image))
    if picture is None:
        raise DatasetFormatError(f"{image}: cannot read the image to learn its size")
    return int(picture.shape[1]), int(picture.shape[0])


def _boxes(
    tool: ToolImage, image: Path, class_names: Sequence[str], width: int, height: int
) -> tuple[np.ndarray, list[Issue]]:
    """One image's boxes as normalised ``class, cx, cy, w, h`` rows, and what went wrong."""
    issues = [Issue(IssueKind.CONVERTED_SHAPE, Severity.WARNING, image, note) for note in tool.notes]
    rows = []
    for box in tool.boxes:
        if box.label not in class_names:
            issues.append(
                Issue(
                    IssueKind.UNKNOWN_CLASS,
                    Severity.ERROR,
                    image,
                    f"label {box.label!r} is not one of {list(class_names)}: box dropped",
                )
            )
            continue
        x1, y1, x2, y2 = box.xyxy
        rows.append(
            [
                class_names.index(box.label),
                (x1 + x2) / 2 / width,
                (y1 + y2) / 2 / height,
                (x2 - x1) / width,
                (y2 - y1) / height,
            ]
        )
    raw = np.array(rows, np.float32).reshape(-1, 5) if rows else empty_boxes()
    boxes, box_issues = clean_boxes(raw, len(class_names), image)
    return boxes, issues + box_issues


def read_corrections(
    export_file: Path,
    *,
    labelling_dir: Path | None = None,
    images_dir: Path | None = None,
    class_names: Sequence[str] | None = None,
    split: str = "train",
    name: str = "corrected",
) -> tuple[DetectionSet, CorrectionsReport]:
    """Read corrected labels exported by CVAT or Label Studio into a labelled set.

    Args:
        export_file: CVAT ``annotations.xml`` (or its zip) or Label Studio's JSON export.
        labelling_dir: The folder ``label-export`` wrote (its manifest gives each image's file,
            split and source); default: the export file's folder or its parent, if either
            holds a manifest.
        images_dir: Where to find images by file name when there is no manifest.
        class_names: Class list (ids in this order); default: the manifest's, else the
            labels the tool declares, else those it uses, sorted.
        split: Split of images the manifest does not place.
        name: Name of the set (and source of images the manifest does not place).

    Returns:
        The set (its ``issues`` say what was changed or dropped) and a summary.

    Raises:
        DatasetFormatError: The export cannot be read, or no image of it can be found.
    """
    export_file = Path(export_file)
    tool = tool_of(export_file)
    if labelling_dir is None:
        labelling_dir = next(
            (d for d in (export_file.parent, export_file.parent.parent) if read_manifest(d) is not None),
            export_file.parent,
        )
    manifest = read_manifest(labelling_dir)
    declared: list[str] = []
    unlabelled: list[str] = []
    if tool == "cvat":
        declared, tool_images = read_cvat(export_file)
    else:
        tool_images, unlabelled = read_label_studio(export_file)
    if class_names is None:
        class_names = (
            manifest.class_names
            if manifest is not None
            else tuple(declared) or tuple(sorted({b.label for t in tool_images for b in t.boxes}))
        )
    index = _image_index(labelling_dir, manifest, images_dir)
    dataset = DetectionSet(name=name, class_names=tuple(class_names))
    unknown: list[str] = []
    for tool_image in tool_images:
        image = index.get(tool_image.name)
        if image is None or not image.is_file():
            unknown.append(tool_image.name)
            continue
        record = manifest.images.get(tool_image.name, {}) if manifest is not None else {}
        width, height = _size(image, tool_image)
        boxes, issues = _boxes(tool_image, image, dataset.class_names, width, height)
        dataset.issues.extend(issues)
        dataset.images.append(
            LabelledImage(
                image=image,
                split=str(record.get("split", split)),
                boxes=boxes,
                source=str(record.get("source", name)),
            )
        )
    for missing in unknown:
        dataset.issues.append(
            Issue(
                IssueKind.MISSING_IMAGE,
                Severity.ERROR,
                export_file,
                f"image {missing!r} of the export is not in {labelling_dir / 'images'}"
                + (f" or {images_dir}" if images_dir else ""),
            )
        )
    if not dataset.images:
        raise DatasetFormatError(
            f"{export_file}: none of its {len(tool_images)} image(s) found"
            + (f" ({len(unlabelled)} task(s) not annotated yet)" if unlabelled else "")
            + "; pass the label-export folder (--labelling) or the image folder (--images)"
        )
    # a reviewed image is labelled for every class of the list, whatever source it came from
    dataset.labelled_classes = {s: dataset.class_names for s in sorted({im.source for im in dataset.images})}
    report = CorrectionsReport(
        tool, len(dataset.images), dataset.box_count(), tuple(unlabelled), tuple(unknown)
    )
    return dataset, report
