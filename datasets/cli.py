"""``anjian dataset ...``: import, validate, merge, split, reshape and count labelled sets.

The commands are mounted on the ``anjian`` CLI by ``service/cli.py``; they use only
``datasets`` (no torch). Progress bars go to stderr, tables and JSON to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from anjian.datasets.classmap import load_class_map
from anjian.datasets.coco import load_coco_set
from anjian.datasets.command_line import fail, failing_on
from anjian.datasets.errors import DatasetError
from anjian.datasets.labels import DetectionSet
from anjian.datasets.merge import merge_sets
from anjian.datasets.reshape import reshape_set
from anjian.datasets.split import split_by_group
from anjian.datasets.stats import class_stats
from anjian.datasets.yolo import LinkMode, load_yolo_set, plan_yolo_set, write_yolo_set

__all__ = ["check_out", "dataset_app", "link_mode", "load_any", "rich_progress", "write_set"]

T = TypeVar("T")

dataset_app = typer.Typer(
    help="Import, check, merge, split and count labelled image sets.", no_args_is_help=True
)
_err = Console(stderr=True)
_out = Console()


def rich_progress(items: Iterable[T], description: str, total: int) -> Iterator[T]:
    """A :class:`anjian.datasets.labels.ProgressFn` drawing a rich progress bar on stderr."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_err, transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def load_any(
    source: Path, *, name: str | None = None, images: Path | None = None, split: str = "train"
) -> DetectionSet:
    """Read a YOLO set (``data.yaml`` or its folder) or a COCO JSON file (with ``images``).

    Raises:
        DatasetError: The set cannot be read.
    """
    if source.suffix.lower() == ".json":
        if images is None:
            raise DatasetError(
                f"{source}: a COCO file needs --images (the folder its file_name entries are in)"
            )
        return load_coco_set({split: (source, images)}, name=name or source.stem, progress=rich_progress)
    return load_yolo_set(source, name=name, progress=rich_progress)


def check_out(out: Path, *, overwrite: bool) -> None:
    """Refuse an ``--out`` that already holds files, unless ``--overwrite`` asks to replace the set there.

    Writing a set removes the one written there before (a file left from an earlier split would
    sit in both train and val). Without ``--overwrite`` a folder holding anything is refused, so
    nothing is replaced by mistake; with it, only a folder holding a set (its ``data.yaml``, or
    the ``images/`` and ``labels/`` of a write that stopped) is cleared, never any other folder.
    """
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out} is a file, not a folder")
    entries = {entry.name for entry in out.iterdir()} if out.is_dir() else set()
    if not entries:
        return
    if not overwrite:
        raise fail(
            f"--out {out} is not empty: pass --overwrite to replace the set written there "
            "(everything in the folder is removed first), or choose another folder"
        )
    if "data.yaml" not in entries and not entries <= {"images", "labels"}:
        raise fail(
            f"--out {out} holds no data.yaml, so no set written before: --overwrite clears only a set's "
            f"folder, and this one holds {sorted(entries)[:5]}; choose an empty or new folder"
        )


def link_mode(link: str) -> LinkMode:
    """The ``--link`` option checked; a clean error for another value."""
    if link not in ("symlink", "hardlink", "copy"):
        raise fail(f"--link must be symlink, hardlink or copy, got {link!r}")
    return link  # type: ignore[return-value]


def write_set(dataset: DetectionSet, out: Path, *, link: LinkMode, by_source: bool = False) -> Path:
    """Write ``dataset`` to ``out`` as a YOLO set, saying what was replaced or renamed; a clean error otherwise."""
    with failing_on(DatasetError, OSError):
        placements = plan_yolo_set(dataset, by_source=by_source)
        earlier = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        data_yaml = write_yolo_set(dataset, out, link=link, by_source=by_source, progress=rich_progress)
    if earlier:
        _out.print(
            f"[yellow]replaced the set written before in {escape(str(out))} "
            f"({escape(', '.join(earlier[:6]))}{', …' if len(earlier) > 6 else ''} removed first)[/yellow]"
        )
    renamed = [p for p in placements if p.is_renamed]
    if renamed:
        shown = ", ".join(f"{escape(str(p.item.image))} -> {escape(p.image.name)}" for p in renamed[:3])
        _out.print(
            f"[yellow]{len(renamed)} image(s) share a file name with another of their split: written with "
            f"their folder's name in front ({shown}{', …' if len(renamed) > 3 else ''})[/yellow]"
        )
    return data_yaml


