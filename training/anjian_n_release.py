"""Last step of the anjian-n recipe: evaluate per source, export, write the card, register.

``python -m anjian.training.anjian_n finish --work DIR`` exports the run's best weights (fp32
and fp16 ONNX), evaluates the fp32 export through the pipeline's ONNX backend on the val
split of every source set (only the classes that source labels), compares ``person``
with the COCO teacher, writes ``card.md`` and ``meta.json`` and registers the version
under ``models/registry/anjian-n/`` (promoted, so ``builtin:anjian-n`` serves it). Last, it
quantises the registered model to int8 for CPUs (:mod:`anjian.training.quantize`: calibrated
on the sources' train images, kept only if AP50 on each source's val split stays within 1 point).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from anjian.datasets.classmap import ClassMap
from anjian.datasets.labels import DetectionSet, ProgressFn, no_progress
from anjian.datasets.yolo import load_yolo_set
from anjian.models.config import DetectorConfig
from anjian.models.int8_ir import file_sha256
from anjian.models.loader import load_detector
from anjian.models.registry import REGISTRY_DIR, card_sections, promote, register_version, write_card_section
from anjian.training.anjian_n import training_set
from anjian.training.anjian_n_crosseval import crosseval_summary, crosseval_table, format_figure
from anjian.training.evaluate import EvalReport, evaluate_detector
from anjian.training.export import export_onnx, to_fp16
from anjian.training.thresholds import (
    calibrate_thresholds,
    stamp_thresholds,
    thresholds_card_section,
    thresholds_of,
)

__all__ = ["MODEL_NAME", "crosseval_arms", "evaluate_per_source", "finish"]

logger = logging.getLogger(__name__)

MODEL_NAME = "anjian-n"
_CURVE_KEYS = ("metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)")


def _source_subset(merged: DetectionSet, source: str, split: str) -> DetectionSet:
    """The images of one source in one split of a merged set, with the classes that source labels."""
    return DetectionSet(
        name=source,
        class_names=merged.class_names,
        images=[im for im in merged.images if im.split == split and im.source == source],
        labelled_classes={source: merged.labelled_classes.get(source, merged.class_names)},
    )


def evaluate_per_source(
    onnx: Path, data_yaml: Path, *, split: str = "val", progress: ProgressFn = no_progress
) -> dict[str, EvalReport]:
    """Evaluate a model on each source's part of a split, scoring only the classes it labels."""
    data = yaml.safe_load(Path(data_yaml).read_text())
    merged = load_yolo_set(data_yaml)
    detector = load_detector(
        onnx, DetectorConfig(path=str(onnx), confidence_threshold=0.001, cpu_precision="fp32")
    )
    reports = {}
    for source, labelled in data.get("labelled_classes", {}).items():
        subset = _source_subset(merged, source, split)
        if not subset.images:
            continue
        reports[source] = evaluate_detector(
            detector, subset, split=split, class_map=ClassMap(classes=tuple(labelled)), progress=progress
        )
    return reports


def _teacher_person(coco_onnx: Path, data_yaml: Path, sources: list[str]) -> dict[str, EvalReport]:
    """The COCO teacher's ``person`` scores on the sources whose person boxes are real."""
    merged = load_yolo_set(data_yaml)
    teacher = load_detector(
        coco_onnx, DetectorConfig(path=str(coco_onnx), confidence_threshold=0.001, cpu_precision="fp32")
    )
    return {
        s: evaluate_detector(
            teacher, _source_subset(merged, s, "val"), class_map=ClassMap(classes=("person",))
        )
        for s in sources
    }


