"""Read and write YOLO-format detection sets (``data.yaml``, ``images/``, ``labels/``).

A YOLO set is a ``data.yaml`` naming the classes (``names``) and the splits (``train``,
``val``, ``test``: a folder, a text file listing images, or a list of those, relative to
``path:`` or to the yaml's folder), with one ``labels/.../<stem>.txt`` per image holding
``class cx cy w h`` lines, normalised. This is what ultralytics trains on.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from anjian.datasets.boxes import clean_boxes
from anjian.datasets.errors import DatasetFormatError
from anjian.datasets.labels import (
    DetectionSet,
    Issue,
    IssueKind,
    LabelledImage,
    ProgressFn,
    Severity,
    empty_boxes,
    list_images,
    no_progress,
)

__all__ = [
    "LinkMode",
    "dataset_root",
    "empty_source_folders",
    "label_path_for",
    "load_yolo_set",
    "read_class_names",
    "read_label_file",
    "source_split_yaml",
    "write_yolo_set",
]

logger = logging.getLogger(__name__)

LinkMode = Literal["symlink", "hardlink", "copy"]
_SPLITS = ("train", "val", "test")
_SOURCE_MARK = "__"  # merged sets written without by_source name files <source>__<stem>


def label_path_for(image: Path) -> Path:
    """The label file of an image: the last ``images`` folder replaced by ``labels``, suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def empty_source_folders(root: Path, split: str, source: str) -> tuple[Path, Path]:
    """The ``images`` and ``labels`` folders of one source's split in a set at ``root``, emptied.

    Steps that add a derived source to a training set (hard negatives, zoomed crops) write into
    them: running such a step again replaces what it wrote, never piles up.

    Returns:
        ``(images, labels)`` folders, existing and empty.
    """
    folders = (root / "images" / split / source, root / "labels" / split / source)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    return folders


def read_class_names(data: dict[str, Any], source: Path) -> tuple[str, ...]:
    """Class names from a parsed ``data.yaml`` (a list, or a dict of id to name)."""
    names = data.get("names")
    if isinstance(names, dict):
        try:
            ordered = [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError) as exc:
            raise DatasetFormatError(f"{source}: 'names' keys must be class ids") from exc
        if sorted(int(k) for k in names) != list(range(len(ordered))):
            raise DatasetFormatError(f"{source}: 'names' ids must be 0..n-1, got {sorted(names)}")
        return tuple(ordered)
    if isinstance(names, list) and all(isinstance(n, str | int) for n in names):
        return tuple(str(n) for n in names)
    raise DatasetFormatError(f"{source}: 'names' must list the class names, got {names!r}")


def dataset_root(data: dict[str, Any], data_yaml: Path) -> Path:
    """Folder the split paths of a parsed ``data.yaml`` are relative to: ``path:`` (relative to
    the yaml's folder) or, without one, the yaml's folder."""
    if not data.get("path"):
        return data_yaml.parent
    root = Path(str(data["path"]))
    return root if root.is_absolute() else data_yaml.parent / root