def _keeps_sources(written: DetectionSet, read: DetectionSet) -> bool:
    """Whether ``written`` (made from ``read``) is a merged set: one sub-folder per source keeps each source's val
    scorable alone and what it labels (its images' sources recorded, not the set's own name)."""
    return len(written.labelled_classes) > 1 or any(im.source != read.name for im in read)


SourceArg = Annotated[Path, typer.Argument(help="A YOLO data.yaml (or its folder), or a COCO JSON file.")]
ImagesOpt = Annotated[Path | None, typer.Option(help="COCO only: folder of the images.")]
SplitOpt = Annotated[str, typer.Option(help="COCO only: split the JSON file holds.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON here.")]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace the set already in --out (everything in that folder is removed first). Without it, "
        "a non-empty --out is refused.",
    ),
]


@dataset_app.command("import")
def import_command(
    source: SourceArg,
    out: Annotated[Path, typer.Option(help="Folder to write the YOLO set into.")],
    images: ImagesOpt = None,
    split: SplitOpt = "train",
    name: Annotated[str | None, typer.Option(help="Name of the set (default: folder or file name).")] = None,
    link: Annotated[str, typer.Option(help="symlink, hardlink or copy the images.")] = "copy",
    overwrite: OverwriteOpt = False,
) -> None:
    """Read a YOLO or COCO-JSON set, repair what can be repaired, and write a clean YOLO set.

    Exits 1 when the source had errors (the set is written without what they dropped, and the
    first errors are listed), so that a script notices.
    """
    mode = link_mode(link)
    check_out(out, overwrite=overwrite)
    with failing_on(DatasetError):
        dataset = load_any(source, name=name, images=images, split=split)
    data_yaml = write_set(dataset, out, link=mode)
    errors = [i for i in dataset.issues if i.severity.value == "error"]
    _out.print(
        f"{dataset.name}: {len(dataset)} images, {dataset.box_count()} boxes, {len(dataset.class_names)} classes "
        f"-> {data_yaml} ({len(dataset.issues)} issue(s), {len(errors)} error(s); see `anjian dataset validate`)"
    )
    for issue in errors[:10]:
        _err.print(f"  error {issue.kind.value:20} {escape(str(issue.path))}  {escape(issue.detail)}")
    if errors:
        raise typer.Exit(1)


@dataset_app.command("validate")
def validate_command(
    source: SourceArg,
    images: ImagesOpt = None,
    split: SplitOpt = "train",
    json_out: JsonOpt = None,
    show: Annotated[int, typer.Option(help="Issues to list (the counts cover all).")] = 20,
    is_quick: Annotated[
        bool, typer.Option("--quick", help="Do not decode images (only check they are not empty).")
    ] = False,
) -> None:
    """Report missing images, bad boxes, unknown classes, duplicates, empty files; exit 1 on errors."""
    from anjian.datasets.checks import validate_set  # OpenCV: loaded by the command, not by `anjian --help`

    with failing_on(DatasetError):
        dataset = load_any(source, images=images, split=split)
    report = validate_set(dataset, is_decoding_images=not is_quick, progress=rich_progress)
    table = Table(title=f"{escape(report.set_name)}: {report.images} images, {report.boxes} boxes")
    for column in ("severity", "issue", "count"):
        table.add_column(column)
    for (severity, kind), count in sorted(report.counts().items()):
        table.add_row(severity, kind, str(count))
    _out.print(
        table
        if report.issues
        else f"{escape(report.set_name)}: {report.images} images, {report.boxes} boxes, no issues"
    )
    order = {"error": 0, "warning": 1, "info": 2}
    for issue in sorted(report.issues, key=lambda i: order[i.severity.value])[:show]:
        _out.print(
            f"  {issue.severity.value:7} {issue.kind.value:20} {escape(str(issue.path))}  {escape(issue.detail)}"
        )
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if report.has_errors:
        raise typer.Exit(1)


