"""Label Studio's JSON: tasks with pre-labels to import, a project's JSON export to read back.

The formats (labelstud.io, "Import pre-annotated data" and "Label Studio JSON format of
annotated tasks"): a list of tasks, each with ``data`` (``data.image``: the image's URL) and
``predictions`` (import) or ``annotations`` (export), whose ``result`` items of type
``rectanglelabels`` hold ``value.x``, ``value.y``, ``value.width``, ``value.height`` in
percent of the image (``original_width`` × ``original_height`` pixels), top-left corner,
``value.rotation`` in degrees about that corner, and ``value.rectanglelabels``.

Each exported task also carries ``data.anjian_image`` (the image's export name), which
Label Studio keeps through its export, so corrections find their image whatever URL
served it.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from xml.sax.saxutils import quoteattr

from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labelling.tasks import LabelBox, LabelTask, ToolImage

__all__ = [
    "FROM_NAME",
    "IMAGE_KEY",
    "LOCAL_FILES_URL",
    "TO_NAME",
    "label_config",
    "label_studio_tasks",
    "read_label_studio",
]

FROM_NAME = "label"
"""Name of the ``RectangleLabels`` control in the labeling configuration."""
TO_NAME = "image"
"""Name of the ``Image`` object."""
IMAGE_KEY = "anjian_image"
"""Task data key holding the export name of the image."""
LOCAL_FILES_URL = "/data/local-files/?d=images/{name}"
"""Default image URL: Label Studio's local files, with the export folder as document root."""

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio renames uploads to <8 hex>-<name>
_PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c")


def label_config(class_names: Sequence[str]) -> str:
    """The labeling configuration of a box project over these classes (Settings > Labeling Interface > Code)."""
    labels = "\n".join(
        f"    <Label value={quoteattr(name)} background={quoteattr(_PALETTE[i % len(_PALETTE)])}/>"
        for i, name in enumerate(class_names)
    )
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image" zoom="true" zoomControl="true"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n'
        f"{labels}\n"
        "  </RectangleLabels>\n"
        "</View>\n"
    )


def _percent(box: LabelBox, width: int, height: int) -> dict[str, object]:
    """A box as a ``rectanglelabels`` value, in percent of the image."""
    x1, y1, x2, y2 = box.xyxy
    return {
        "x": 100.0 * x1 / width,
        "y": 100.0 * y1 / height,
        "width": 100.0 * (x2 - x1) / width,
        "height": 100.0 * (y2 - y1) / height,
        "rotation": 0,
        "rectanglelabels": [box.label],
    }


def label_studio_tasks(
    tasks: Sequence[LabelTask], *, model_version: str, image_url: str = LOCAL_FILES_URL
) -> list[dict[str, object]]:
    """Tasks with the pre-labels as ``predictions``, to import into a project set up with :func:`label_config`.

    Args:
        tasks: The images and their pre-labels.
        model_version: Recorded on each prediction (Label Studio shows and filters by it).
        image_url: URL of each image; ``{name}`` is replaced by its export name.

    Returns:
        The JSON-ready task list.
    """
    out: list[dict[str, object]] = []
    for task in tasks:
        result = []
        for k, box in enumerate(task.boxes):
            item: dict[str, object] = {
                "id": f"p{k}",
                "type": "rectanglelabels",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "original_width": task.width,
                "original_height": task.height,
                "image_rotation": 0,
                "value": _percent(box, task.width, task.height),
            }
            if box.score is not None:
                item["score"] = round(box.score, 4)
            result.append(item)
        scores = [b.score for b in task.boxes if b.score is not None]
        prediction: dict[str, object] = {"model_version": model_version, "result": result}
        if scores:
            prediction["score"] = round(min(scores), 4)  # the least sure box: sort tasks by it
        out.append(
            {
                "data": {"image": image_url.format(name=task.name), IMAGE_KEY: task.name},
                "predictions": [prediction],
            }
        )
    return out


def _image_name(data: Mapping[str, Any]) -> str:
    """The export name of a task's image: ``anjian_image``, else from the image URL."""
    if data.get(IMAGE_KEY):
        return str(data[IMAGE_KEY])
    url = str(data.get("image", ""))
    parsed = urlparse(url)
    local = parse_qs(parsed.query).get("d")
    path = unquote(local[0]) if local else unquote(parsed.path)
    name = posixpath.basename(path)
    if "/data/upload/" in parsed.path:
        name = _UPLOAD_PREFIX.sub("", name)
    return name


