"""Cross-source step of the anjian-n recipe: score a run on whole sources it never saw.

``python -m anjian.training.anjian_n crosseval --work W`` exports the run's best weights, then
scores them on every image (train and val) of each source the recipe held out
(``prepare --holdout``), next to the registered model (``builtin:anjian-n``) and the COCO
teacher (``person`` only), as it ships (640) and re-exported at the run's input size: the first is
the bar the card holds a model to, the second tells what of the gap is the input size and what the
training. Each class is scored only on the sources that label it. The
figures go to ``W/crosseval.json`` and a markdown table, which the card quotes: a variant
of the recipe is chosen by them, not by its fit to its own validation split.

The baseline's and the teacher's figures depend only on their model file and the held-out set,
so they are kept beside the held-out set (``holdout/.reference_scores/``, keyed by both digests)
and reused: every variant scored against the same held-out set pays only for its own model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from anjian.datasets.classmap import ClassMap
from anjian.datasets.hashing import dataset_digest
from anjian.datasets.labels import WHOLE_SPLIT, DetectionSet, ProgressFn, no_progress
from anjian.datasets.yolo import load_yolo_set
from anjian.models.config import DetectorConfig
from anjian.models.int8_ir import file_sha256
from anjian.models.loader import load_detector
from anjian.models.registry import resolve_model_path
from anjian.training.evaluate import EvalReport, ImageMatches, average_precision, evaluate_detector
from anjian.training.export import export_onnx
from anjian.training.train import read_epoch_metrics

__all__ = ["crosseval", "crosseval_summary", "crosseval_table", "format_figure", "whole_sources"]

logger = logging.getLogger(__name__)


def whole_sources(held_yaml: Path) -> dict[str, DetectionSet]:
    """Each held-out source as one set whose every image (train and val) is in split ``all``."""
    held = load_yolo_set(held_yaml)
    out = {}
    for source, labelled in held.labelled_classes.items():
        images = [im for im in held.images if im.source == source]
        out[source] = DetectionSet(
            name=source, class_names=held.class_names, images=images, labelled_classes={source: labelled}
        ).as_one_split()
    return out


_REFERENCE_FIGURES = "image-ap"
"""Bumped when a report gains figures, so references cached before are scored again."""

OPERATING_SCORE = 0.35
"""Score at which the image-level figures count a class as seen (the behaviour rules' usual floor)."""


class _ImageHits:
    """Per class, over the images it is scored on: images showing it and found at the operating score,
    images not showing it where it was reported anyway (a false alarm on that image), and the image AP.

    The image AP ranks the images by the class's top score and asks which show the class: the AP of
    "is it in this frame", whatever boxes the source's labellers drew (one loose box around a burning
    building in one fire set, one tight box per flame in the other), which is what raises an alert.
    """

    def __init__(self, names: dict[int, str], score: float) -> None:
        self._names = names
        self._score = score
        self.counts: dict[str, dict[str, Any]] = {}
        self._ranked: dict[str, list[tuple[float, bool]]] = {}

    def __call__(self, matches: ImageMatches) -> None:
        for class_id in matches.scored_classes:
            name = self._names[class_id]
            row = self.counts.setdefault(name, {"with": 0, "found": 0, "without": 0, "false_alarms": 0})
            scores = matches.pred_confidence[matches.pred_class == class_id]
            top = float(scores.max()) if scores.size else None
            is_reported = top is not None and top >= self._score
            shows = bool((matches.gt_class == class_id).any())
            if shows:
                row["with"] += 1
                row["found"] += is_reported
            else:
                row["without"] += 1
                row["false_alarms"] += is_reported
            if top is not None:
                self._ranked.setdefault(name, []).append((top, shows))

    def finish(self) -> dict[str, dict[str, Any]]:
        """The counts, each class with its ``image_ap`` (NaN where no image shows the class)."""
        for name, row in self.counts.items():
            ranked = self._ranked.get(name, [])
            shows = np.array([s for _, s in ranked], bool).reshape(-1, 1)
            top = np.array([t for t, _ in ranked], float)
            ap, *_ = average_precision(shows, top, row["with"])
            row["image_ap"] = float(ap[0])
        return self.counts


def _score(
    model: str | Path, sets: dict[str, DetectionSet], only: tuple[str, ...] | None, progress: ProgressFn
) -> dict[str, EvalReport]:
    """Evaluate one model on each set (restricted to ``only`` classes when given).

    Each report's ``extra["images_at_operating_score"]`` holds the image-level figures (see
    :class:`_ImageHits`): whether a class is seen on an image at all is what raises an alert, where
    AP50 also asks for boxes drawn as the source's labellers drew them.
    """
    detector = load_detector(
        model, DetectorConfig(path=str(model), confidence_threshold=0.001, cpu_precision="fp32")
    )
    out = {}
    for source, dataset in sets.items():
        if only and not set(only) & set(dataset.labelled_classes[source]):
            continue  # the source labels none of the classes asked for
        class_map = ClassMap(classes=only) if only else None
        hits = _ImageHits(detector.class_names, OPERATING_SCORE)
        try:
            report = evaluate_detector(
                detector, dataset, split=WHOLE_SPLIT, class_map=class_map, progress=progress, on_image=hits
            )
        except ValueError as exc:  # no class in common (the teacher on a fire set)
            logger.info("%s on %s: %s", model, source, exc)
            continue
        report.extra["images_at_operating_score"] = {"score": OPERATING_SCORE, "classes": hits.finish()}
        out[source] = report
    return out


def teacher_at_size(teacher: Path, imgsz: int, cache: Path) -> Path:
    """The teacher's float weights exported at ``imgsz`` (fp32 ONNX), made once and kept in ``cache``.

    The teacher ships as a static-640 int8 file; its weights are recovered
    (:func:`anjian.training.coco_init.save_recovered_checkpoint`) and exported at the run's
    input size, so a run's person figures can be set beside the teacher's at equal input.
    The file is named by the teacher's digest and the size, so its scores are cached too.
    """
    import tempfile

    from anjian.training.coco_init import save_recovered_checkpoint

    out = cache / f"teacher-{file_sha256(teacher)[:16]}-{imgsz}.onnx"
    if out.is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="anjian-teacher-") as tmp:
        weights = save_recovered_checkpoint(teacher, Path(tmp) / "teacher.pt")
        exported = export_onnx(
            weights,
            Path(tmp) / "export" / "model.onnx",
            imgsz=imgsz,
            name="coco-teacher",
            version=str(imgsz),
            description=f"the COCO teacher's recovered float weights at input {imgsz}",
        )
        shutil.copyfile(exported, out)
    return out


