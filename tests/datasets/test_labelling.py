"""The labelling round trip: export real images with pre-labels, read back each tool's real export format.

The corrected-label fixtures are written the way the tools write them: CVAT's task export
"CVAT for images 1.1" (docs.cvat.ai, XML annotation format 1.1: ``<annotations>``,
``<meta><task>…<labels>``, ``<image id name width height>`` with ``<box label source
occluded xtl ytl xbr ybr z_order>``, zipped with ``annotations.xml`` at the top), and Label
Studio's JSON export (labelstud.io, task format: tasks with ``data`` and ``annotations``
whose ``result`` items are ``rectanglelabels`` in percent of ``original_width`` ×
``original_height``).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest
from typer.testing import CliRunner

from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labelling import (
    read_corrections,
    read_cvat,
    read_label_studio,
    read_manifest,
    tasks_from_set,
    tool_of,
    write_labelling_export,
)
from anjian.datasets.labels import IssueKind
from anjian.datasets.yolo import load_yolo_set
from anjian.service.cli import app
from tests.support.real_data import copy_yolo_sample

runner = CliRunner()
CLASSES = ("Fire", "default", "smoke")  # fire_smoke_cctv's own classes


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, list[str]]:
    """Three real fire images exported with their own labels as pre-labels; the export names, sorted."""
    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=3)
    dataset = load_yolo_set(data)
    tasks = tasks_from_set(dataset, split="val")
    write_labelling_export(tasks, dataset.class_names, tmp_path / "export")
    return tmp_path / "export", sorted(t.name for t in tasks)


def _cvat_task_export(names: list[str]) -> str:
    """A CVAT task export after correction: a kept box, a rotated box, a polygon, a tag, an unknown label."""
    a, b, c = names
    return f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>12</id>
      <name>site harvest</name>
      <size>3</size>
      <mode>annotation</mode>
      <overlap>0</overlap>
      <bugtracker></bugtracker>
      <created>2026-03-02 08:11:40.118391+00:00</created>
      <updated>2026-03-02 09:02:13.774201+00:00</updated>
      <subset>default</subset>
      <start_frame>0</start_frame>
      <stop_frame>2</stop_frame>
      <frame_filter></frame_filter>
      <segments>
        <segment>
          <id>31</id>
          <start>0</start>
          <stop>2</stop>
          <url>http://localhost:8080/api/jobs/31</url>
        </segment>
      </segments>
      <owner>
        <username>analyst</username>
        <email>analyst@example.com</email>
      </owner>
      <assignee></assignee>
      <labels>
        <label>
          <name>Fire</name>
          <color>#e6194b</color>
          <type>rectangle</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>default</name>
          <color>#3cb44b</color>
          <type>rectangle</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>smoke</name>
          <color>#ffe119</color>
          <type>rectangle</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>helmet</name>
          <color>#4363d8</color>
          <type>any</type>
          <attributes>
          </attributes>
        </label>
      </labels>
    </task>
    <dumped>2026-03-02 09:05:55.310072+00:00</dumped>
  </meta>
  <image id="0" name="{a}" width="608" height="608">
    <box label="Fire" source="manual" occluded="0" xtl="100.00" ytl="200.00" xbr="300.00" ybr="400.00" z_order="0">
    </box>
    <box label="smoke" source="auto" occluded="0" xtl="200.00" ytl="250.00" xbr="400.00" ybr="350.00" rotation="90.00" z_order="0">
    </box>
  </image>
  <image id="1" name="{b}" width="608" height="608">
    <polygon label="smoke" source="manual" occluded="0" points="10.00,20.00;110.00,25.00;60.00,120.00" z_order="0">
    </polygon>
    <tag label="Fire" source="manual">
    </tag>
    <box label="helmet" source="manual" occluded="1" xtl="5.00" ytl="5.00" xbr="50.00" ybr="50.00" z_order="0">
    </box>
  </image>
  <image id="2" name="{c}" width="608" height="608">
  </image>
</annotations>
"""


