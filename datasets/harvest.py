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
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import yaml

from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labels import ProgressFn, no_progress
from anjian.datasets.yolo import read_class_names

__all__ = ["HarvestBox", "HarvestItem", "HarvestReport", "Verdict", "write_harvest"]

logger = logging.getLogger(__name__)


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
        renumbered: Label files of earlier runs whose class ids were rewritten to the current
            class list (the detector's classes changed since).
    """

    hard_negatives: int
    to_label: int
    skipped: tuple[str, ...]
    renumbered: int = 0


def _yolo_row(box: HarvestBox, class_names: Sequence[str]) -> str | None:
    """A YOLO label line for a box, ``None`` when its class is not in ``class_names``."""
    if box.class_name not in class_names:
        return None
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in box.xyxy_norm)
    if x2 <= x1 or y2 <= y1:
        return None
    return f"{class_names.index(box.class_name)} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}\n"


_FOLDERS = ("hard_negatives", "to_label")


def _earlier_names(out_dir: Path) -> dict[str, tuple[str, ...]]:
    """The class list each folder's ``data.yaml`` gave its label files in an earlier run.

    Raises:
        ValueError: A ``data.yaml`` there cannot be read.
    """
    earlier: dict[str, tuple[str, ...]] = {}
    for folder in _FOLDERS:
        data_yaml = out_dir / folder / "data.yaml"
        if not data_yaml.is_file():
            continue
        try:
            data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
            earlier[folder] = read_class_names(data if isinstance(data, dict) else {}, data_yaml)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, DatasetFormatError) as exc:
            raise ValueError(
                f"cannot read {data_yaml} (the class list of the labels harvested before): {exc}"
            ) from None
    return earlier


def _renumbered(label: Path, old: Sequence[str], new: Sequence[str]) -> str:
    """A label file's text with its class ids moved from the class list ``old`` to ``new``.

    Raises:
        ValueError: A line's class id is not one of ``old``.
    """
    try:
        text = label.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {label} (harvested before) to renumber its classes: {exc}") from None
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        first, rest = (line.split(maxsplit=1) + [""])[:2]
        if not first.isdigit() or int(first) >= len(old):
            raise ValueError(
                f"{label}: line {number}: class id {first!r} is not one of the {len(old)} classes {list(old)} "
                f"its data.yaml names, so it cannot be renumbered to the detector's classes {list(new)}; "
                "fix or remove the line, or harvest into another --out"
            )
        lines.append(f"{new.index(old[int(first)])} {rest}\n")
    return "".join(lines)


def _renumber_earlier(
    out_dir: Path, earlier: dict[str, tuple[str, ...]], names: Sequence[str], written: set[Path]
) -> dict[Path, str]:
    """New text of every earlier label file whose class ids change from its folder's old class list to ``names``."""
    rewrites: dict[Path, str] = {}
    for folder, old in earlier.items():
        if tuple(old) == tuple(names):
            continue
        labels = out_dir / folder / "labels"
        for label in sorted(labels.glob("*.txt")) if labels.is_dir() else []:
            if label not in written:
                text = _renumbered(label, old, names)
                if text != label.read_text(encoding="utf-8"):
                    rewrites[label] = text
    return rewrites


def write_harvest(
    items: Sequence[HarvestItem],
    out_dir: Path,
    class_names: Sequence[str],
    *,
    progress: ProgressFn = no_progress,
) -> HarvestReport:
    """Write judged alerts as two YOLO folders and a manifest (see the module docstring).

    Running it again adds new events and rewrites the ones already there. When the class
    list changed since (another detector, or alerts of other classes), the label files of
    earlier runs are renumbered to it, and a class of theirs the new list lacks is kept,
    appended to it: ``data.yaml`` names one class list, and every label file follows it.

    Args:
        items: The judged alerts.
        out_dir: Folder to write into.
        class_names: The class list of the label files (the detector's classes).
        progress: Wraps the per-item loop.

    Returns:
        Counts of what was written.

    Raises:
        ValueError: An earlier run's ``data.yaml`` or label file cannot be read as its class list
            says (checked before anything is written).
    """
    out_dir = Path(out_dir)
    earlier = _earlier_names(out_dir)
    names = list(class_names)
    names += [n for old in earlier.values() for n in old if n not in names]
    names = list(dict.fromkeys(names))
    written = {
        out_dir
        / ("hard_negatives" if item.verdict is Verdict.FALSE_ALARM else "to_label")
        / "labels"
        / f"{item.event_id}.txt"
        for item in items
        if item.image.is_file()
    }
    rewrites = _renumber_earlier(out_dir, earlier, names, written)
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
    for label, text in rewrites.items():
        label.write_text(text)
    if rewrites:
        logger.info(
            "renumbered %d earlier label file(s) in %s to the classes %s", len(rewrites), out_dir, names
        )
    for name in _FOLDERS:
        if (out_dir / name).is_dir():
            data = {"train": "images", "val": "images", "nc": len(names), "names": names}
            (out_dir / name / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    if manifest:
        out_dir.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text("".join(json.dumps(r, default=str) + "\n" for r in manifest.values()))
    return HarvestReport(
        counts[Verdict.FALSE_ALARM], counts[Verdict.CONFIRMED], tuple(skipped), renumbered=len(rewrites)
    )
