"""Harvesting judged alerts into hard negatives and images to label."""

from __future__ import annotations

import json
from pathlib import Path

from anjian.datasets.harvest import HarvestBox, HarvestItem, Verdict, write_harvest
from anjian.datasets.yolo import load_yolo_set
from tests.factories import make_jpeg


def _item(tmp_path: Path, event_id: str, verdict: Verdict, *, has_image: bool = True) -> HarvestItem:
    image = tmp_path / "evidence" / f"{event_id}.jpg"
    if has_image:
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(make_jpeg())
    box = HarvestBox("fire", 0.8, (0.1, 0.2, 0.3, 0.6))
    return HarvestItem(
        event_id, verdict, image, "cam-1", "open_flame", 1.7e9, (box, HarvestBox("sparks", 0.5, (0, 0, 1, 1)))
    )


def test_false_alarms_become_empty_labels_and_confirmed_ones_pre_labels(tmp_path: Path) -> None:
    items = [
        _item(tmp_path, "e1", Verdict.FALSE_ALARM),
        _item(tmp_path, "e2", Verdict.CONFIRMED),
        _item(tmp_path, "e3", Verdict.CONFIRMED, has_image=False),
    ]
    out = tmp_path / "harvest"

    report = write_harvest(items, out, ["fire", "smoke"])

    assert (report.hard_negatives, report.to_label, report.skipped) == (1, 1, ("e3",))
    assert (out / "hard_negatives" / "labels" / "e1.txt").read_text() == ""
    assert (out / "to_label" / "labels" / "e2.txt").read_text() == "0 0.200000 0.400000 0.200000 0.400000\n"
    negatives = load_yolo_set(out / "hard_negatives" / "data.yaml")
    assert [im.image.name for im in negatives.in_split("train")] == ["e1.jpg"]
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {(m["event_id"], m["verdict"]) for m in manifest} == {("e1", "false_alarm"), ("e2", "confirmed")}
    assert all("reason" in m for m in manifest), "the false-alarm reason travels with each hard negative"


def test_harvesting_again_adds_without_duplicating(tmp_path: Path) -> None:
    out = tmp_path / "harvest"
    write_harvest([_item(tmp_path, "e1", Verdict.FALSE_ALARM)], out, ["fire"])
    write_harvest(
        [_item(tmp_path, "e1", Verdict.FALSE_ALARM), _item(tmp_path, "e2", Verdict.FALSE_ALARM)],
        out,
        ["fire"],
    )

    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["event_id"] for line in lines) == ["e1", "e2"]


def test_harvesting_again_after_the_classes_changed_renumbers_the_earlier_labels(tmp_path: Path) -> None:
    out = tmp_path / "harvest"
    first = _item(tmp_path, "ev1", Verdict.CONFIRMED)  # a fire box (and sparks, not a class)
    write_harvest([first], out, ["person", "fire"])
    second = _item(tmp_path, "ev2", Verdict.CONFIRMED)

    report = write_harvest([second], out, ["person", "smoke"])  # a model without fire: kept, appended

    assert report.renumbered == 1
    to_label = load_yolo_set(out / "to_label" / "data.yaml")
    assert to_label.class_names == ("person", "smoke", "fire")
    found = {
        im.image.name: [to_label.class_names[c] for c in im.class_ids] for im in to_label.in_split("train")
    }
    assert found == {"ev1.jpg": ["fire"], "ev2.jpg": []}

    write_harvest([second], out, ["person", "smoke", "fire"])
    again = load_yolo_set(out / "to_label" / "data.yaml")
    assert {
        im.image.name: [again.class_names[c] for c in im.class_ids] for im in again.in_split("train")
    } == {
        "ev1.jpg": ["fire"],
        "ev2.jpg": ["fire"],
    }


def test_an_earlier_label_its_class_list_cannot_read_is_refused_before_writing(tmp_path: Path) -> None:
    import pytest

    out = tmp_path / "harvest"
    write_harvest([_item(tmp_path, "ev1", Verdict.CONFIRMED)], out, ["fire"])
    (out / "to_label" / "labels" / "ev1.txt").write_text("3 0.5 0.5 0.1 0.1\n")  # edited by hand, wrongly

    with pytest.raises(ValueError, match=r"ev1\.txt: line 1: class id '3' is not one of the 1 classes"):
        write_harvest([_item(tmp_path, "ev2", Verdict.CONFIRMED)], out, ["smoke", "fire"])
    assert not (out / "to_label" / "images" / "ev2.jpg").exists()