def _ls_result(
    rid: str, label: str, x: float, y: float, w: float, h: float, rotation: float = 0
) -> dict[str, Any]:
    return {
        "original_width": 608,
        "original_height": 608,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]},
        "id": rid,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "origin": "prediction-changed",
    }


def _ls_annotation(
    aid: int, task: int, result: list[dict[str, Any]], updated: str, *, cancelled: bool = False
) -> dict[str, Any]:
    return {
        "id": aid,
        "completed_by": 1,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": "2026-03-02T09:10:11.203944Z",
        "updated_at": updated,
        "draft_created_at": None,
        "lead_time": 31.2,
        "prediction": {},
        "result_count": 0,
        "unique_id": f"0b1c{aid:04d}-5e2f-4a7b-9c1d-8e6f2a3b4c5d",
        "import_id": None,
        "last_action": None,
        "task": task,
        "project": 4,
        "updated_by": 1,
        "parent_prediction": 55,
        "parent_annotation": None,
        "last_created_by": None,
    }


def _ls_task(tid: int, data: dict[str, str], annotations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": tid,
        "annotations": annotations,
        "file_upload": "3f2a9c1e-tasks.json",
        "drafts": [],
        "predictions": [55 + tid],
        "data": data,
        "meta": {},
        "created_at": "2026-03-02T08:59:01.118391Z",
        "updated_at": "2026-03-02T09:12:40.551208Z",
        "inner_id": tid,
        "total_annotations": len(annotations),
        "cancelled_annotations": sum(1 for a in annotations if a["was_cancelled"]),
        "total_predictions": 1,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 4,
        "updated_by": 1,
        "comment_authors": [],
    }


def _ls_export(names: list[str]) -> list[dict[str, Any]]:
    """A Label Studio JSON export: a task corrected twice, an uploaded background task, a skipped task."""
    a, b, c = names
    older = _ls_annotation(7, 1, [_ls_result("r1", "Fire", 10, 10, 20, 20)], "2026-03-02T09:11:00.000000Z")
    newer = _ls_annotation(
        8,
        1,
        [
            _ls_result("r2", "Fire", 16.447368, 32.894737, 32.894737, 32.894737),
            _ls_result("r3", "smoke", 50, 40, 20, 10, 90),
        ],
        "2026-03-02T09:12:40.551208Z",
    )
    return [
        _ls_task(1, {"image": f"/data/local-files/?d=images/{a}", "anjian_image": a}, [older, newer]),
        _ls_task(
            2, {"image": f"/data/upload/4/9f8e7d6c-{b}"}, [_ls_annotation(9, 2, [], "2026-03-02T09:13:00Z")]
        ),
        _ls_task(
            3,
            {"image": f"/data/local-files/?d=images/{c}", "anjian_image": c},
            [_ls_annotation(10, 3, [], "2026-03-02T09:14:00Z", cancelled=True)],
        ),
    ]


def test_the_export_holds_images_manifest_and_both_tools_pre_labels(exported: tuple[Path, list[str]]) -> None:
    folder, names = exported
    assert sorted(p.name for p in (folder / "images").iterdir()) == names
    manifest = read_manifest(folder)
    assert manifest is not None and manifest.class_names == CLASSES
    assert {r["split"] for r in manifest.images.values()} == {"val"}
    # CVAT: frames in lexical order, our own pre-labels back through the reader, in pixels
    declared, images = read_cvat(folder / "cvat" / "annotations.xml")
    assert declared == list(CLASSES) and [i.name for i in images] == names
    root = ElementTree.parse(folder / "cvat" / "annotations.xml").getroot()
    assert root.findtext("version") == "1.1" and root.findtext("meta/task/mode") == "annotation"
    first_labels = (
        (folder.parent / "fire" / "labels" / "val" / names[0]).with_suffix(".txt").read_text().split()
    )
    cx, cy, w, h = (float(v) * 608 for v in first_labels[1:5])
    assert images[0].boxes[0].xyxy == pytest.approx(
        (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), abs=0.01
    )
    # Label Studio: the config names the controls the tasks use; the predictions are in percent
    tasks = json.loads((folder / "label_studio" / "tasks.json").read_text())
    config = (folder / "label_studio" / "config.xml").read_text()
    assert '<RectangleLabels name="label" toName="image">' in config and 'value="$image"' in config
    [prediction] = tasks[0]["predictions"]
    box = prediction["result"][0]
    assert (box["from_name"], box["to_name"], box["type"]) == ("label", "image", "rectanglelabels")
    assert box["value"]["x"] == pytest.approx(100 * (cx - w / 2) / 608, abs=1e-3)
    assert tasks[0]["data"]["image"] == f"/data/local-files/?d=images/{tasks[0]['data']['anjian_image']}"
    assert "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT" in (folder / "README.md").read_text()


