"""Any export a labelling tool or a COCO file holds, however mangled, is read or refused by name.

Analysts import what CVAT, Label Studio and other people's COCO files give them; a value of
another kind (a list where a mapping goes, text for a number, NaN, a point without its y) must end
in a ``DatasetError`` naming the file and the task or image, never a traceback, and never reach the
YOLO label files as ``nan``. Hypothesis mangles a small valid export of each format. It found
Label Studio results and CVAT polygon points ending in ``AttributeError``, ``TypeError`` and
``IndexError``, and NaN boxes read as boxes: ``test_labelling.py`` keeps those cases.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anjian.datasets.coco import load_coco_set
from anjian.datasets.errors import DatasetError
from anjian.datasets.labelling.cvat import read_cvat
from anjian.datasets.labelling.label_studio import read_label_studio
from anjian.datasets.labelling.tasks import ToolImage
from tests.support.mutation import any_value, mangled

_FOLDER = Path(tempfile.mkdtemp(prefix="anjian-import-fuzz-"))
(_FOLDER / "images").mkdir()
for _name in ("a.jpg", "b.jpg"):
    cv2.imwrite(str(_FOLDER / "images" / _name), np.zeros((40, 60, 3), np.uint8))

_COCO = {
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 60, "height": 40},
        {"id": 2, "file_name": "b.jpg", "width": 60, "height": 40},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10], "iscrowd": 0, "area": 100},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 10], "iscrowd": 1},
    ],
    "categories": [{"id": 1, "name": "fire"}, {"id": 2, "name": "person"}],
}
_RECTANGLE = {
    "type": "rectanglelabels",
    "original_width": 60,
    "original_height": 40,
    "image_rotation": 0,
    "value": {"x": 10, "y": 10, "width": 20, "height": 30, "rotation": 0, "rectanglelabels": ["fire"]},
}
_LABEL_STUDIO = {
    "tasks": [
        {
            "id": 1,
            "data": {"image": "/data/upload/4/9f8e-a.jpg"},
            "annotations": [{"id": 1, "was_cancelled": False, "result": [_RECTANGLE]}],
        },
        {
            "id": 2,
            "data": {"image": "/data/local-files/?d=images/b.jpg", "anjian_image": "b.jpg"},
            "annotations": [],
        },
    ]
}
_CVAT = {
    "images": [
        {
            "name": "a.jpg",
            "width": 60,
            "height": 40,
            "shapes": [
                {"tag": "box", "label": "fire", "xtl": 1, "ytl": 2, "xbr": 11, "ybr": 12, "rotation": 30},
                {"tag": "polygon", "label": "person", "points": "1,2;10,2;10,20"},
                {"tag": "points", "label": "fire", "points": "3,4"},
            ],
        }
    ]
}
_EDGES = st.sampled_from(
    [1e308, float("nan"), float("inf"), 2**64, -1, 0, "", "x" * 300, [], {}, None, "1;2", "a.jpg"]
)
_VALUES = any_value(_EDGES)
_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _finite_boxes_or_refused_by_name(read: Callable[[], list[ToolImage]], path: Path) -> None:
    """The tool's export is read into images whose boxes are all finite, or refused naming its file."""
    try:
        images = read()
    except DatasetError as error:
        assert str(path) in str(error)
    else:
        assert all(math.isfinite(v) for image in images for box in image.boxes for v in box.xyxy)


def _cvat_xml(document: dict[str, Any]) -> str:
    """The mangled CVAT document as CVAT for images 1.1 XML (every value as an attribute's text)."""
    images = []
    for image in document.get("images", []) if isinstance(document.get("images"), list) else []:
        if not isinstance(image, dict):
            continue
        shapes = image.get("shapes", [])
        inner = "".join(
            f"<{shape.get('tag', 'box')} "
            + " ".join(
                f"{k}={quoteattr(str(v))}" for k, v in shape.items() if k != "tag" and str(k).isidentifier()
            )
            + "/>"
            for shape in (shapes if isinstance(shapes, list) else [])
            if isinstance(shape, dict) and str(shape.get("tag", "box")).isidentifier()
        )
        attributes = " ".join(
            f"{k}={quoteattr(str(v))}" for k, v in image.items() if k != "shapes" and str(k).isidentifier()
        )
        images.append(f"<image {attributes}>{inner}</image>")
    return f"<annotations><version>1.1</version>{''.join(images)}</annotations>"


@_SETTINGS
@given(document=mangled(_COCO, _VALUES))
def test_a_mangled_coco_file_is_read_or_refused_by_name(document: dict[str, Any]) -> None:
    path = _FOLDER / "coco.json"
    path.write_text(json.dumps(document))
    try:
        load_coco_set({"train": (path, _FOLDER / "images")}, name="fuzz")
    except DatasetError as error:
        assert str(path) in str(error)


@_SETTINGS
@given(document=mangled(_LABEL_STUDIO, _VALUES))
def test_a_mangled_label_studio_export_is_read_or_refused_by_name(document: dict[str, Any]) -> None:
    path = _FOLDER / "export.json"
    path.write_text(json.dumps(document.get("tasks", document)))
    _finite_boxes_or_refused_by_name(lambda: read_label_studio(path)[0], path)


@_SETTINGS
@given(document=mangled(_CVAT, _VALUES))
def test_a_mangled_cvat_export_is_read_or_refused_by_name(document: dict[str, Any]) -> None:
    path = _FOLDER / "annotations.xml"
    path.write_text(_cvat_xml(document))
    _finite_boxes_or_refused_by_name(lambda: read_cvat(path)[1], path)
