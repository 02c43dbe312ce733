"""Keep an evaluation with the registry version it scored, where ``models list`` and the card show it.

``anjian eval --model M --data D --record NAME/VERSION`` hands the report here:
:func:`record_evaluation` adds it to the version's ``meta.json`` under ``evals`` (a newer
evaluation of the same data and class map replaces the older one) and rewrites the card's
``evals`` section from them; ``anjian eval-events --record NAME/VERSION`` hands its
report to :func:`record_event_evaluation` (``event_evals``, the card's ``events`` section:
each behaviour's figures on the clips, and which clips missed or alerted falsely). For a
shipped version both go to the site registry
(:func:`anjian.models.registry.version_record_dir`); the shipped files stay as released.
:func:`keep_record` is how every such record is kept (comparisons too, see
:mod:`anjian.training.comparison_record`).

:func:`ap50_by_data` reads back the AP50 per evaluated set (the release's per-source ``val``
figures and every recorded evaluation): ``models list`` shows them and their mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anjian.models.int8_ir import file_sha256
from anjian.models.registry import (
    read_meta,
    resolve_model_path,
    version_record_dir,
    write_card_section,
    write_meta,
)

__all__ = [
    "ap50_by_data",
    "check_recorded_model",
    "evals_markdown",
    "event_evals_markdown",
    "keep_record",
    "parse_version_ref",
    "record_evaluation",
    "record_event_evaluation",
]


def parse_version_ref(text: str) -> tuple[str, str]:
    """``NAME/VERSION`` (or ``builtin:NAME/VERSION``) as its two parts.

    Raises:
        ValueError: It is not of that form.
    """
    name, _, version = text.removeprefix("builtin:").partition("/")
    if not name or "@" in name or not version.isdigit():
        raise ValueError(f"--record takes NAME/VERSION, such as anjian-n/101; got {text!r}")
    return name, version


def check_recorded_model(spec: str, name: str, version: str, *, root: Path | None = None) -> None:
    """Refuse to record figures of another model under ``NAME/VERSION``.

    A ``builtin:`` spec must resolve to that version's file and an ``.onnx`` file must
    have its bytes; a ``.pt`` checkpoint (the weights the version was exported from) is
    taken at the analyst's word, its path kept in the record.

    Raises:
        ModelLoadError: The version does not exist.
        ValueError: ``spec`` is another model.
    """
    target = resolve_model_path(f"builtin:{name}/{version}", root=root)
    path = resolve_model_path(spec, root=root)
    if spec.startswith("builtin:") and path.resolve() != target.resolve():
        raise ValueError(f"--model {spec} is {path}, not {name}/{version} ({target}): nothing recorded")
    if path.suffix.lower() == ".onnx" and path.is_file() and file_sha256(path) != file_sha256(target):
        raise ValueError(f"--model {path} is not the model.onnx of {name}/{version}: nothing recorded")


def _same_evaluation(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two records score the same data the same way (the newer replaces the older)."""
    return all(a.get(key) == b.get(key) for key in ("data", "split", "class_map", "data_hash"))


def _fmt(value: object) -> str:
    """A stored figure with three decimals, or a dash."""
    if isinstance(value, int | float) and not math.isnan(value):
        return f"{value:.3f}"
    return "–"


def evals_markdown(evals: Sequence[Mapping[str, Any]]) -> str:
    """The card section listing the recorded evaluations: one row per data set, AP50 per class."""
    lines = [
        "## Evaluations",
        "",
        "Written by `anjian eval --record`: AP COCO-style (101 points), P and R at the best-F1 confidence.",
        "",
        "| data | images | mAP50 | mAP50-95 | AP50 per class | model | recorded |",
        "|---|---|---|---|---|---|---|",
    ]
    for record in evals:
        classes = ", ".join(
            f"{c.get('name')} {_fmt(c.get('ap50'))}"
            if c.get("instances")
            else f"{c.get('name')} no boxes, {c.get('false_alarms')} false alarm(s)"
            for c in record.get("classes", [])
            if isinstance(c, Mapping) and (c.get("instances") or c.get("false_alarms"))
        )
        lines.append(
            f"| {record.get('data', '?')} | {record.get('images', '?')} | {_fmt(record.get('map50'))} | "
            f"{_fmt(record.get('map50_95'))} | {classes or '–'} | `{record.get('model_spec', record.get('model'))}` | "
            f"{record.get('recorded_at', '')} |"
        )
    return "\n".join(lines) + "\n"