def test_cvat_task_export_comes_back_as_a_yolo_set_with_every_change_reported(
    exported: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, names = exported
    export_zip = tmp_path / "task_12_dataset.zip"
    with zipfile.ZipFile(export_zip, "w") as archive:
        archive.writestr("annotations.xml", _cvat_task_export(names))
    assert tool_of(export_zip) == "cvat"

    dataset, report = read_corrections(export_zip, labelling_dir=folder)

    assert (report.tool, report.images) == ("cvat", 3)
    rows = {im.image.name: im.boxes for im in dataset.images}
    assert rows[names[0]][0].tolist() == pytest.approx(
        [0, 200 / 608, 300 / 608, 200 / 608, 200 / 608], abs=1e-5
    )
    # a 200 x 100 box turned 90 degrees about its centre (300, 300) is 100 x 200
    assert rows[names[0]][1].tolist() == pytest.approx(
        [2, 300 / 608, 300 / 608, 100 / 608, 200 / 608], abs=1e-5
    )
    [polygon] = rows[names[1]].tolist()
    assert polygon == pytest.approx([2, 60 / 608, 70 / 608, 100 / 608, 100 / 608], abs=1e-5)
    assert rows[names[2]].shape == (0, 5)  # reviewed, nothing there: a background image
    kinds = sorted((i.kind, i.severity.value) for i in dataset.issues)
    assert kinds == [
        (IssueKind.CONVERTED_SHAPE, "warning"),  # the rotated box
        (IssueKind.CONVERTED_SHAPE, "warning"),  # the polygon
        (IssueKind.CONVERTED_SHAPE, "warning"),  # the tag, left out
        (IssueKind.UNKNOWN_CLASS, "error"),  # helmet is not a class of the export
    ]
    assert {im.split for im in dataset.images} == {"val"} and {im.source for im in dataset.images} == {"fire"}


def test_label_studio_export_takes_the_latest_annotation_and_leaves_unreviewed_tasks_out(
    exported: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, names = exported
    export = tmp_path / "project-4-at-2026-03-02-09-15-3f2a9c1e.json"
    export.write_text(json.dumps(_ls_export(names), indent=2))
    assert tool_of(export) == "label_studio"

    images, unlabelled = read_label_studio(export)
    assert [i.name for i in images] == names[:2] and unlabelled == [names[2]]
    dataset, report = read_corrections(export, labelling_dir=folder)

    assert report.tool == "label_studio" and report.unlabelled == (names[2],)
    rows = {im.image.name: im.boxes for im in dataset.images}
    assert set(rows) == {names[0], names[1]}  # the upload's hash prefix is stripped to find the image
    fire, smoke = rows[names[0]].tolist()
    assert fire == pytest.approx([0, 0.328947, 0.493421, 0.328947, 0.328947], abs=1e-5)
    # 20% x 10% turned 90 degrees clockwise about its top-left corner (50%, 40%)
    assert smoke == pytest.approx([2, 0.45, 0.5, 0.1, 0.2], abs=1e-5)
    assert rows[names[1]].shape == (0, 5)
    assert [i.kind for i in dataset.issues] == [IssueKind.CONVERTED_SHAPE]


@pytest.mark.parametrize(
    ("change", "task"),
    [
        (lambda tasks: tasks[0].update(annotations=[{"result": 5}]), "1"),
        (lambda tasks: tasks[0]["annotations"][1]["result"][0].update(value=[1, 2]), "1"),
        (lambda tasks: tasks[0]["annotations"][1]["result"][0].update(type=["rectanglelabels"]), "1"),
        (lambda tasks: tasks[1].update(data=[f"/data/upload/{tasks[1]['id']}.jpg"]), "2"),
        (lambda tasks: tasks[2].pop("id") and tasks[2].update(data=7, annotations=[]), "#3"),
    ],
    ids=["result-a-number", "value-a-list", "type-a-list", "data-a-list", "data-a-number-no-id"],
)
def test_a_label_studio_export_with_a_value_of_another_kind_names_the_task(
    tmp_path: Path, change: Callable[[list[dict[str, Any]]], None], task: str
) -> None:
    """Found by test_import_fuzz.py: these ended in an AttributeError or TypeError."""
    tasks = _ls_export(["a.jpg", "b.jpg", "c.jpg"])
    change(tasks)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    with pytest.raises(
        DatasetFormatError, match=rf"export\.json: task {re.escape(task)} is not as Label Studio"
    ):
        read_label_studio(export)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ('<polygon label="fire" points="1,2;3"/>', "a polygon point '3' is not x,y"),
        ('<polygon label="fire" points="nan,nan;1,1"/>', "a fire box at .* not a finite number"),
        ('<box label="fire" xtl="inf" ytl="1" xbr="2" ybr="3"/>', "a fire box at .* not a finite number"),
    ],
    ids=["point-without-y", "nan-polygon", "infinite-box"],
)
def test_a_cvat_shape_that_is_no_box_names_its_image(tmp_path: Path, shape: str, message: str) -> None:
    """Found by test_import_fuzz.py: an IndexError, and NaN boxes that reached the label files."""
    export = tmp_path / "annotations.xml"
    export.write_text(
        f'<annotations><version>1.1</version><image id="0" name="a.jpg" width="60" height="40">{shape}</image>'
        "</annotations>"
    )
    with pytest.raises(DatasetFormatError, match=rf"image 'a\.jpg' has a malformed shape: {message}"):
        read_cvat(export)


