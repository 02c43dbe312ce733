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