def _reference_scores(
    model: str | Path,
    sets: dict[str, DetectionSet],
    only: tuple[str, ...] | None,
    held_yaml: Path,
    progress: ProgressFn,
) -> dict[str, dict[str, Any]]:
    """A reference model's reports (as dicts), computed once per model file and held-out set."""
    path = resolve_model_path(str(model)) if str(model).startswith("builtin:") else Path(model)
    key = hashlib.sha256(
        f"{_REFERENCE_FIGURES}|{file_sha256(path)}|{dataset_digest(held_yaml)}|{','.join(only or ())}".encode()
    ).hexdigest()[:24]
    cached = held_yaml.parent / ".reference_scores" / f"{key}.json"
    if cached.is_file():
        logger.info("%s: reference figures reused from %s", model, cached)
        loaded: dict[str, dict[str, Any]] = json.loads(cached.read_text())
        return loaded
    scores = {source: report.to_dict() for source, report in _score(model, sets, only, progress).items()}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(scores, indent=2) + "\n")
    return scores


def crosseval(
    work: Path,
    *,
    baseline: str = "builtin:anjian-n",
    teacher: Path | None = None,
    is_snapshot: bool = False,
    progress: ProgressFn = no_progress,
) -> Path:
    """Score the run, the baseline and the teacher on the held-out sources; write ``crosseval.json``.

    Args:
        work: The recipe's working folder.
        baseline: The model the run is compared with.
        teacher: The COCO teacher (``person`` only); default: the recipe's.
        is_snapshot: Score the best weights as they are now, while the run goes on: they are copied
            to ``W/snapshots/epoch-N`` (N: epochs finished) and the figures written there, leaving
            ``W/crosseval.*`` to the finished run. This is how variants are screened every few epochs.
        progress: Wraps the evaluation loops.

    Returns:
        The JSON file.

    Raises:
        FileNotFoundError: The run has no weights or the recipe held nothing out.
    """
    recipe = json.loads((work / "recipe.json").read_text())
    held_yaml = work / "holdout" / "data.yaml"
    if not held_yaml.is_file():
        raise FileNotFoundError(f"{held_yaml} is missing: prepare the recipe with --holdout SOURCE ...")
    weights = work / "runs" / "anjian-n" / "weights" / "best.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: train the recipe first")
    out_dir = work
    if is_snapshot:
        epochs = len(read_epoch_metrics(weights.parent.parent))
        out_dir = work / "snapshots" / f"epoch-{epochs}"
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, out_dir / "best.pt")  # the run may replace best.pt while it is scored
        weights = out_dir / "best.pt"
    onnx = export_onnx(
        weights,
        out_dir / "export" / "model.onnx",
        imgsz=recipe["imgsz"],
        name="anjian-n-holdout",
        version="0",
        description="anjian-n recipe run with sources held out, for cross-source evaluation",
    )
    sets = whole_sources(held_yaml)
    teacher = teacher or Path(recipe["data_root"]) / "weights" / "coco_yolov8n_int8.onnx"
    scored = {
        "run": {s: r.to_dict() for s, r in _score(onnx, sets, None, progress).items()},
        "baseline": _reference_scores(baseline, sets, None, held_yaml, progress),
        "teacher": _reference_scores(teacher, sets, ("person",), held_yaml, progress),
        "teacher_at_run_size": _reference_scores(
            teacher_at_size(teacher, recipe["imgsz"], held_yaml.parent / ".reference_scores"),
            sets,
            ("person",),
            held_yaml,
            progress,
        ),
    }
    result: dict[str, Any] = {
        "holdout": list(recipe["holdout"]),
        "imgsz": recipe["imgsz"],
        "baseline": baseline,
        "models": scored,
    }
    out = out_dir / "crosseval.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "crosseval.md").write_text(crosseval_table(result) + "\n")
    logger.info("cross-source figures in %s", out)
    return out