def _ablation_section(meta: dict[str, Any]) -> str:
    """Card section comparing AP50 with and without the teacher's person labels ('' without an ablation)."""
    if not meta.get("ablation"):
        return ""
    rows = []
    gaps: list[tuple[float, str, float, float]] = []
    for source, report in meta["val"].items():
        naive = {c["name"]: c for c in meta["ablation"].get(source, {}).get("classes", [])}
        for c in report["classes"]:
            if c["instances"]:
                other = naive.get(c["name"], {})
                if c["name"] == "person" and other.get("ap50") is not None and c["ap50"] is not None:
                    gaps.append((c["ap50"] - other["ap50"], source, other["ap50"], c["ap50"]))
                rows.append(
                    f"| {source} | {c['name']} | {format_figure(other.get('ap50'))} | {format_figure(c['ap50'])} | "
                    f"{format_figure(other.get('recall'))} | {format_figure(c['recall'])} |"
                )
    gap, source, naive_ap, with_ap = max(gaps) if gaps else (0.0, "", 0.0, 0.0)
    summary = (
        f"Without the teacher's labels the model learns that the people of the `{source}` images are\n"
        f"background: `person` AP50 there falls from {with_ap:.2f} to {naive_ap:.2f}. One run per arm: differences\n"
        "of a few points elsewhere are within run-to-run noise.\n\n"
        if gap > 0.1
        else ""
    )
    return (
        "## Ablation: the unlabelled people\n"
        "The same recipe trained on the naive merge (no teacher labels), both scored on the same val\n"
        "splits (persons in the cigarette, fire and pallet sets: the teacher's labels).\n\n"
        "| source | class | AP50 naive | AP50 with teacher persons | recall naive | recall with |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + summary
    )


