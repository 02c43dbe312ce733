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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from anjian.datasets.boxes import clean_boxes
from anjian.datasets.errors import DatasetFormatError, DatasetWriteError
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
    "YoloPlacement",
    "clear_yolo_set",
    "dataset_root",
    "empty_source_folders",
    "entry_images",
    "label_path_for",
    "load_yolo_set",
    "plan_yolo_set",
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


def entry_images(path: Path, source: Path) -> list[tuple[Path, str]]:
    """Images of one split path (a folder or a ``.txt`` list), each with the name it has there.

    The name is the image's path relative to the folder, or the list's line as written: what
    :func:`anjian.datasets.hashing.dataset_digest` hashes, so a moved copy hashes the same.

    Raises:
        DatasetFormatError: The path is neither a folder nor a ``.txt`` list, or the list is unreadable.
    """
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise DatasetFormatError(
            f"{source}: split path {path} cannot be looked at: {exc.strerror or exc}"
        ) from None
    if is_dir:
        return [(image, str(image.relative_to(path))) for image in list_images(path)]
    if is_file and path.suffix == ".txt":
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetFormatError(f"{source}: cannot read the image list {path}: {exc}") from None
        listed = [Path(line.strip()) for line in lines if line.strip()]
        return [(p if p.is_absolute() else path.parent / p, str(p)) for p in listed]
    raise DatasetFormatError(f"{source}: split path {path} is neither a folder nor a .txt list")


def _split_paths(root: Path, entry: Any) -> list[Path]:
    """The paths of one split's entry in ``data.yaml`` (a path or a list of them), resolved from ``root``."""
    paths = [Path(str(item)) for item in (entry if isinstance(entry, list) else [entry])]
    return [path if path.is_absolute() else root / path for path in paths]


def _split_images(root: Path, entry: Any, source: Path) -> list[Path]:
    """Images of one split entry: a folder, a list file, or a list of those."""
    return [image for path in _split_paths(root, entry) for image, _ in entry_images(path, source)]


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
    boxes, box_issues = clean_boxes(rows, class_count, path)
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
    _check_class_count(data, class_names, data_yaml)
    root = dataset_root(data, data_yaml)
    set_name = name or data_yaml.parent.name
    dataset = DetectionSet(name=set_name, class_names=class_names)
    split_entries = {s: data[s] for s in _SPLITS if data.get(s)}
    if not split_entries:
        raise DatasetFormatError(f"{data_yaml}: no train/val/test split paths")
    recorded = _recorded_labelled_classes(data, class_names, data_yaml)
    only_source = _only_partial_source(recorded, class_names)
    seen_labels: set[Path] = set()
    label_dirs: set[Path] = set()
    for split, entry in split_entries.items():
        images = _split_images(root, entry, data_yaml)
        for image in progress(images, f"{set_name}/{split}", len(images)):
            source = _recorded_source(image, recorded) or only_source or set_name
            label = label_path_for(image)
            label_dirs.add(label.parent)
            if label.is_file():
                boxes, issues = read_label_file(label, len(class_names))
                seen_labels.add(label.resolve())
                dataset.issues.extend(issues)
            else:
                boxes = empty_boxes()
                dataset.issues.append(_missing_label_issue(image, label))
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


def _check_class_count(data: dict[str, Any], class_names: tuple[str, ...], data_yaml: Path) -> None:
    """Refuse an ``nc`` that is not the number of ``names``: ultralytics refuses to train on it, and
    which of the two is wrong (a name missing, or ``nc`` stale) only the analyst knows."""
    if "nc" not in data:
        return
    nc = data["nc"]
    if isinstance(nc, bool) or not isinstance(nc, int) or nc != len(class_names):
        raise DatasetFormatError(
            f"{data_yaml}: 'nc: {nc}' does not match the {len(class_names)} class name(s) in 'names' "
            f"{list(class_names)}: correct one of them (or drop 'nc')"
        )


