"""Turn alerts that people judged in the control room into images to label and hard negatives.

The feedback loop: an alert marked *false alarm* shows something the detector mistook
(a lamp for a flame); one that was *resolved* (confirmed) shows the real thing on the
site's own camera. :func:`write_harvest` writes both as YOLO folders an analyst can open
in a labelling tool and later merge into the training data:

    <out>/hard_negatives/images/<event>.jpg   + labels/<event>.txt (empty) + data.yaml
    <out>/to_label/images/<event>.jpg         + labels/<event>.txt (the alert's boxes as pre-labels)
    <out>/manifest.jsonl                      one line per event: verdict, camera, behaviour, boxes

A false-alarm image is background only for the classes that fired: review it for other
objects (people) before training on it. This module reads nothing from the service:
``anjian.service.harvest_source`` turns stored events into :class:`HarvestItem` records.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import yaml

from anjian.datasets.labels import ProgressFn, no_progress

__all__ = ["HarvestBox", "HarvestItem", "HarvestReport", "Verdict", "write_harvest"]


class Verdict(StrEnum):
    """What the control room decided about an alert."""

    FALSE_ALARM = "false_alarm"
    CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class HarvestBox:
    """One detection of the alert.

    Attributes:
        class_name: Detector class.
        confidence: Its score.
        xyxy_norm: ``x1, y1, x2, y2`` normalised to the image.
    """

    class_name: str
    confidence: float
    xyxy_norm: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class HarvestItem:
    """One judged alert with its snapshot.

    Attributes:
        event_id: The event's id (file names use it).
        verdict: False alarm or confirmed.
        image: The snapshot file.
        camera_id: Camera that saw it.
        behaviour: Behaviour alerted.
        started_at: Epoch seconds.
        boxes: The alert's detections.
        reason: Why the control room called it a false alarm (its note, e.g. ``"reflection: sun on
            the drum"``); empty for a confirmed alert. Kept in the manifest, so an analyst can pick
            the hard negatives of one kind (reflections, misread people).
    """

    event_id: str
    verdict: Verdict
    image: Path
    camera_id: str
    behaviour: str
    started_at: float
    boxes: tuple[HarvestBox, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HarvestReport:
    """What was written.

    Attributes:
        hard_negatives: Images written as hard negatives.
        to_label: Images written to label.
        skipped: Event ids whose snapshot is missing.
    """

    hard_negatives: int
    to_label: int
    skipped: tuple[str, ...]


def _yolo_row(box: HarvestBox, class_names: Sequence[str]) -> str | None:
    """A YOLO label line for a box, ``None`` when its class is not in ``class_names``."""
    if box.class_name not in class_names:
        return None
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in box.xyxy_norm)
    if x2 <= x1 or y2 <= y1:
        return None
    return f"{class_names.index(box.class_name)} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}\n"


def write_harvest(
    items: Sequence[HarvestItem],
    out_dir: Path,
    class_names: Sequence[str],
    *,
    progress: ProgressFn = no_progress,
) -> HarvestReport:
    """Write judged alerts as two YOLO folders and a manifest (see the module docstring).

    Running it again adds new events and rewrites the ones already there.

    Args:
        items: The judged alerts.
        out_dir: Folder to write into.
        class_names: The class list of the label files (the detector's classes).
        progress: Wraps the per-item loop.

    Returns:
        Counts of what was written.
    """
    out_dir = Path(out_dir)
    counts = {Verdict.FALSE_ALARM: 0, Verdict.CONFIRMED: 0}
    skipped: list[str] = []
    manifest: dict[str, dict[str, object]] = {}
    manifest_path = out_dir / "manifest.jsonl"
    if manifest_path.is_file():
        for line in manifest_path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                manifest[record["event_id"]] = record
    for item in progress(items, "harvest", len(items)):
        if not item.image.is_file():
            skipped.append(item.event_id)
            continue
        folder = out_dir / ("hard_negatives" if item.verdict is Verdict.FALSE_ALARM else "to_label")
        image_dst = folder / "images" / f"{item.event_id}{item.image.suffix.lower() or '.jpg'}"
        image_dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.image, image_dst)
        label_dst = folder / "labels" / f"{item.event_id}.txt"
        label_dst.parent.mkdir(parents=True, exist_ok=True)
        rows = [] if item.verdict is Verdict.FALSE_ALARM else [_yolo_row(b, class_names) for b in item.boxes]
        label_dst.write_text("".join(r for r in rows if r))
        counts[item.verdict] += 1
        record = asdict(item)
        record.update(verdict=item.verdict.value, image=str(image_dst.relative_to(out_dir)))
        manifest[item.event_id] = record
    for name in ("hard_negatives", "to_label"):
        if (out_dir / name).is_dir():
            data = {"train": "images", "val": "images", "nc": len(class_names), "names": list(class_names)}
            (out_dir / name / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    if manifest:
        out_dir.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text("".join(json.dumps(r, default=str) + "\n" for r in manifest.values()))
    return HarvestReport(counts[Verdict.FALSE_ALARM], counts[Verdict.CONFIRMED], tuple(skipped))