def _split_images(root: Path, entry: Any, source: Path) -> list[Path]:
    """Images of one split entry: a folder, a list file, or a list of those."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for item in entries:
        path = Path(str(item))
        path = path if path.is_absolute() else root / path
        if path.is_dir():
            images.extend(list_images(path))
        elif path.is_file() and path.suffix == ".txt":
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise DatasetFormatError(f"{source}: cannot read the image list {path}: {exc}") from None
            for line in lines:
                if line.strip():
                    p = Path(line.strip())
                    images.append(p if p.is_absolute() else (path.parent / p))
        else:
            raise DatasetFormatError(f"{source}: split path {path} is neither a folder nor a .txt list")
    return images


def read_label_file(path: Path, class_count: int) -> tuple[np.ndarray, list[Issue]]:
    """Boxes of one label file and the problems in it.

    Returns the clean ``(n, 5) float32`` rows ``class_id, cx, cy, w, h`` (bad lines dropped,
    boxes clipped as :func:`clean_boxes` does) and an issue for each problem found.
    """
    issues: list[Issue] = []
    rows: list[list[float]] = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return empty_boxes(), [Issue(IssueKind.MALFORMED_LINE, Severity.ERROR, path, f"unreadable: {exc}")]
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:  # segment polygons have more fields; anjian trains boxes only
            issues.append(
                Issue(
                    IssueKind.MALFORMED_LINE,
                    Severity.ERROR,
                    path,
                    f"line {number}: {len(fields)} fields, want 5",
                )
            )
            continue
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            issues.append(
                Issue(IssueKind.MALFORMED_LINE, Severity.ERROR, path, f"line {number}: {line.strip()!r}")
            )
    if not rows and not issues:
        issues.append(Issue(IssueKind.EMPTY_LABEL_FILE, Severity.INFO, path, "no boxes: a background image"))
    boxes, box_issues = clean_boxes(np.array(rows, np.float32).reshape(-1, 5), class_count, path)
    return boxes, issues + box_issues


def load_yolo_set(
    data_yaml: Path, *, name: str | None = None, progress: ProgressFn = no_progress
) -> DetectionSet:
    """Read a YOLO-format set, gathering every problem as an issue.

    Bad label lines, unknown class ids and boxes without area are dropped; boxes reaching
    out of the image are clipped; label files without an image are reported. Images
    without a label file are read as background images.

    Args:
        data_yaml: The set's ``data.yaml``.
        name: Name of the set; the yaml's folder name when ``None``.
        progress: Wraps the per-image loop to show progress.

    Returns:
        The set, with ``issues`` filled.

    Raises:
        DatasetFormatError: The yaml is missing or unreadable, or names no classes or splits.
    """
    data_yaml = Path(data_yaml)
    if data_yaml.is_dir():
        data_yaml = data_yaml / "data.yaml"
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DatasetFormatError(f"cannot read {data_yaml}: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{data_yaml}: expected a mapping with 'names' and split paths")
    class_names = read_class_names(data, data_yaml)
    root = dataset_root(data, data_yaml)
    set_name = name or data_yaml.parent.name
    dataset = DetectionSet(name=set_name, class_names=class_names)
    split_entries = {s: data[s] for s in _SPLITS if data.get(s)}
    if not split_entries:
        raise DatasetFormatError(f"{data_yaml}: no train/val/test split paths")
    recorded = _recorded_labelled_classes(data, class_names, data_yaml)
    seen_labels: set[Path] = set()
    label_dirs: set[Path] = set()
    for split, entry in split_entries.items():
        images = _split_images(root, entry, data_yaml)
        for image in progress(images, f"{set_name}/{split}", len(images)):
            source = _recorded_source(image, recorded) or set_name
            label = label_path_for(image)
            label_dirs.add(label.parent)
            if label.is_file():
                boxes, issues = read_label_file(label, len(class_names))
                seen_labels.add(label.resolve())
                dataset.issues.extend(issues)
            else:
                boxes = empty_boxes()
                dataset.issues.append(
                    Issue(
                        IssueKind.MISSING_LABEL_FILE,
                        Severity.INFO,
                        image,
                        "no label file: a background image",
                    )
                )
            dataset.images.append(LabelledImage(image=image, split=split, boxes=boxes, source=source))
    for folder in sorted(label_dirs):
        if folder.is_dir():
            for label in sorted(folder.glob("*.txt")):
                if label.resolve() not in seen_labels:
                    dataset.issues.append(
                        Issue(IssueKind.MISSING_IMAGE, Severity.ERROR, label, "label file without an image")
                    )
    sources = {item.source for item in dataset.images}
    dataset.labelled_classes = {s: recorded.get(s, class_names) for s in sorted(sources)} or {
        set_name: class_names
    }
    return dataset


def _recorded_labelled_classes(
    data: dict[str, Any], class_names: tuple[str, ...], data_yaml: Path
) -> dict[str, tuple[str, ...]]:
    """The per-source ``labelled_classes`` a merged set's ``data.yaml`` records (empty when none)."""
    raw = data.get("labelled_classes")
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise DatasetFormatError(
            f"{data_yaml}: 'labelled_classes' must map each source to a list of class names"
        )
    recorded: dict[str, tuple[str, ...]] = {}
    for source, names in raw.items():
        unknown = sorted(str(n) for n in names if str(n) not in class_names)
        if unknown:
            raise DatasetFormatError(
                f"{data_yaml}: labelled_classes[{source!r}] names {unknown}, not in the set's classes {list(class_names)}"
            )
        recorded[str(source)] = tuple(c for c in class_names if c in {str(n) for n in names})
    return recorded


