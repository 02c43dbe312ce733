"""Write the images of a set, with pre-labels, as a folder CVAT and Label Studio both import.

:func:`tasks_from_set` turns a labelled set (a harvest's ``to_label``, any YOLO set) into
:class:`LabelTask` records whose pre-labels are the set's own boxes or a model's
predictions; :func:`write_labelling_export` writes them out (layout in
:mod:`anjian.datasets.labelling.tasks`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2

from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labelling.cvat import cvat_labels_json, cvat_xml
from anjian.datasets.labelling.label_studio import LOCAL_FILES_URL, label_config, label_studio_tasks
from anjian.datasets.labelling.tasks import MANIFEST_NAME, LabelBox, LabelTask, Manifest, unique_names
from anjian.datasets.labels import DetectionSet, LabelledImage, ProgressFn, no_progress

__all__ = ["tasks_from_set", "write_labelling_export"]

_README = """# Images to label: {count} images, classes {classes}

Pre-labels: {origin}. Every image is in `images/`.

## CVAT
1. Create a task (or a project) with these labels: Labels > Raw, paste `cvat/labels.json`.
2. Select files: every file of `images/` (CVAT orders them by name, as `annotations.xml` does).
3. On the task: Actions > Upload annotations > format "CVAT 1.1", file `cvat/annotations.xml`.
4. Correct the boxes; save.
5. Actions > Export task dataset > format "CVAT for images 1.1" (images not needed), then
   `anjian dataset label-import <the zip or annotations.xml> --labelling {folder} --out <new set>`

## Label Studio
1. Start it with local files served from this folder:
   `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={folder} label-studio`
   (the tasks point at `{image_url}`).
2. Create a project; Settings > Labeling Interface > Code: paste `label_studio/config.xml`.
3. Settings > Cloud Storage > Add Source Storage > Local files, path `{folder}/images`
   (Import method "Tasks"; Save, do not sync), then Import `label_studio/tasks.json`.
4. Correct each task and submit it (a task nobody submits stays out of the set).
5. Export > JSON, then
   `anjian dataset label-import <the exported .json> --labelling {folder} --out <new set>`

Only boxes come back: draw rectangles. A rotated rectangle or a polygon comes back as its
upright bounding box; other shapes are left out (the import says which).
"""


def _image_size(path: Path) -> tuple[int, int]:
    """Width and height of an image file."""
    picture = cv2.imread(str(path))
    if picture is None:
        raise DatasetFormatError(f"{path}: cannot read the image")
    return int(picture.shape[1]), int(picture.shape[0])


def _own_boxes(
    item: LabelledImage, class_names: Sequence[str], width: int, height: int
) -> tuple[LabelBox, ...]:
    """A labelled image's boxes as pre-labels in pixels."""
    out = []
    for c, cx, cy, w, h in item.boxes.tolist():
        x1, y1 = (cx - w / 2) * width, (cy - h / 2) * height
        out.append(LabelBox(class_names[int(c)], (x1, y1, x1 + w * width, y1 + h * height)))
    return tuple(out)


def tasks_from_set(
    dataset: DetectionSet,
    *,
    predictions: Mapping[Path, Sequence[LabelBox]] | None = None,
    split: str | None = None,
    progress: ProgressFn = no_progress,
) -> list[LabelTask]:
    """The images of a set as labelling tasks, each image once.

    Args:
        dataset: The set (an image listed in several splits, as in a harvest folder, counts once).
        predictions: Pre-labels per image file (a model's boxes); ``None``: the set's own boxes.
        split: Only this split; all when ``None``.
        progress: Wraps the per-image loop.

    Raises:
        DatasetFormatError: An image cannot be read, or the split is empty.
    """
    seen: set[Path] = set()
    items = []
    for item in dataset.images:
        key = item.image.resolve()
        if (split is None or item.split == split) and key not in seen:
            seen.add(key)
            items.append(item)
    if not items:
        raise DatasetFormatError(f"{dataset.name} has no images{f' in split {split!r}' if split else ''}")
    names = unique_names([(item.image, item.source or dataset.name) for item in items])
    tasks = []
    for item, name in progress(list(zip(items, names, strict=True)), "label tasks", len(items)):
        width, height = _image_size(item.image)
        if predictions is None:
            boxes = _own_boxes(item, dataset.class_names, width, height)
        else:
            boxes = tuple(predictions.get(item.image, ()))
        tasks.append(
            LabelTask(name, item.image, width, height, item.split, item.source or dataset.name, boxes)
        )
    return tasks


def write_labelling_export(
    tasks: Sequence[LabelTask],
    class_names: Sequence[str],
    out_dir: Path,
    *,
    model: str = "",
    image_url: str = LOCAL_FILES_URL,
    task_name: str = "anjian",
    progress: ProgressFn = no_progress,
) -> Path:
    """Copy the images and write the pre-labels for CVAT and Label Studio, the manifest and a README.

    Args:
        tasks: The images and their pre-labels (:func:`tasks_from_set`).
        class_names: The classes to label, in id order (every pre-label's class must be one).
        out_dir: The export folder (created).
        model: Version of the model that made the pre-labels; empty when they are the set's own.
        image_url: Label Studio's URL of each image, ``{name}`` replaced by its file name.
        task_name: Name of the CVAT task in the XML.
        progress: Wraps the copy loop.

    Returns:
        Path of the manifest.

    Raises:
        ValueError: A pre-label's class is not in ``class_names``, or ``image_url`` lacks ``{name}``.
    """
    if "{name}" not in image_url:
        raise ValueError(f"the image URL needs a {{name}} placeholder, got {image_url!r}")
    stray = sorted({b.label for t in tasks for b in t.boxes} - set(class_names))
    if stray:
        raise ValueError(
            f"pre-labels of classes {stray} are not among the classes to label {list(class_names)}"
        )
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for task in progress(tasks, "copy images", len(tasks)):
        shutil.copyfile(task.image, out_dir / "images" / task.name)
    (out_dir / "cvat").mkdir(exist_ok=True)
    (out_dir / "cvat" / "annotations.xml").write_text(cvat_xml(tasks, class_names, task_name=task_name))
    (out_dir / "cvat" / "labels.json").write_text(json.dumps(cvat_labels_json(class_names), indent=2) + "\n")
    (out_dir / "label_studio").mkdir(exist_ok=True)
    version = model or "labels of the set"
    ls_tasks = label_studio_tasks(tasks, model_version=version, image_url=image_url)
    (out_dir / "label_studio" / "tasks.json").write_text(json.dumps(ls_tasks, indent=2) + "\n")
    (out_dir / "label_studio" / "config.xml").write_text(label_config(class_names))
    manifest = out_dir / MANIFEST_NAME
    manifest.write_text(json.dumps(Manifest.from_tasks(tasks, class_names, model).to_dict(), indent=2) + "\n")
    (out_dir / "README.md").write_text(
        _README.format(
            count=len(tasks),
            classes=", ".join(class_names),
            origin=f"boxes of model {model}" if model else "the set's own labels",
            folder=out_dir.resolve(),
            image_url=image_url,
        )
    )
    return manifest