def _chosen_annotation(annotations: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The annotation to use: not cancelled; a ground-truth one first, else the latest."""
    usable = [a for a in annotations if isinstance(a, Mapping) and not a.get("was_cancelled")]
    if not usable:
        return None
    truth = [a for a in usable if a.get("ground_truth")]
    pool = truth or usable
    return max(pool, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))


def _rectangle(item: Mapping[str, Any], name: str) -> tuple[LabelBox | None, str | None]:
    """A ``rectanglelabels`` result as a box in pixels (and a note), or why it was left out."""
    value = item.get("value", {})
    labels = value.get("rectanglelabels") or []
    width, height = item.get("original_width"), item.get("original_height")
    if not labels:
        return None, f"{name}: a box without a label left out"
    if not width or not height:
        return None, f"{name}: a {labels[0]} box without original_width/original_height left out"
    x, y = float(value["x"]) / 100 * width, float(value["y"]) / 100 * height
    w, h = float(value["width"]) / 100 * width, float(value["height"]) / 100 * height
    rotation = float(value.get("rotation", 0) or 0)
    if not rotation % 360:
        return LabelBox(str(labels[0]), (x, y, x + w, y + h)), None
    # Label Studio rotates clockwise about the top-left corner
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    corners = [(x + dx * c - dy * s, y + dx * s + dy * c) for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    note = f"{name}: a {labels[0]} box rotated {rotation:g}° read as its axis-aligned bounding box"
    return LabelBox(str(labels[0]), (min(xs), min(ys), max(xs), max(ys))), note


def _task_image(task: Mapping[str, Any], annotation: Mapping[str, Any]) -> ToolImage:
    """One annotated task as an image with boxes."""
    name = _image_name(task.get("data", {}))
    boxes: list[LabelBox] = []
    notes: list[str] = []
    width = height = 0
    for item in annotation.get("result", []):
        if not isinstance(item, Mapping):
            continue
        if item.get("type") != "rectanglelabels":
            if item.get("type", "").endswith("labels"):
                notes.append(f"{name}: a {item.get('type')} region left out (boxes only)")
            continue
        width = int(item.get("original_width") or width)
        height = int(item.get("original_height") or height)
        box, note = _rectangle(item, name)
        if box is not None:
            boxes.append(box)
        if note:
            notes.append(note)
    return ToolImage(name, width, height, tuple(boxes), tuple(notes))


def read_label_studio(path: Path) -> tuple[list[ToolImage], list[str]]:
    """Read a Label Studio JSON export (Export > JSON): each task's chosen annotation.

    A task nobody annotated (no annotation, or all skipped) is left out: unreviewed
    pre-labels are not labels. A task with an annotation holding no box is a reviewed
    background image.

    Returns:
        The annotated images, and the names of the tasks left out for lack of an annotation.

    Raises:
        DatasetFormatError: The file is not a Label Studio JSON export.
    """
    path = Path(path)
    try:
        tasks = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetFormatError(f"{path}: not a readable JSON file: {exc}") from exc
    if isinstance(tasks, Mapping):
        tasks = [tasks]
    if not isinstance(tasks, list) or not all(isinstance(t, Mapping) and "data" in t for t in tasks):
        raise DatasetFormatError(
            f"{path}: expected Label Studio's JSON export (a list of tasks with 'data' and 'annotations'); "
            "export the project as JSON, not JSON-MIN or CSV"
        )
    images: list[ToolImage] = []
    unlabelled: list[str] = []
    for number, task in enumerate(tasks):
        try:
            annotation = _chosen_annotation(task.get("annotations") or task.get("completions") or [])
            if annotation is None:
                unlabelled.append(_image_name(task.get("data", {})))
                continue
            images.append(_task_image(task, annotation))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # a value of another kind than Label Studio writes (a list where a mapping goes, text for a number)
            raise DatasetFormatError(
                f"{path}: task {task.get('id', f'#{number + 1}')!s} is not as Label Studio exports it "
                f"({type(exc).__name__}: {exc}); export the project again"
            ) from exc
    return images, unlabelled