@dataset_app.command("merge")
def merge_command(
    sources: Annotated[list[Path], typer.Argument(help="YOLO data.yaml files (or folders) to merge.")],
    class_map: Annotated[
        Path, typer.Option("--class-map", help="Class map YAML (see datasets/maps/anjian.yaml).")
    ],
    out: Annotated[Path, typer.Option(help="Folder to write the merged YOLO set into.")],
    link: Annotated[str, typer.Option(help="symlink, hardlink or copy the images.")] = "symlink",
    by_source: Annotated[bool, typer.Option(help="One sub-folder per source in each split.")] = True,
    json_out: JsonOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Map several sets onto one taxonomy through a class map and write them as one set."""
    mode = link_mode(link)
    check_out(out, overwrite=overwrite)
    with failing_on(DatasetError, ValueError):
        mapping = load_class_map(class_map)
        sets = [load_yolo_set(s, progress=rich_progress) for s in sources]
        merged, report = merge_sets(sets, mapping, progress=rich_progress)
    data_yaml = write_set(merged, out, link=mode, by_source=by_source)
    table = Table(title=f"merged into {list(mapping.classes)}")
    for column in ("set", "class", "->", "boxes", "kept"):
        table.add_column(column)
    for row in report.rows:
        table.add_row(
            row.set_name, row.source_class, row.target or "(dropped)", str(row.boxes), str(row.kept)
        )
    _out.print(table)
    for name, labelled in merged.labelled_classes.items():
        missing = [c for c in mapping.classes if c not in labelled]
        if missing:
            _out.print(f"  {name} never labels {missing}: those objects are unlabelled there, not background")
    for dataset in sets:
        read = sum(r.boxes for r in report.rows if r.set_name == dataset.name)
        if read and not sum(r.kept for r in report.rows if r.set_name == dataset.name):
            _out.print(
                f"[yellow]  {escape(dataset.name)}: none of its {read} boxes was kept (every class dropped): "
                "check the class map[/yellow]"
            )
    _out.print(f"-> {data_yaml}")
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")


@dataset_app.command("split")
def split_command(
    source: SourceArg,
    out: Annotated[Path, typer.Option(help="Folder to write the re-split YOLO set into.")],
    val: Annotated[float, typer.Option(help="Share of groups for val.")] = 0.15,
    test: Annotated[float, typer.Option(help="Share of groups for test.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Changes the assignment; same seed, same split.")] = 0,
    link: Annotated[str, typer.Option(help="symlink, hardlink or copy the images.")] = "symlink",
    overwrite: OverwriteOpt = False,
) -> None:
    """Re-split a set by group: augmented copies (same name before `.rf.`) stay on one side.

    Refuses (exit 2, nothing written) when a split asked for would get no image: too few groups
    for the share; try a larger share or another --seed.
    """
    mode = link_mode(link)
    check_out(out, overwrite=overwrite)
    fractions = {"train": 1.0 - val - test, "val": val}
    if test:
        fractions["test"] = test
    with failing_on(DatasetError, ValueError):
        dataset = load_yolo_set(source, progress=rich_progress)
        resplit = split_by_group(dataset, fractions, seed=seed)
    groups = {s: len({im.group for im in resplit.in_split(s)}) for s in resplit.splits}
    empty = [s for s in fractions if s not in groups]
    if empty:
        all_groups = len({f"{im.source}/{im.group}" for im in resplit})
        raise fail(
            f"{source}: the split would leave {', '.join(empty)} without images ({len(resplit)} images in "
            f"{all_groups} group(s), shares {', '.join(f'{s} {f:.2f}' for s, f in fractions.items())}); "
            "nothing written: use a larger share or another --seed"
        )
    by_source = _keeps_sources(resplit, dataset)
    data_yaml = write_set(resplit, out, link=mode, by_source=by_source)
    sizes = ", ".join(f"{s}: {len(resplit.in_split(s))} images in {groups[s]} groups" for s in resplit.splits)
    _out.print(f"{sizes} -> {data_yaml}")


@dataset_app.command("reshape")
def reshape_command(
    source: Annotated[Path, typer.Argument(help="A YOLO data.yaml (or its folder).")],
    out: Annotated[Path, typer.Option(help="Folder to write the reshaped YOLO set into.")],
    aspect: Annotated[
        list[str] | None,
        typer.Option(
            help="Window shape, width:height; repeat it for several, used in turn (default: 16:9 and 4:3)."
        ),
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option(help="Split to reshape; repeat it for several (default: val).")
    ] = None,
    min_visible: Annotated[
        float,
        typer.Option(
            help="Share of a box's area that must stay in the window; boxes cut further are left out."
        ),
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Draws the windows' offsets; same seed, same windows.")] = 0,
    overwrite: OverwriteOpt = False,
) -> None:
    """Cut each image of a split to a camera's aspect (16:9, 4:3), boxes clipped: a non-square copy to score on.

    Square val splits (most public sets are exported as squares) run at the square whether a model's input
    is free or not, so they cannot show what a free input does on CCTV frames: score on this copy instead
    (`anjian eval --data OUT/data.yaml`, `anjian models free-input --cross-data OUT/data.yaml`).
    """
    aspects, splits = aspect or ["16:9", "4:3"], split or ["val"]
    source_dir = (source.parent if source.suffix.lower() in (".yaml", ".yml") else source).resolve()
    target = out.resolve()
    if target == source_dir or source_dir in target.parents or target in source_dir.parents:
        raise fail(
            f"--out {out} and the set {source} hold one another: write the reshaped copy to another folder"
        )
    check_out(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    with failing_on(DatasetError, ValueError):
        dataset = load_yolo_set(source, progress=rich_progress)
        with tempfile.TemporaryDirectory(prefix=".reshape-", dir=out.parent) as crops:
            reshaped, report = reshape_set(
                dataset,
                aspects,
                Path(crops),
                splits=splits,
                min_visible=min_visible,
                seed=seed,
                progress=rich_progress,
            )
            by_source = _keeps_sources(reshaped, dataset)
            data_yaml = write_set(reshaped, out, link="copy", by_source=by_source)
    for path in report.unreadable:
        _err.print(f"[yellow]{escape(str(path))}: not readable as an image, left out[/yellow]")
    shapes = ", ".join(f"{n} at {a}" for a, n in report.images.items())
    _out.print(
        f"{shapes}; {report.boxes_kept} boxes kept, {report.boxes_dropped} cut below {min_visible:.0%} "
        f"of their area left out -> {data_yaml}"
    )


@dataset_app.command("stats")
def stats_command(
    source: SourceArg, images: ImagesOpt = None, split: SplitOpt = "train", json_out: JsonOpt = None
) -> None:
    """Boxes and images per class and split, median box size, share of tiny boxes."""
    with failing_on(DatasetError):
        dataset = load_any(source, images=images, split=split)
    rows, totals = class_stats(dataset)
    table = Table(
        title=f"{dataset.name}: "
        + ", ".join(f"{s} {n} images ({bg} background)" for s, (n, bg) in totals.items())
    )
    for column in ("split", "class", "boxes", "images", "median side", "< 1/32 side"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.split, r.class_name, str(r.boxes), str(r.images), f"{r.median_side:.3f}", f"{r.small_share:.0%}"
        )
    _out.print(table)
    if json_out:
        payload = {
            "totals": totals,
            "classes": [dataclasses.asdict(r) for r in rows],
        }
        json_out.write_text(json.dumps(payload, indent=2) + "\n")


@dataset_app.command("label-import")
def label_import_command(
    export_file: Annotated[
        Path,
        typer.Argument(
            help="The labelling tool's export: CVAT's annotations.xml (or the exported zip, format "
            "'CVAT for images 1.1'), or Label Studio's JSON export."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder to write the corrected YOLO set into.")],
    labelling: Annotated[
        Path | None,
        typer.Option(help="The folder label-export wrote (default: found next to the export file)."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="Without a label-export folder: where the images are (matched by file name)."),
    ] = None,
    split: Annotated[
        str, typer.Option(help="Split of images the label-export folder does not place.")
    ] = "train",
    name: Annotated[str, typer.Option(help="Name of the set.")] = "corrected",
    show: Annotated[int, typer.Option(help="Issues to list (the counts cover all).")] = 20,
    overwrite: OverwriteOpt = False,
) -> None:
    """Corrected labels from CVAT or Label Studio into a clean YOLO set; exit 1 if labels were dropped."""
    from anjian.datasets.labelling import read_corrections

    check_out(out, overwrite=overwrite)
    with failing_on(DatasetError, OSError, ValueError):
        dataset, report = read_corrections(
            export_file, labelling_dir=labelling, images_dir=images, split=split, name=name
        )
    data_yaml = write_set(dataset, out, link="copy")
    splits = ", ".join(f"{s} {len(dataset.in_split(s))}" for s in dataset.splits)
    _out.print(
        f"{report.tool}: {report.images} images ({splits}), {report.boxes} boxes, classes "
        f"{escape(str(list(dataset.class_names)))} -> {escape(str(data_yaml))}"
    )
    if report.unlabelled:
        _out.print(
            f"  {len(report.unlabelled)} task(s) nobody annotated were left out: {list(report.unlabelled)[:5]}"
        )
    order = {"error": 0, "warning": 1, "info": 2}
    for issue in sorted(dataset.issues, key=lambda i: order[i.severity.value])[:show]:
        _out.print(
            f"  {issue.severity.value:7} {issue.kind.value:18} {escape(issue.path.name)}  {escape(issue.detail)}"
        )
    if any(i.severity.value == "error" for i in dataset.issues):
        raise typer.Exit(1)


version_app = typer.Typer(
    help="Name a set's exact content (a digest of its images and labels), and list the names.",
    no_args_is_help=True,
)
dataset_app.add_typer(version_app, name="version")

VersionsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--versions-file",
        help="The versions file (default: $ANJIAN_DATASET_VERSIONS, else ~/.local/share/anjian/dataset_versions.json).",
    ),
]


@version_app.command("create")
def version_create_command(
    name: Annotated[
        str, typer.Argument(help="The version's name, e.g. site-2025-03 (letters, digits, . _ -).")
    ],
    data: Annotated[Path, typer.Option(help="The set's data.yaml (or its folder).")],
    note: Annotated[str, typer.Option(help="Free text kept with the version.")] = "",
    versions_file: VersionsFileOpt = None,
) -> None:
    """Record NAME for the set's current content; training records and model cards then cite it."""
    from anjian.datasets.versions import create_version, default_versions_path

    with failing_on(DatasetError, ValueError):
        version, is_new = create_version(name, data, path=versions_file, note=note, progress=rich_progress)
    where = versions_file or default_versions_path()
    if not is_new:
        _out.print(f"{name} already names this content ({version.data_hash[:19]}…); nothing changed")
        return
    images = ", ".join(f"{s} {n}" for s, n in version.images.items())
    _out.print(f"{name}: {version.data_hash} ({images} images; sources {list(version.sources)}) -> {where}")


@version_app.command("list")
def version_list_command(versions_file: VersionsFileOpt = None, json_out: JsonOpt = None) -> None:
    """Every named version: name, time, digest, images per split, sources, note."""
    from anjian.datasets.versions import default_versions_path, load_versions

    with failing_on(DatasetError):
        versions = load_versions(versions_file)
    if not versions:
        _out.print(f"no dataset versions in {versions_file or default_versions_path()}")
        return
    table = Table()
    for column in ("name", "created", "digest", "images", "sources", "note"):
        table.add_column(column)
    for v in versions:
        images = ", ".join(f"{s} {n}" for s, n in v.images.items())
        table.add_row(v.name, v.created_at, v.data_hash[:19], images, ", ".join(v.sources), v.note)
    _out.print(table)
    if json_out:
        json_out.write_text(json.dumps([v.to_dict() for v in versions], indent=2) + "\n")