def _missing_label_issue(image: Path, label: Path) -> Issue:
    """The issue of an image without a label file: a background image, unless its labels sit beside it.

    A ``<stem>.txt`` next to an image under ``images/`` is a label file in the wrong place:
    ultralytics (and this reader) looks in the parallel ``labels/`` folder, so the whole set
    would train as background.
    """
    beside = image.with_suffix(".txt")
    if beside != label and beside.is_file():
        return Issue(
            IssueKind.MISPLACED_LABEL_FILE,
            Severity.ERROR,
            beside,
            f"a label file beside its image is not read: YOLO reads {label}; move the label files "
            "from images/ to the parallel labels/ folder",
        )
    return Issue(IssueKind.MISSING_LABEL_FILE, Severity.INFO, image, "no label file: a background image")


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


def _only_partial_source(recorded: dict[str, tuple[str, ...]], class_names: tuple[str, ...]) -> str | None:
    """The one source a ``data.yaml`` records, when that source leaves some classes unlabelled.

    Such a set is that source: an image neither in a source folder nor prefixed with a source
    belongs to it. (``dataset split`` wrote a one-source merged set flat and unprefixed before
    ``write_yolo_set`` marked it, and reading those files as the output folder's own, every
    class labelled, lost the record that the source never labels some classes.)
    """
    if len(recorded) != 1:
        return None
    source, labelled = next(iter(recorded.items()))
    return source if set(labelled) != set(class_names) else None


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


@dataclass(frozen=True, slots=True)
class YoloPlacement:
    """Where one image of a set goes when the set is written.

    Attributes:
        item: The image.
        image: Its file in the written set, relative to the set's folder (``images/<split>/...``).
        label: Its label file there (``labels/<split>/...``).
        is_renamed: Its name was prefixed with the folder it came from, because another image of
            the same split had the same name.
    """

    item: LabelledImage
    image: Path
    label: Path
    is_renamed: bool = False


def _folder_tags(images: list[Path]) -> list[str] | None:
    """For images of one name, the fewest trailing folder names that tell them apart (``train``,
    ``cam1``, ``siteA-cam1``); ``None`` when their folders are the same."""
    folders = [[part for part in image.parent.parts if part != image.anchor] for image in images]
    for depth in range(1, max(len(f) for f in folders) + 1):
        tags = ["-".join(f[-depth:]) for f in folders]
        if len(set(tags)) == len(tags):
            return tags
    return None


def plan_yolo_set(dataset: DetectionSet, *, by_source: bool = False) -> list[YoloPlacement]:
    """Where :func:`write_yolo_set` puts each image and label file; nothing is written.

    Files go to ``images/<split>/[<source>/]<name>`` and ``labels/<split>/[<source>/]<stem>.txt``.
    Written flat (no source folders), a file name is prefixed ``<source>__`` when the set holds
    several sources, or a source that labels only some classes: reading the set back then restores
    each image's source, and with it the classes that source never labels. Images of one split
    that would share a label file (``train/cam1/f1.jpg`` and ``train/cam2/f1.jpg`` flattened, or
    ``train/a.jpg`` and ``val/a.jpg`` split into one side) are prefixed with the folder names that
    tell them apart (``cam1-f1.jpg``).

    Raises:
        DatasetWriteError: Two images would still share a file (the same file listed twice, or
            ``a.jpg`` and ``a.png`` in one folder, which share ``a.txt`` in YOLO too).
    """
    sources = {im.source for im in dataset.images}
    is_partial = any(
        set(dataset.labelled_classes.get(s, dataset.class_names)) != set(dataset.class_names) for s in sources
    )
    is_marked = not by_source and (len(sources) > 1 or (is_partial and sources != {""}))

    def place(item: LabelledImage, tag: str = "") -> YoloPlacement:
        sub = Path(item.split) / item.source if by_source and item.source else Path(item.split)
        mark = f"{item.source}{_SOURCE_MARK}" if item.source else ""
        base = item.image.stem
        is_prefixed = bool(mark) and base.startswith(mark)  # read from a set written flat earlier
        if is_prefixed:
            base = base[len(mark) :]
        base = f"{tag}-{base}" if tag else base
        stem = f"{mark}{base}" if is_prefixed or (is_marked and mark) else base
        return YoloPlacement(
            item,
            Path("images") / sub / f"{stem}{item.image.suffix.lower()}",
            Path("labels") / sub / f"{stem}.txt",
            is_renamed=bool(tag),
        )

    placements = [place(item) for item in dataset.images]
    by_label: dict[Path, list[int]] = {}
    for index, placement in enumerate(placements):
        by_label.setdefault(placement.label, []).append(index)
    for indices in by_label.values():
        if len(indices) < 2:
            continue
        tags = _folder_tags([dataset.images[i].image for i in indices])
        if tags is None:
            continue  # the same folder: refused below
        for index, tag in zip(indices, tags, strict=True):
            placements[index] = place(dataset.images[index], tag)
    clashes: dict[Path, list[Path]] = {}
    for placement in placements:
        clashes.setdefault(placement.label, []).append(placement.item.image)
    clashing = {label: images for label, images in clashes.items() if len(images) > 1}
    if clashing:
        shown = "; ".join(
            f"{label}: {[str(i) for i in images]}" for label, images in list(clashing.items())[:5]
        )
        raise DatasetWriteError(
            f"{len(clashing)} label file(s) would each be written for several images (nothing was "
            f"written): {shown}. Rename or remove one image of each"
        )
    return placements


