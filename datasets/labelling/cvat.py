"""CVAT's "CVAT for images 1.1" XML: write pre-labels for a task, read a task's corrected export.

The format (docs.cvat.ai, "XML annotation format", version 1.1, annotation mode): an
``<annotations>`` root with ``<version>1.1</version>``, a ``<meta>`` naming the task (or job,
or project) and its labels, then one ``<image id name width height>`` per frame holding
``<box label xtl ytl xbr ybr occluded z_order ...>`` (pixels, top-left origin). CVAT
exports it as ``annotations.xml``, alone or in a zip with ``images/``.

Reading keeps boxes; a rotated box (``rotation``) and a ``polygon`` become their
axis-aligned bounding box, with a note; points, polylines, masks, skeletons, ellipses,
cuboids and tags are left out, with a note. A video task's ``<track>`` export is refused:
export the task as "CVAT for images".
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labelling.tasks import LabelBox, LabelTask, ToolImage

__all__ = ["cvat_labels_json", "cvat_xml", "read_cvat"]

_SKIPPED_SHAPES = ("points", "polyline", "mask", "skeleton", "ellipse", "cuboid", "tag")
_PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c")


def _colour(index: int) -> str:
    """A distinct label colour."""
    return _PALETTE[index % len(_PALETTE)]


def cvat_labels_json(class_names: Sequence[str]) -> list[dict[str, object]]:
    """The label list for a CVAT task or project (paste into the "Raw" label constructor)."""
    return [
        {"name": name, "color": _colour(i), "type": "rectangle", "attributes": []}
        for i, name in enumerate(class_names)
    ]


def _sub(parent: ElementTree.Element, tag: str, text: str | None = None) -> ElementTree.Element:
    """Append a child element with optional text."""
    child = ElementTree.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def cvat_xml(tasks: Sequence[LabelTask], class_names: Sequence[str], *, task_name: str) -> str:
    """Pre-labels as a CVAT for images 1.1 file, to upload into a task made of the same images.

    Images are listed in the lexical order of their names, the order CVAT gives a task's
    frames; pre-labels carry ``source="auto"``.

    Returns:
        The XML text.
    """
    now = datetime.now(UTC).isoformat(sep=" ")
    root = ElementTree.Element("annotations")
    _sub(root, "version", "1.1")
    meta = _sub(root, "meta")
    task = _sub(meta, "task")
    ordered = sorted(tasks, key=lambda t: t.name)
    for tag, text in (
        ("id", "0"),
        ("name", task_name),
        ("size", str(len(ordered))),
        ("mode", "annotation"),
        ("overlap", "0"),
        ("bugtracker", ""),
        ("created", now),
        ("updated", now),
        ("subset", "default"),
        ("start_frame", "0"),
        ("stop_frame", str(max(len(ordered) - 1, 0))),
        ("frame_filter", ""),
    ):
        _sub(task, tag, text)
    labels = _sub(task, "labels")
    for i, name in enumerate(class_names):
        label = _sub(labels, "label")
        _sub(label, "name", name)
        _sub(label, "color", _colour(i))
        _sub(label, "type", "rectangle")
        _sub(label, "attributes", "")
    _sub(meta, "dumped", now)
    for frame, item in enumerate(ordered):
        image = _sub(root, "image")
        image.attrib.update(id=str(frame), name=item.name, width=str(item.width), height=str(item.height))
        for box in item.boxes:
            x1, y1, x2, y2 = box.xyxy
            element = _sub(image, "box")
            element.attrib.update(
                label=box.label,
                source="auto" if box.score is not None else "manual",
                occluded="0",
                xtl=f"{x1:.2f}",
                ytl=f"{y1:.2f}",
                xbr=f"{x2:.2f}",
                ybr=f"{y2:.2f}",
                z_order="0",
            )
    ElementTree.indent(root, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def _rotated_envelope(
    x1: float, y1: float, x2: float, y2: float, degrees: float
) -> tuple[float, float, float, float]:
    """Axis-aligned box around a box rotated by ``degrees`` about its centre (CVAT's convention)."""
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = (x2 - x1) / 2, (y2 - y1) / 2
    c, s = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    ext_w, ext_h = half_w * c + half_h * s, half_w * s + half_h * c
    return cx - ext_w, cy - ext_h, cx + ext_w, cy + ext_h


def _read_box(element: ElementTree.Element, image_name: str) -> tuple[LabelBox, str | None]:
    """A ``<box>`` as a label box, and a note when its rotation was flattened."""
    x1, y1, x2, y2 = (float(element.attrib[k]) for k in ("xtl", "ytl", "xbr", "ybr"))
    rotation = float(element.attrib.get("rotation", 0) or 0)
    label = element.attrib.get("label", "")
    if rotation % 180:
        note = f"{image_name}: a {label} box rotated {rotation:g}° read as its axis-aligned bounding box"
        return LabelBox(label, _rotated_envelope(x1, y1, x2, y2, rotation)), note
    return LabelBox(label, (x1, y1, x2, y2)), None


def _point(pair: str) -> tuple[float, float]:
    """One ``x,y`` of a polygon's ``points``."""
    values = pair.split(",")
    if len(values) != 2:
        raise ValueError(f"a polygon point {pair!r} is not x,y")
    return float(values[0]), float(values[1])


def _read_polygon(element: ElementTree.Element, image_name: str) -> tuple[LabelBox, str]:
    """A ``<polygon>`` as its bounding box, with a note."""
    points = [_point(pair) for pair in element.attrib["points"].split(";") if pair]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    label = element.attrib.get("label", "")
    note = f"{image_name}: a {label} polygon read as its bounding box"
    return LabelBox(label, (min(xs), min(ys), max(xs), max(ys))), note


def _xml_text(path: Path) -> bytes:
    """The XML of a CVAT export: the file itself, or ``annotations.xml`` inside a zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "annotations.xml"]
            if not names:
                raise DatasetFormatError(
                    f"{path}: the zip holds no annotations.xml (export 'CVAT for images 1.1')"
                )
            return archive.read(min(names, key=len))
    return path.read_bytes()


def read_cvat(path: Path) -> tuple[list[str], list[ToolImage]]:
    """Read a CVAT for images 1.1 export (``annotations.xml`` or the zip holding it).

    Returns:
        The label names its meta declares (in order), and its images.

    Raises:
        DatasetFormatError: The file is not a CVAT for images export.
    """
    path = Path(path)
    try:
        root = ElementTree.fromstring(_xml_text(path))
    except (OSError, ElementTree.ParseError, zipfile.BadZipFile) as exc:
        raise DatasetFormatError(f"{path}: not a readable CVAT XML file: {exc}") from exc
    if root.tag != "annotations":
        raise DatasetFormatError(f"{path}: expected an <annotations> root (CVAT XML), found <{root.tag}>")
    if root.find("track") is not None:
        raise DatasetFormatError(
            f"{path} is a 'CVAT for video' export (tracks); export the task as 'CVAT for images 1.1'"
        )
    meta = root.find("meta")
    declared = [] if meta is None else [n.text or "" for n in meta.iterfind(".//labels/label/name")]
    images = []
    for element in root.iterfind("image"):
        name = Path(element.attrib.get("name", "")).name
        boxes: list[LabelBox] = []
        notes: list[str] = []
        try:
            for shape in element:
                if shape.tag == "box":
                    box, note = _read_box(shape, name)
                elif shape.tag == "polygon":
                    box, note = _read_polygon(shape, name)
                else:
                    if shape.tag in _SKIPPED_SHAPES:
                        notes.append(
                            f"{name}: a {shape.attrib.get('label', '')} {shape.tag} left out (boxes only)"
                        )
                    continue
                boxes.append(box)
                if note:
                    notes.append(note)
            width, height = int(element.attrib.get("width", 0)), int(element.attrib.get("height", 0))
        except (KeyError, ValueError) as exc:
            raise DatasetFormatError(f"{path}: image {name!r} has a malformed shape: {exc}") from exc
        images.append(ToolImage(name, width, height, tuple(boxes), tuple(notes)))
    return [d for d in declared if d], images