def _ap(result: dict[str, Any], model: str, source: str, name: str) -> float | None:
    report = result["models"].get(model, {}).get(source)
    if report is None:
        return None
    return next((c["ap50"] for c in report["classes"] if c["name"] == name and c["instances"]), None)


def _image_ap(result: dict[str, Any], model: str, source: str, name: str) -> float | None:
    report = result["models"][model].get(source) or {}
    row = report.get("images_at_operating_score", {}).get("classes", {}).get(name) or {}
    value = row.get("image_ap")
    return None if value is None else float(value)


def _image_figures(report: dict[str, Any], name: str) -> str:
    """``found/with (rate) | false alarms/without (rate)`` of the run for one class, or dashes."""
    row = report.get("images_at_operating_score", {}).get("classes", {}).get(name)
    if not row:
        return "– | –"

    def rate(k: int, n: int) -> str:
        return f"{k}/{n} ({k / n:.0%})" if n else "–"

    return f"{rate(row['found'], row['with'])} | {rate(row['false_alarms'], row['without'])}"


def format_figure(value: float | None) -> str:
    """A figure with three decimals, or a dash where there is none (``None`` or NaN)."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def crosseval_summary(arms: list[dict[str, Any]]) -> str:
    """Markdown: one row per class and held-out source over every arm, classes together, the weakest source first.

    This is the table a model is judged by: each figure comes from a run of the same recipe that never
    saw that source, next to the model it replaces and (``person``) the COCO teacher as shipped.
    """
    rows: list[tuple[str, float, str]] = []
    for arm in arms:
        for source, report in arm["models"]["run"].items():
            for c in report["classes"]:
                if not c["instances"]:
                    continue
                name = c["name"]
                teacher = _ap(arm, "teacher", source, name) if name == "person" else None
                line = (
                    f"| {name} | {source} | {c['instances']} | {format_figure(c['ap50'])} | "
                    f"{format_figure(_ap(arm, 'baseline', source, name))} | {format_figure(teacher)} | "
                    f"{format_figure(_image_ap(arm, 'run', source, name))} |"
                )
                ap = c["ap50"] if c["ap50"] is not None and not math.isnan(c["ap50"]) else -1.0
                rows.append((name, ap, line))
    baselines = sorted({str(arm["baseline"]) for arm in arms})
    header = [
        f"| class | held-out source | instances | AP50 | {' / '.join(baselines)} | COCO teacher | image AP |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(header + [line for _, _, line in sorted(rows, key=lambda r: (r[0], r[1]))])


def crosseval_table(result: dict[str, Any]) -> str:
    """Markdown: per held-out source and class, AP50 of the run, the baseline and the teacher (as shipped and at
    the run's input size; a dash in results scored before the second existed), the image AP
    of the run and the baseline (is the class in the frame at all), and the run's image-level figures at the
    operating score (images showing the class where it was found; images not showing it where it was
    reported)."""
    lines = [
        (
            f"| held-out source | class | images | instances | this run | {result['baseline']} | COCO teacher "
            f"| COCO teacher at {result['imgsz']} | image AP: run / {result['baseline']} "
            f"| run: found at {OPERATING_SCORE} | run: false alarms at {OPERATING_SCORE} |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    for source, report in result["models"]["run"].items():
        for c in report["classes"]:
            if not c["instances"]:
                continue
            name = c["name"]
            lines.append(
                f"| {source} | {name} | {c['images']} | {c['instances']} | {format_figure(c['ap50'])} | "
                f"{format_figure(_ap(result, 'baseline', source, name))} | "
                f"{format_figure(_ap(result, 'teacher', source, name)) if name == 'person' else '–'} | "
                f"{format_figure(_ap(result, 'teacher_at_run_size', source, name)) if name == 'person' else '–'} | "
                f"{format_figure(_image_ap(result, 'run', source, name))} / {format_figure(_image_ap(result, 'baseline', source, name))} | "
                f"{_image_figures(report, name)} |"
            )
    return "\n".join(lines)