def _now() -> str:
    """When a record is kept, UTC to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def keep_record(
    name: str,
    version: str,
    key: str,
    section: str,
    entry: dict[str, Any],
    is_replaced: Callable[[Any], bool],
    render: Callable[[Sequence[Any]], str],
    *,
    root: Path | None,
) -> Path:
    """Add ``entry`` to the list ``key`` of a registry version's ``meta.json``, then rewrite the card's ``section``.

    The one way evaluations, event evaluations and comparisons are kept with a version.

    Args:
        name: Model name.
        version: Its version.
        key: The list in ``meta.json`` (``evals``, ``event_evals``, ``comparisons``).
        section: The card section rewritten from the list.
        entry: The new record, JSON-ready; it goes last.
        is_replaced: Whether a stored record of the list gives way to ``entry`` (dropped).
        render: The section's markdown from the whole list.
        root: Site registry folder (:func:`anjian.models.registry.site_registry`).

    Returns:
        The folder written (the site registry's record folder for a shipped version).

    Raises:
        ModelLoadError: The version does not exist.
    """
    folder = version_record_dir(name, version, root=root)
    meta = read_meta(folder)
    meta[key] = [*(r for r in meta.get(key, []) if not is_replaced(r)), entry]
    write_meta(folder, meta)
    write_card_section(folder / "card.md", section, render(meta[key]))
    return folder


def record_evaluation(
    name: str, version: str, report: Mapping[str, Any], *, root: Path | None = None
) -> Path:
    """Keep an evaluation report (``EvalReport.to_dict()``) with a registry version.

    Args:
        name: Model name.
        version: Its version.
        report: The evaluation, JSON-ready.
        root: Site registry folder (:func:`anjian.models.registry.site_registry`).

    Returns:
        The folder whose ``meta.json`` and ``card.md`` now hold it.

    Raises:
        ModelLoadError: The version does not exist.
    """
    entry = {"recorded_at": _now(), **report}
    return keep_record(
        name,
        version,
        "evals",
        "evals",
        entry,
        lambda old: not isinstance(old, Mapping) or _same_evaluation(old, entry),
        evals_markdown,
        root=root,
    )


def _event_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the card needs of an ``eval-events`` report: the clips that missed an incident or alerted falsely."""
    clips = [c for c in report.get("clips", []) if isinstance(c, Mapping)]
    missed = [
        f"{Path(str(c.get('video'))).name} ({i.get('behaviour')})"
        for c in clips
        for i in c.get("incidents", [])
        if isinstance(i, Mapping) and i.get("alert_s") is None
    ]
    false_alerts = [
        f"{Path(str(c.get('video'))).name} ({a.get('behaviour')})"
        for c in clips
        for a in c.get("alerts", [])
        if isinstance(a, Mapping) and not a.get("matched")
    ]
    quiet = [c for c in clips if not c.get("incidents")]
    return {
        "clips": len(clips),
        "quiet_clips": len(quiet),
        "quiet_seconds": round(sum(float(c.get("clip_s") or 0.0) for c in quiet), 1),
        "missed": missed,
        "false_alerts": false_alerts,
    }


def _seconds(value: object) -> str:
    """A stored delay with one decimal and its unit, or a dash."""
    return f"{value:.1f} s" if isinstance(value, int | float) and not math.isnan(value) else "–"


def event_evals_markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """The card section listing the recorded ``eval-events`` runs: per run, each behaviour's figures."""
    lines = [
        "## Real clips through the whole pipeline",
        "",
        (
            "Written by `anjian eval-events --record`: the clips replayed through the site's pipeline (rules at the "
            "model's thresholds), alerts matched with the incidents each clip holds."
        ),
    ]
    for record in records:
        lines += [
            "",
            *([f"{record['description']}.", ""] if record.get("description") else []),
            (
                f"`{record.get('spec')}` ({record.get('clips')} clips; {record.get('quiet_clips')} of them, "
                f"{record.get('quiet_seconds')} s, hold no incident), `{record.get('model_spec')}`, "
                f"recorded {record.get('recorded_at', '')}:"
            ),
            "",
            "| behaviour | expected | raised | true | precision | recall | time to alert p50 | max |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in record.get("behaviours", []):
            lines.append(
                f"| {row.get('behaviour')} | {row.get('expected')} | {row.get('raised')} | "
                f"{row.get('true_positives')} | {_fmt(row.get('precision'))} | {_fmt(row.get('recall'))} | "
                f"{_seconds(row.get('median_time_to_alert_s'))} | {_seconds(row.get('max_time_to_alert_s'))} |"
            )
        lines += [
            "",
            (
                f"Missed: {', '.join(record.get('missed', [])) or 'none'}. "
                f"False alerts: {', '.join(record.get('false_alerts', [])) or 'none'}."
            ),
        ]
    return "\n".join(lines) + "\n"


def record_event_evaluation(
    name: str,
    version: str,
    report: Mapping[str, Any],
    *,
    spec: str,
    model_spec: str,
    description: str | None = None,
    root: Path | None = None,
) -> Path:
    """Keep an ``eval-events`` report (its ``--json`` payload) with a registry version.

    A newer run of the same spec file (wherever it was named from) replaces the older one.

    Args:
        name: Model name.
        version: Its version.
        report: ``{"behaviours": [...], "clips": [...]}`` as ``eval-events --json`` writes it.
        spec: The clips spec replayed (as given).
        description: What the spec says its clips are.
        model_spec: The ``--model`` that ran.
        root: Site registry folder (:func:`anjian.models.registry.site_registry`).

    Returns:
        The folder whose ``meta.json`` and ``card.md`` now hold it.

    Raises:
        ModelLoadError: The version does not exist.
    """
    entry = {
        "recorded_at": _now(),
        "spec": spec,
        "spec_path": str(Path(spec).resolve()),
        "description": description,
        "model_spec": model_spec,
        "behaviours": list(report.get("behaviours", [])),
        **_event_summary(report),
    }
    return keep_record(
        name,
        version,
        "event_evals",
        "events",
        entry,
        lambda old: (
            not isinstance(old, Mapping) or old.get("spec_path", old.get("spec")) == entry["spec_path"]
        ),
        event_evals_markdown,
        root=root,
    )


def ap50_by_data(meta: Mapping[str, Any]) -> dict[str, float]:
    """mAP50 per evaluated set: the release's per-source ``val`` figures, then recorded evaluations."""
    found: dict[str, float] = {}
    released = meta.get("val")
    sources = released.items() if isinstance(released, Mapping) else ()
    recorded = meta.get("evals")
    evals = (
        ((r.get("data", "?"), r) for r in recorded if isinstance(r, Mapping))
        if isinstance(recorded, list)
        else ()
    )
    for data, record in [*sources, *evals]:
        value = record.get("map50") if isinstance(record, Mapping) else None
        if isinstance(value, int | float) and not math.isnan(value):
            found[str(data)] = float(value)
    return found
