"""Write an evaluation as one offline HTML page with its charts and galleries as files beside it.

``DIR/index.html`` needs nothing but the files next to it: ``pr_curves.png``,
``f1_curves.png``, ``confusion.png``, ``gallery/*.jpg`` and ``report.json`` (the figures,
the confusion matrix and each class's counts at the report threshold). No script, no
stylesheet or font from the network: it opens from a USB stick on an offline machine.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from anjian.training.evaluate import EvalReport, ImageMatches
from anjian.training.report.charts import plot_confusion, plot_f1_curves, plot_pr_curves, require_matplotlib
from anjian.training.report.gallery import GalleryItem, write_gallery
from anjian.training.report.matching import (
    ClassCurves,
    ErrorCase,
    class_curves,
    confusion_matrix,
    find_errors,
)

__all__ = ["write_eval_report"]

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1180px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; } h3 { margin-bottom: .3em; }
table { border-collapse: collapse; margin: .6em 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f3f3f3; }
td.diag { background: #e3f0e3; } td.bg { color: #a33; }
.charts img { max-width: 49%; } .meta { color: #555; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; width: 220px; } figure img { max-width: 220px; max-height: 220px; border: 1px solid #ccc; }
figcaption { font-size: 12px; color: #444; word-break: break-all; }
"""


def _num(value: float | None) -> str:
    """Three decimals or a dash."""
    return "–" if value is None or math.isnan(value) else f"{value:.3f}"


def _e(text: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(text))


def _class_rows(
    report: EvalReport, class_ids: Sequence[int], errors: Mapping[tuple[str, int], list[ErrorCase]]
) -> list[str]:
    """The per-class table rows: the report's figures and the counts at the report threshold."""
    rows = []
    for row, cid in zip(report.classes, class_ids, strict=True):
        misses = len(errors.get(("miss", cid), []))
        false_positives = len(errors.get(("false_positive", cid), []))
        sources = ", ".join(row.sources) if row.sources else ""
        rows.append(
            f"<tr><td>{_e(row.name)}</td><td>{_e(', '.join(row.data_classes))}</td>"
            f"<td class=n>{row.images_scored or report.images}</td><td>{_e(sources)}</td>"
            f"<td class=n>{row.instances}</td><td class=n>{_num(row.precision)}</td>"
            f"<td class=n>{_num(row.recall)}</td><td class=n>{_num(row.ap50)}</td>"
            f"<td class=n>{_num(row.ap50_95)}</td><td class=n>{row.instances - misses}</td>"
            f"<td class=n>{false_positives}</td><td class=n>{misses}</td></tr>"
        )
    return rows