def _refuse_source_inside(dataset: DetectionSet, out_dir: Path) -> None:
    """Refuse to write a set into a folder holding its images: clearing the folder first would delete them."""
    folders = {Path(os.path.abspath(out_dir)), out_dir.resolve()}
    for item in dataset.images:
        for image in {Path(os.path.abspath(item.image)), item.image.resolve()}:
            if any(image.is_relative_to(folder) for folder in folders):
                raise DatasetWriteError(
                    f"{out_dir} holds the images being written ({item.image}): writing there would "
                    "delete them first; write the set to another folder"
                )


def clear_yolo_set(out_dir: Path) -> int:
    """Remove the set written in ``out_dir`` before: everything in it when it holds a ``data.yaml``
    (the set's own reports and per-source yamls included), else its ``images/`` and ``labels/``
    (a write that stopped half way).

    Symlinks are removed, never followed (a linked image's original stays).

    Returns:
        The number of files (and links) removed.
    """
    if not out_dir.is_dir():
        return 0
    is_set = (out_dir / "data.yaml").is_file()
    removed = 0
    for entry in sorted(out_dir.iterdir()):
        if not is_set and entry.name not in ("images", "labels"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            removed += sum(len(files) for _, _, files in os.walk(entry))
            shutil.rmtree(entry)
        else:
            entry.unlink()
            removed += 1
    return removed


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

    Images are linked (or copied) and labels written where :func:`plan_yolo_set` says:
    ``images/<split>/[<source>/]<name>`` and ``labels/<split>/[<source>/]<stem>.txt``; file
    names are prefixed with the source set's name when sets were merged, so equal names from
    two sets never collide, and a set's record of what each source labels survives a re-read.

    A set written earlier in ``out_dir`` is removed first (:func:`clear_yolo_set`): ultralytics
    trains on every file under ``images/<split>``, so an old file left there (another split's
    image) would be trained on, or leak into val. Callers that must not replace a folder by
    accident check it first (the CLI refuses a non-empty ``--out`` without ``--overwrite``).

    Args:
        dataset: The set to write.
        out_dir: Folder to write into (created; a set written there before is removed first).
        link: How images get there: ``symlink`` (default, no copies), ``hardlink`` or ``copy``.
        by_source: Put each source set in its own sub-folder of every split, so one source's
            val images can be evaluated alone (``images/val/<source>``).
        progress: Wraps the per-image loop to show progress.
        extra: More keys for ``data.yaml`` (ultralytics ignores unknown keys).

    Returns:
        Path of the written ``data.yaml`` (no ``path:`` key: splits resolve from its folder).

    Raises:
        DatasetWriteError: Two images would share a file, or ``out_dir`` holds the images being
            written; raised before anything is written or removed.
    """
    out_dir = Path(out_dir)
    placements = plan_yolo_set(dataset, by_source=by_source)
    _refuse_source_inside(dataset, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    removed = clear_yolo_set(out_dir)
    if removed:
        logger.info("removed %d file(s) of the set written earlier in %s", removed, out_dir)
    for placement in progress(placements, f"write {out_dir.name}", len(placements)):
        _place(placement.item.image, out_dir / placement.image, link)
        label_dst = out_dir / placement.label
        label_dst.parent.mkdir(parents=True, exist_ok=True)
        label_dst.write_text(_format_rows(placement.item.boxes))
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