def _recorded_source(image: Path, recorded: dict[str, tuple[str, ...]]) -> str | None:
    """Source set of an image of a merged set: its ``<split>/<source>/`` folder or ``<source>__`` prefix.

    ``write_yolo_set`` puts each source in its own sub-folder (``by_source``) or prefixes file
    names with the source; reading them back restores which source an image came from, so
    per-source facts (the classes it labels) survive a merge, a split and a re-read.
    """
    if not recorded:
        return None
    if image.parent.name in recorded:
        return image.parent.name
    prefix, mark, _ = image.name.partition(_SOURCE_MARK)
    return prefix if mark and prefix in recorded else None


def _place(src: Path, dst: Path, link: LinkMode) -> None:
    """Put ``src`` at ``dst`` by symlink, hard link (copy across file systems) or copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if link == "symlink":
        dst.symlink_to(src.resolve())
    elif link == "hardlink":
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    else:
        shutil.copy2(src, dst)


def _format_rows(boxes: np.ndarray) -> str:
    """Label file text for ``(n, 5)`` boxes."""
    return "".join(f"{int(b[0])} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f} {b[4]:.6f}\n" for b in boxes)


def write_yolo_set(
    dataset: DetectionSet,
    out_dir: Path,
    *,
    link: LinkMode = "symlink",
    by_source: bool = False,
    progress: ProgressFn = no_progress,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a set as a YOLO folder that ultralytics can train on.

    Images are linked (or copied) as ``images/<split>/[<source>/]<name>`` and labels written
    as ``labels/<split>/[<source>/]<stem>.txt``; file names are prefixed with the source
    set's name when sets were merged, so equal names from two sets never collide.

    Args:
        dataset: The set to write.
        out_dir: Folder to write into (created; existing label files are replaced).
        link: How images get there: ``symlink`` (default, no copies), ``hardlink`` or ``copy``.
        by_source: Put each source set in its own sub-folder of every split, so one source's
            val images can be evaluated alone (``images/val/<source>``).
        progress: Wraps the per-image loop to show progress.
        extra: More keys for ``data.yaml`` (ultralytics ignores unknown keys).

    Returns:
        Path of the written ``data.yaml`` (no ``path:`` key: splits resolve from its folder).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    multi_source = len({im.source for im in dataset.images}) > 1
    used: set[Path] = set()
    for item in progress(dataset.images, f"write {out_dir.name}", len(dataset.images)):
        sub = Path(item.split) / item.source if by_source and item.source else Path(item.split)
        is_prefixed = (
            multi_source and not by_source and not item.image.stem.startswith(item.source + _SOURCE_MARK)
        )
        stem = f"{item.source}{_SOURCE_MARK}{item.image.stem}" if is_prefixed else item.image.stem
        image_dst = out_dir / "images" / sub / f"{stem}{item.image.suffix.lower()}"
        if image_dst in used:
            raise ValueError(f"two images would both be written to {image_dst}")
        used.add(image_dst)
        _place(item.image, image_dst, link)
        label_dst = out_dir / "labels" / sub / f"{stem}.txt"
        label_dst.parent.mkdir(parents=True, exist_ok=True)
        label_dst.write_text(_format_rows(item.boxes))
    data: dict[str, Any] = {s: f"images/{s}" for s in dataset.splits}
    data.update(nc=len(dataset.class_names), names=list(dataset.class_names))
    if dataset.labelled_classes:
        data["labelled_classes"] = {k: list(v) for k, v in dataset.labelled_classes.items()}
    data.update(extra or {})
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    logger.info("wrote %d images of %s to %s", len(dataset.images), dataset.name, out_dir)
    return data_yaml


def source_split_yaml(data_yaml: Path, split: str, source: str, out: Path | None = None) -> Path:
    """Write a data yaml whose ``val`` is one source's part of one split (see ``by_source``).

    Returns:
        Path of the new yaml (``data_<split>_<source>.yaml`` next to ``data_yaml`` by default).
    """
    data = yaml.safe_load(Path(data_yaml).read_text())
    data["val"] = f"images/{split}/{source}"
    data.pop("test", None)
    out = out or Path(data_yaml).with_name(f"data_{split}_{source}.yaml")
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return out