def _confusion_table(matrix: np.ndarray, names: Sequence[str]) -> str:
    """The confusion matrix as an HTML table (rows true, columns predicted)."""
    labels = [*names, "background"]
    head = "".join(f"<th>{_e(n)}</th>" for n in labels)
    body = []
    for i, label in enumerate(labels):
        cells = []
        for j in range(len(labels)):
            css = "n diag" if i == j and i < len(names) else "n bg" if len(names) in (i, j) else "n"
            cells.append(f"<td class='{css}'>{matrix[i, j] or ''}</td>")
        body.append(f"<tr><th>{_e(label)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>true \\ predicted</th>{head}</tr>{''.join(body)}</table>"


def _caption(item: GalleryItem, names: Mapping[int, str]) -> str:
    """What a crop shows: file, score, and what it overlaps."""
    case = item.case
    where = f"{_e(Path(case.image).name)} ({_e(case.source)})"
    if case.kind == "false_positive":
        near = (
            f"overlaps a labelled {_e(names.get(case.overlap_class, case.overlap_class))} (IoU {case.overlap_iou:.2f})"
            if case.overlap_class is not None
            else "no labelled box here"
        )
        return f"score {case.confidence:.2f}; {near}<br>{where}"
    seen = (
        f"best {_e(names[case.class_id])} score here {case.confidence:.2f}"
        if case.confidence
        else "not found"
    )
    other = (
        f"; taken for {_e(names.get(case.overlap_class, case.overlap_class))} (IoU {case.overlap_iou:.2f})"
        if case.overlap_class is not None and case.overlap_class != case.class_id
        else ""
    )
    return f"{seen}{other}<br>{where}"


def _gallery_sections(
    gallery: Mapping[tuple[str, int], list[GalleryItem]],
    errors: Mapping[tuple[str, int], list[ErrorCase]],
    class_ids: Sequence[int],
    names: Mapping[int, str],
) -> list[str]:
    """One section per class: its false positives, then its misses."""
    parts = []
    titles = {
        "false_positive": ("False positives", "most confident first; red: the prediction, green: labels"),
        "miss": ("Misses", "least seen first; orange: the missed label, grey: predictions"),
    }
    for cid in class_ids:
        for kind, (title, order) in titles.items():
            items = gallery.get((kind, cid), [])
            total = len(errors.get((kind, cid), []))
            parts.append(f"<h3>{title} of {_e(names[cid])}: {len(items)} of {total} ({order})</h3>")
            if not items:
                parts.append("<p class=meta>none at this threshold</p>")
                continue
            figures = "".join(
                f"<figure><img src='{_e(i.file)}' alt='{_e(kind)}'><figcaption>{_caption(i, names)}</figcaption></figure>"
                for i in items
            )
            parts.append(f"<div class=grid>{figures}</div>")
    return parts


def _report_json(
    report: EvalReport,
    names: Sequence[str],
    class_ids: Sequence[int],
    curves: Sequence[ClassCurves],
    matrix: np.ndarray,
    errors: Mapping[tuple[str, int], list[ErrorCase]],
    confidence: float,
) -> dict[str, object]:
    """``report.json``: the evaluation, the confusion matrix and the counts at the report threshold."""
    at_threshold = {}
    for name, cid, curve in zip(names, class_ids, curves, strict=True):
        misses = len(errors.get(("miss", cid), []))
        at_threshold[name] = {
            "true_positives": curve.instances - misses,
            "false_positives": len(errors.get(("false_positive", cid), [])),
            "misses": misses,
            "best_f1": round(float(curve.f1_at.max()), 4),
            "best_f1_confidence": curve.best_confidence,
        }
    return {
        **report.to_dict(),
        "report_confidence": confidence,
        "iou": 0.5,
        "confusion": {"labels": [*names, "background"], "rows_true_columns_predicted": matrix.tolist()},
        "at_threshold": at_threshold,
    }


def write_eval_report(
    report: EvalReport,
    images: Sequence[ImageMatches],
    model_classes: Mapping[int, str],
    out_dir: Path,
    *,
    confidence: float = 0.25,
    per_class: int = 12,
) -> Path:
    """Write the HTML report of one evaluation.

    Args:
        report: The evaluation (``evaluate_detector``'s result).
        images: Its per-image matches (``evaluate_detector(..., on_image=MatchCollector())``).
        model_classes: The model's class id to name.
        out_dir: Folder to write into (created; files of an earlier report are replaced).
        confidence: Threshold of the confusion matrix, the counts and the galleries: the
            site's alert threshold is the useful one.
        per_class: Crops per class and kind in the galleries, worst first.

    Returns:
        Path of ``index.html``.

    Raises:
        ModuleNotFoundError: matplotlib is missing.
        ValueError: A class of the report is not one of the model's.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"the report threshold must be between 0 and 1, got {confidence}")
    require_matplotlib()
    ids = {name: cid for cid, name in model_classes.items()}
    missing = [c.name for c in report.classes if c.name not in ids]
    if missing:
        raise ValueError(f"report classes {missing} are not classes of the model {sorted(ids)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [c.name for c in report.classes]
    class_ids = [ids[n] for n in names]
    curves = [class_curves(images, cid) for cid in class_ids]
    matrix = confusion_matrix(images, class_ids, confidence)
    errors = find_errors(images, confidence)
    gallery = write_gallery({key: cases[:per_class] for key, cases in errors.items()}, out_dir)
    plot_pr_curves(curves, names, [c.ap50 for c in report.classes], out_dir / "pr_curves.png")
    plot_f1_curves(curves, names, confidence, out_dir / "f1_curves.png")
    plot_confusion(matrix, names, confidence, out_dir / "confusion.png")
    payload = _report_json(report, names, class_ids, curves, matrix, errors, confidence)
    (out_dir / "report.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    extra = report.extra
    facts = [
        f"{report.images} images",
        f"scored at IoU 0.5 (AP50-95: 0.5 to 0.95); detections kept from confidence {extra.get('confidence_threshold', '?')}",
        f"confusion, counts and galleries at confidence ≥ {confidence:.2f}",
    ]
    if extra.get("imgsz"):
        facts.append(f"input {extra['imgsz']}")
    if extra.get("data_hash"):
        facts.append(f"data {extra['data_hash']}")
    facts.append(f"written {datetime.now(UTC).isoformat(timespec='seconds')}")
    head = (
        "<tr><th>class</th><th>data classes</th><th>scored on images</th><th>sources</th><th>instances</th>"
        "<th>P</th><th>R</th><th>AP50</th><th>AP50-95</th>"
        f"<th>found ≥ {confidence:.2f}</th><th>false positives</th><th>misses</th></tr>"
    )
    rows = _class_rows(report, class_ids, errors)
    all_row = (
        f"<tr><th colspan=7>mean over classes with labels</th><td class=n>{_num(report.map50)}</td>"
        f"<td class=n>{_num(report.map50_95)}</td><td colspan=3></td></tr>"
    )
    ignored = (
        f"<p class=meta>Not scored: data classes {_e(list(report.ignored_data_classes))} (no model class); "
        f"model classes {_e(list(report.ignored_model_classes))} (no data class).</p>"
    )
    body = [
        f"<h1>{_e(report.model)} on {_e(report.data)}</h1>",
        f"<p class=meta>{_e('; '.join(facts))}</p>",
        "<h2>Per class</h2>",
        "<p class=meta>P and R at each class's best-F1 confidence; the last three columns at the report threshold.</p>",
        f"<table>{head}{''.join(rows)}{all_row}</table>",
        ignored,
        "<h2>Curves</h2>",
        (
            "<div class=charts><img src='pr_curves.png' alt='precision-recall curves'>"
            "<img src='f1_curves.png' alt='F1 against confidence'></div>"
        ),
        "<h2>Confusion</h2>",
        (
            "<p class=meta>Rows: the labelled class; columns: the predicted one. Boxes pair at IoU ≥ 0.5 whatever "
            "their class, so a fire taken for smoke shows off the diagonal; the background row counts false "
            "alarms, the background column misses.</p>"
        ),
        "<img src='confusion.png' alt='confusion matrix'>",
        _confusion_table(matrix, names),
        "<h2>Galleries</h2>",
        *_gallery_sections(gallery, errors, class_ids, model_classes),
    ]
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(report.model)} on {_e(report.data)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    index = out_dir / "index.html"
    index.write_text(page)
    return index