def crosseval_arms(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The held-out arms' cross-source results in a version's meta (one dict in versions before arms were lists)."""
    result = meta.get("crosseval") or []
    return [result] if isinstance(result, dict) else list(result)


def _crosseval_section(meta: dict[str, Any]) -> str:
    """Card section with each held-out arm's cross-source table ('' when no arm held anything out).

    One arm leaves out one side of each pair of sources (a fire set, a fall set, a smoking set, a
    person set), the next the other side, so each class is scored on every source it has, each time
    by a model of the same recipe that never saw that source. The summary first: one row per class
    and held-out source, the figure a site with footage like that source can expect.
    """
    arms = crosseval_arms(meta)
    if not arms:
        return ""
    tables = "".join(
        f"### Held out: {', '.join(f'`{s}`' for s in arm['holdout'])}\n\n" + crosseval_table(arm) + "\n\n"
        for arm in arms
    )
    return (
        "## Generalisation: sources never trained on\n"
        "The same recipe, trained again with sources held out (one table per arm below), scored on every\n"
        "image of each held-out source (only the classes it labels), next to the model it replaces and the\n"
        "COCO teacher (as shipped, 640, and its recovered weights at this model's input size: the gap between\n"
        "the two is the input size's, the rest the training's). These figures, not the val splits above, say\n"
        "how it does on a new site.\n\n" + crosseval_summary(arms) + "\n\n" + tables
    )


def _derived_sources(data_yaml: Path) -> dict[str, dict[str, Any]]:
    """What the optional recipe steps added to the training set: zoomed crops and hard negatives, per report."""
    out: dict[str, dict[str, Any]] = {}
    for report in sorted(data_yaml.parent.glob("zoom_crops_*.json")):
        zoom = json.loads(report.read_text())
        out[f"{zoom['class_name']}_zoom"] = {
            "step": "zoom",
            "images": zoom["crops"],
            "by_source": zoom["by_source"],
            "fill": zoom["spec"]["fill"],
        }
    negatives_report = data_yaml.parent / "hard_negatives.json"
    if negatives_report.is_file():
        negatives = json.loads(negatives_report.read_text())
        out[f"{negatives['class']}_hard_negatives"] = {
            "step": "negatives",
            "images": negatives["images"] * negatives["copies"],
            "by_source": negatives["by_source"],
        }
    return out


def _augmentation_lines(meta: dict[str, Any]) -> str:
    """The card's lines on augmentation and on the images the optional steps added."""
    r = meta["recipe"]
    augment = ", ".join(f"{k} {v:g}" for k, v in sorted((r.get("augment") or {}).items()))
    lines = [f"- Augmentation (ultralytics): {augment or 'defaults'}."]
    if r.get("cctv_degradation"):
        lines.append(
            f"- The CCTV look (`training/cctv_augment.py`) on {r['cctv_degradation']:.0%} of training images: "
            "sub-stream resolution, blur, noise, clipped exposure, faded colour or IR grey, JPEG."
        )
    for name, derived in (meta.get("derived_sources") or {}).items():
        origin = ", ".join(f"{k} {v}" for k, v in derived["by_source"].items())
        if derived["step"] == "zoom":
            low, high = derived["fill"]
            lines.append(
                f"- `{name}`: {derived['images']} zoomed crops in which the box fills {low:.0%}-{high:.0%} of the "
                f"view (`training/zoom_crops.py`; from {origin})."
            )
        else:
            lines.append(
                f"- `{name}`: {derived['images']} hard-negative images (`training/hard_negatives.py`; from {origin})."
            )
    return "\n".join(lines)


def _split_lines(recipe: dict[str, Any]) -> str:
    """The card's paragraph on val splits the recipe drew again (none before the ``resplit`` setting)."""
    redrawn = recipe.get("resplit") or {}
    if not redrawn:
        return ""
    shares = ", ".join(f"`{source}` {share:.0%}" for source, share in sorted(redrawn.items()))
    return (
        f"\n**Val splits drawn again** ({shares} of each source's videos and stills in val): a source's "
        "own val split held frames of videos whose neighbouring frames are in its train split, which "
        "measures memory. Every frame of one video (`datasets.labels.video_key`) now sits on one side.\n"
    )


def _teacher_fill_lines(recipe: dict[str, Any]) -> str:
    """Card lines on the further teachers that filled classes some sources never label ('' without any)."""
    fills = recipe.get("teacher_fills") or []
    lines = [
        f"- `{fill['teacher']}` filled {', '.join(f'`{c}`' for c in fill['classes'])} in "
        f"{', '.join(f'`{s}`' for s in fill['sources'])} (score ≥ {fill['min_confidence']}; *pseudo GT* below)."
        for fill in fills
    ]
    return ("\nThen, for classes COCO does not know:\n" + "\n".join(lines) + "\n") if lines else ""


def _card(meta: dict[str, Any]) -> str:
    """The markdown model card."""
    rows = []
    for source, report in meta["val"].items():
        for c in report["classes"]:
            filled = meta.get("pseudo_classes", {}).get(source, [])
            is_pseudo = c["name"] in filled or (
                c["name"] == "person" and source in meta["pseudo_person_sources"]
            )
            pseudo = " (pseudo GT)" if is_pseudo else ""
            rows.append(
                f"| {source} | {c['name']}{pseudo} | {c['images']} | {c['instances']} | {format_figure(c['precision'])} | "
                f"{format_figure(c['recall'])} | {format_figure(c['ap50'])} | {format_figure(c['ap50_95'])} |"
            )
    teacher_rows = "\n".join(
        f"| {s} | {format_figure(meta['teacher_person'][s])} | {format_figure(next((c['ap50'] for c in meta['val'][s]['classes'] if c['name'] == 'person'), None))} |"
        for s in meta["teacher_person"]
    )
    curve = "\n".join(
        f"| {int(e['epoch'])} | {format_figure(e.get(_CURVE_KEYS[0]))} | {format_figure(e.get(_CURVE_KEYS[1]))} | "
        f"{format_figure(e.get(_CURVE_KEYS[2]))} | {format_figure(e.get(_CURVE_KEYS[3]))} |"
        for e in meta["curve"]
    )
    sources = "\n".join(
        f"- `{k}`: {v}." if "CC BY" in v or "MIT" in v else f"- `{k}`: {v}, CC BY 4.0."
        for k, v in meta["sources"].items()
    )
    real_person = ", ".join(f"`{s}`" for s in meta["teacher_person"]) or "none"
    pseudo_sources = ", ".join(f"`{s}`" for s in meta["pseudo_person_sources"]) or "none"
    ablation = _ablation_section(meta)
    r = meta["recipe"]
    return f"""# {meta["name"]} {meta["version"]}

anjian's default detector for real sites: a YOLOv8n fine-tuned from COCO on public, labelled,
CC BY 4.0 images, for the classes the six behaviours need.

## Model
- Classes: {", ".join(f"`{c}` ({i})" for i, c in enumerate(meta["classes"]))}.
- Input: `images`, float32 `(batch, 3, {meta["imgsz"]}, {meta["imgsz"]})`, RGB in `[0, 1]`, letterboxed; batch is dynamic.
- Output: `output0` `(batch, {4 + len(meta["classes"])}, {sum((meta["imgsz"] // s) ** 2 for s in (8, 16, 32))})`: per anchor `cx, cy, w, h` in input
  pixels, then one sigmoid score per class. NMS is not in the graph.
- Files: `model.onnx` (fp32, {meta["onnx_bytes"] / 1e6:.1f} MB, sha256 `{meta["onnx_sha256"][:16]}…`);
  an fp16 copy (half the size, for GPU sites) comes from `anjian export <best.pt> --out DIR`.
- Licence: AGPL-3.0 (it starts from Ultralytics' COCO YOLOv8n weights).

## Data
{sources}

Merged with `datasets/maps/anjian.yaml`: `Fire`→`fire`, `smoke`→`smoke`, `default` dropped;
`fall`→`fallen_person`, `patient`,`person`,`stand`,`sit`,`move`,`danger`,`lie` (in bed)→`person` (one box
per object: overlapping labels resolved with `fallen_person` before `person`), beds, walkers and
wheelchairs dropped; `Wooden-Pallet`→`pallet`; UR Fall `fall`→`fallen_person`; the smoking
photos' `smoking` (cigarette with the hand or mouth holding it)→`cigarette`.
{_split_lines(r)}
**Unlabelled people.** Sets that never label `person` ({pseudo_sources}) would teach a naive
merge that the people in them are background. Before training, the COCO YOLOv8n (the teacher)
labelled persons in those sets (score ≥ {r["teacher_confidence"]}, not overlapping an existing
box): {meta["pseudo_person_boxes"]} boxes. On those sets' val splits the `person` ground truth is
therefore the teacher's (marked *pseudo GT* below); the real `person` figures are those on
{real_person}.
{_teacher_fill_lines(r)}
## Training recipe
- Start: COCO YOLOv8n recovered from the int8 ONNX export (`training/coco_init.py`), new
  7-class head; `person` and `fallen_person` score rows start from COCO's `person`.
- {r["epochs"]} epochs, imgsz {r["imgsz"]}, batch {r["batch"]}, AdamW lr0 {r["lr0"]} with cosine decay,
  backbone (first {r["freeze"]} layers) frozen, mosaic off for the last {r["close_mosaic"]} epochs, seed {r["seed"]}.
{_augmentation_lines(meta)}
- Training time {meta["training_seconds"] / 60:.0f} min on {meta["hardware"]} (shared with other work, niced).
- Data digest `{meta["data_hash"]}`.
- Reproduce: `python -m anjian.training.anjian_n prepare --work W && python -m anjian.training.anjian_n train --work W
  && python -m anjian.training.anjian_n finish --work W` (`train --resume` continues an interrupted run).

## Validation (val split of each source; the exported ONNX through anjian's detector loader, fp32)
Precision and recall at the best-F1 confidence, AP COCO-style (101 points); only the classes a
source labels are scored on it.

| source | class | images | instances | precision | recall | AP50 | AP50-95 |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

`person` AP50 against the COCO teacher (real labels only):

| source | COCO YOLOv8n (640) | {meta["name"]} ({meta["imgsz"]}) |
|---|---|---|
{teacher_rows}

{thresholds_card_section(meta.get("thresholds") or {}, where="the pooled val splits above")}{_crosseval_section(meta)}{ablation}## Training curve (merged val split, ultralytics' validator)
| epoch | precision | recall | mAP50 | mAP50-95 |
|---|---|---|---|---|
{curve}

## Limits
- Hospital falls and stock fire footage are not factory floors: validate on site footage
  (`anjian eval`) before relying on it, and retrain with harvested site images (`anjian dataset harvest`).
- Small cigarettes at a distance are beyond a {meta["imgsz"]}-pixel input.
- `fallen_person` is a person on the floor: a person lying in a bed (the hospital set's `lie`) is
  labelled `person`: a patient in bed is not a fall.

Created {meta["created_at"]}.
"""


def finish(
    work: Path,
    *,
    version: str = "1",
    registry: Path | None = None,
    is_promoting: bool = True,
    ablation_work: Path | None = None,
    is_updating: bool = False,
    crosseval_jsons: Sequence[Path] = (),
    is_quantizing: bool = True,
    progress: ProgressFn = no_progress,
) -> Path:
    """Export, evaluate and register the trained anjian-n; returns the registered ``model.onnx``.

    Args:
        work: The recipe's working folder.
        version: Registry version to write.
        registry: Registry folder; the shipped one when ``None``.
        is_promoting: Promote the new version.
        ablation_work: Working folder of the same recipe run without teacher labels
            (``prepare --no-pseudo-labels``); its model is scored on this run's val splits
            and compared in the card.
        is_updating: Re-evaluate the registered ``version`` (its file unchanged) and rewrite
            its ``meta.json`` and ``card.md``, e.g. to add the ablation or a held-out arm later; what
            this call does not measure again (int8 verdict, event evaluations, an ablation or
            cross-source figures not given this time) is kept.
        crosseval_jsons: The cross-source figures of the held-out arms of the same recipe
            (``crosseval`` in other working folders) for the card; default ``work/crosseval.json`` if any.
        is_quantizing: Quantise the registered model to int8 (kept only if it passes the gate).
        progress: Wraps the evaluation loops.
    """
    # the held-out arms' files first: a wrong path fails now, not after the export and the evaluation
    crosseval = _read_crosseval_arms(
        crosseval_jsons or [work / "crosseval.json"], is_default=not crosseval_jsons
    )
    recipe = json.loads((work / "recipe.json").read_text())
    run_dir = work / "runs" / MODEL_NAME
    record = json.loads((run_dir / "anjian_train.json").read_text())
    data_yaml = training_set(work)
    data = yaml.safe_load(data_yaml.read_text())
    export_dir = work / "export"
    registered = (registry or REGISTRY_DIR) / MODEL_NAME / version / "model.onnx"
    if is_updating:
        if not registered.is_file():
            raise FileNotFoundError(f"nothing to update: {registered} does not exist")
        onnx = registered
    else:
        onnx = export_onnx(
            run_dir / "weights" / "best.pt",
            export_dir / "model.onnx",
            imgsz=recipe["imgsz"],
            name=MODEL_NAME,
            version=version,
            description="anjian default detector: person, fallen_person, fire, smoke, cigarette, pallet, forklift",
        )
    reports = evaluate_per_source(onnx, data_yaml, progress=progress)
    # each class's operating score, from the PR curves of every source's val split (the rules default to it)
    choices = calibrate_thresholds(reports.values())
    if not is_updating:
        stamp_thresholds(onnx, thresholds_of(choices))
        to_fp16(onnx, export_dir / "model-fp16.onnx")
    filled = data.get("pseudo_labels", {}).get("filled_classes", {})
    pseudo = {source for source, classes in filled.items() if "person" in classes}
    real_person = [
        s for s, labelled in data["labelled_classes"].items() if "person" in labelled and s not in pseudo
    ]
    teacher = _teacher_person(
        Path(recipe["data_root"]) / "weights" / "coco_yolov8n_int8.onnx", data_yaml, real_person
    )
    ablation: dict[str, Any] = {}
    if ablation_work is not None:
        naive = export_onnx(
            ablation_work / "runs" / MODEL_NAME / "weights" / "best.pt",
            ablation_work / "export" / "model.onnx",
            imgsz=recipe["imgsz"],
            name=f"{MODEL_NAME}-naive",
            version=version,
            description="ablation: anjian-n trained without the teacher's person labels",
        )
        ablation = {
            s: r.to_dict() for s, r in evaluate_per_source(naive, data_yaml, progress=progress).items()
        }
    meta: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": list(data["names"]),
        "imgsz": recipe["imgsz"],
        "data_hash": record["data_hash"],
        "training_seconds": record["training_seconds"],
        "hardware": record["sessions"][-1]["hardware"],
        "recipe": recipe,
        "sources": data["sources"],
        "pseudo_person_sources": sorted(pseudo),
        "pseudo_person_boxes": sum(
            a["boxes"] for a in data.get("pseudo_labels", {}).get("added", []) if a["class"] == "person"
        ),
        "pseudo_classes": {s: list(c) for s, c in filled.items()},
        "val": {s: r.to_dict() for s, r in reports.items()},
        "teacher_person": {s: r.classes[0].ap50 for s, r in teacher.items()},
        "curve": [{k: v for k, v in e.items() if k == "epoch" or k in _CURVE_KEYS} for e in record["epochs"]],
        "onnx_sha256": file_sha256(onnx),
        "onnx_bytes": onnx.stat().st_size,
        "ablation": ablation,
        "crosseval": crosseval,
        "thresholds": {name: choice.to_dict() for name, choice in choices.items()},
        "derived_sources": _derived_sources(data_yaml),
    }
    if is_updating:  # same model file: only its metrics and card change
        previous = json.loads((registered.parent / "meta.json").read_text())
        meta = _kept_records(previous, meta)
        meta.update(name=MODEL_NAME, version=version, created_at=previous["created_at"])
        (registered.parent / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        sections = card_sections(registered.parent / "card.md")
        (registered.parent / "card.md").write_text(_card(meta))
        for section, markdown in sections.items():
            write_card_section(registered.parent / "card.md", section, markdown)
        logger.info("updated the metrics and card of %s %s", MODEL_NAME, version)
        return registered
    entry = register_version(
        MODEL_NAME, onnx, meta, _card(meta), version=version, root=registry or REGISTRY_DIR
    )
    if is_promoting:
        promote(MODEL_NAME, entry.version, root=registry or REGISTRY_DIR, note="trained by training.anjian_n")
    logger.info("registered %s %s at %s", MODEL_NAME, entry.version, entry.directory)
    if is_quantizing:
        _quantize(entry.onnx, data_yaml, progress)
    return entry.onnx


def _kept_records(previous: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """A version's new meta with the records an update did not measure again taken from its old one.

    Records made by other commands on the same file (``int8``, ``event_evals``, comparisons) are not
    ``finish``'s, and an ablation or cross-source arm not given this time is not a measurement that
    it is gone: both stay.
    """
    kept = {k: v for k, v in previous.items() if k not in fresh or (v and not fresh[k])}
    return {**fresh, **kept}


def _read_crosseval_arms(paths: Sequence[Path], *, is_default: bool) -> list[dict[str, Any]]:
    """Each held-out arm's ``crosseval.json``; a file named on the command line must exist and hold one."""
    arms = []
    for path in paths:
        if not path.is_file():
            if is_default:
                continue
            raise FileNotFoundError(f"--crosseval {path}: no such file (run 'crosseval' in that arm first)")
        try:
            arm = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"--crosseval {path}: not JSON ({exc})") from None
        if not isinstance(arm, dict) or not {"holdout", "models", "imgsz", "baseline"} <= set(arm):
            raise ValueError(
                f"--crosseval {path}: not a crosseval.json (no holdout, models, imgsz, baseline)"
            )
        arms.append(arm)
    return arms


def _quantize(onnx: Path, data_yaml: Path, progress: ProgressFn) -> None:
    """int8 of the registered model, calibrated and judged per source of the merged set."""
    from anjian.training.qat import QatRecipe
    from anjian.training.quantize import ValidationSource, quantize_registered, record_int8

    data = yaml.safe_load(Path(data_yaml).read_text())
    merged = load_yolo_set(data_yaml)
    sources = []
    for source, labelled in data.get("labelled_classes", {}).items():
        subset = DetectionSet(
            name=source,
            class_names=merged.class_names,
            images=[im for im in merged.images if im.source == source],
            labelled_classes={source: tuple(labelled)},
        )
        if subset.in_split("val") and subset.in_split("train"):
            sources.append(ValidationSource(source, subset, ClassMap(classes=tuple(labelled))))
    with tempfile.TemporaryDirectory(prefix="anjian-int8-") as work:
        outcome = quantize_registered(
            onnx, sources, work_dir=Path(work), qat=QatRecipe(Path(data_yaml)), progress=progress
        )
        record = record_int8(onnx, outcome)
    logger.info("int8 of %s: %s", onnx.parent, record["status"])