def test_exports_that_are_not_the_tools_formats_are_refused_clearly(tmp_path: Path) -> None:
    video = tmp_path / "video.xml"
    video.write_text('<annotations><version>1.1</version><track id="0" label="fire"></track></annotations>')
    with pytest.raises(DatasetFormatError, match="CVAT for images 1.1"):
        read_cvat(video)
    minimal = tmp_path / "min.json"
    minimal.write_text(json.dumps([{"image": "a.jpg", "label": [{"x": 1}]}]))
    with pytest.raises(DatasetFormatError, match="not JSON-MIN"):
        read_label_studio(minimal)
    csv = tmp_path / "export.csv"
    csv.write_text("image,label\n")
    with pytest.raises(DatasetFormatError, match="neither a CVAT XML"):
        tool_of(csv)


def test_label_export_with_a_model_and_label_import_on_the_cli(tmp_path: Path) -> None:
    """Pre-labels from anjian-n on real fire images; corrections back through the CLI into a valid set."""
    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=3)
    out = tmp_path / "export"
    result = runner.invoke(
        app,
        [
            "dataset",
            "label-export",
            str(data),
            "--out",
            str(out),
            "--model",
            "builtin:anjian-n",
            "--split",
            "val",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest is not None and manifest.model.startswith("anjian-n@")
    assert "fire" in manifest.class_names and "person" in manifest.class_names
    tasks = json.loads((out / "label_studio" / "tasks.json").read_text())
    scores = [r["score"] for t in tasks for r in t["predictions"][0]["result"]]
    assert scores and min(scores) >= 0.25  # the model's boxes above the pre-label threshold
    assert tasks[0]["predictions"][0]["model_version"] == manifest.model
    assert 'source="auto"' in (out / "cvat" / "annotations.xml").read_text()

    names = sorted(manifest.images)
    export = tmp_path / "ls.json"
    fixed = _ls_export(names)
    for task in fixed:  # the analyst labels in the model's classes
        for annotation in task["annotations"]:
            for item in annotation["result"]:
                label = item["value"]["rectanglelabels"][0]
                item["value"]["rectanglelabels"] = ["fire" if label == "Fire" else label]
    export.write_text(json.dumps(fixed))
    corrected = tmp_path / "corrected"
    imported = runner.invoke(
        app, ["dataset", "label-import", str(export), "--labelling", str(out), "--out", str(corrected)]
    )
    assert imported.exit_code == 0, imported.output
    said = " ".join(imported.output.split())
    assert "label_studio: 2 images" in said and "nobody annotated" in said
    back = load_yolo_set(corrected / "data.yaml")
    assert back.class_names == manifest.class_names and back.splits == ["val"]
    assert not [i for i in back.issues if i.severity.value == "error"]
    assert runner.invoke(app, ["dataset", "validate", str(corrected / "data.yaml"), "--quick"]).exit_code == 0

    unknown = tmp_path / "cvat.xml"
    unknown.write_text(_cvat_task_export(names))  # labels Fire and helmet are not the model's classes
    refused = runner.invoke(
        app, ["dataset", "label-import", str(unknown), "--labelling", str(out), "--out", str(tmp_path / "x")]
    )
    assert refused.exit_code == 1 and "'helmet' is not one of" in " ".join(refused.output.split())


def test_images_without_a_manifest_are_found_by_name(
    exported: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, names = exported
    export = tmp_path / "annotations.xml"
    export.write_text(_cvat_task_export(names))
    dataset, report = read_corrections(export, images_dir=folder / "images", split="train", name="site")
    assert report.images == 3 and {im.split for im in dataset.images} == {"train"}
    assert dataset.class_names == ("Fire", "default", "smoke", "helmet")  # the task's declared labels
    assert np.isclose(dataset.images[1].boxes[:, 0], 3).sum() == 1  # helmet kept: it is a declared label
    with pytest.raises(DatasetFormatError, match="none of its 3 image"):
        read_corrections(export, images_dir=tmp_path / "nowhere")


def test_a_harvest_folder_is_exported_once_per_image_with_the_alert_boxes_as_pre_labels(
    tmp_path: Path,
) -> None:
    from anjian.datasets.harvest import HarvestBox, HarvestItem, Verdict, write_harvest

    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=2)
    frames = sorted((data.parent / "images" / "val").iterdir())
    items = [
        HarvestItem(
            f"evt-{k}",
            Verdict.CONFIRMED,
            frame,
            "cam-1",
            "open_flame",
            1_700_000_000.0 + k,
            (HarvestBox("fire", 0.81, (0.25, 0.25, 0.75, 0.5)),),
        )
        for k, frame in enumerate(frames)
    ]
    write_harvest(items, tmp_path / "harvest", ["person", "fire", "smoke"])
    out = tmp_path / "export"
    result = runner.invoke(
        app, ["dataset", "label-export", str(tmp_path / "harvest" / "to_label"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest is not None and sorted(manifest.images) == [
        "evt-0.jpg",
        "evt-1.jpg",
    ]  # the harvest lists them twice
    assert manifest.class_names == ("person", "fire", "smoke") and manifest.model == ""
    _, images = read_cvat(out / "cvat" / "annotations.xml")
    assert [[(b.label, b.xyxy) for b in i.boxes] for i in images] == [
        [("fire", (152.0, 152.0, 456.0, 304.0))]
    ] * 2
