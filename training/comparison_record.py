"""Keep model comparisons with the registry versions they compare, and read them back for ``promote``.

:func:`record_comparison` adds a :class:`anjian.training.compare.Comparison` to a version's
``meta.json`` under ``comparisons`` (a newer comparison against the same model replaces the
older one) and rewrites the card's ``comparisons`` section from them. For a shipped version
both go to the site registry (:func:`anjian.models.registry.version_record_dir`); the shipped files
stay as released. :func:`comparison_for_promotion` finds what ``anjian models promote``
shows: the candidate against the version it replaces.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from anjian.models.errors import ModelError
from anjian.models.registry import list_versions, resolve_model_path
from anjian.training.compare import Comparison, Scores
from anjian.training.eval_record import keep_record

__all__ = [
    "comparison_for_promotion",
    "comparison_markdown",
    "find_comparison",
    "record_comparison",
    "registry_version_of",
]


def registry_version_of(spec: str, *, root: Path | None = None) -> tuple[str, str, Path] | None:
    """The registry model name, version and folder a model spec points at, if any.

    ``builtin:NAME``, ``builtin:NAME@SCOPE`` and ``builtin:NAME/VERSION`` resolve through the
    registry; a file path counts when it is a registry version's ``model.onnx`` (a folder
    named by digits, with a ``meta.json``).
    """
    try:
        path = resolve_model_path(spec, root=root).resolve()
    except ModelError:
        return None
    folder = path.parent
    if path.name == "model.onnx" and folder.name.isdigit() and (folder / "meta.json").is_file():
        return folder.parent.name, folder.name, folder
    return None


def _fmt(value: float, *, signed: bool = False) -> str:
    """Three decimals (with a sign for differences) or a dash."""
    if math.isnan(value):
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def comparison_markdown(comparisons: Sequence[Comparison]) -> str:
    """The model card section listing comparisons, each from this model's side.

    Returns:
        Markdown: one sub-section per compared model, one table per data set.
    """
    lines = [
        "## Comparisons",
        "",
        "Written by `anjian models compare`; Δ is this version minus the other (positive: this one",
        "scores higher). P and R are at each model's best-F1 confidence, IoU 0.5.",
    ]
    for comparison in comparisons:
        lines += ["", f"### vs {comparison.b.label} ({comparison.created_at})", ""]
        for d in comparison.data:
            version = f", data version `{d.data_version}`" if d.data_version else ""
            digest = f", `{d.data_hash[:19]}…`" if d.data_hash else ""
            lines += [
                (
                    f"**{d.data}** ({d.images} images{version}{digest}): mAP50 "
                    f"{_fmt(d.common_mean('ap50', 'a'))} vs {_fmt(d.common_mean('ap50', 'b'))} "
                    "on the classes both score."
                ),
                "",
                "| class | instances | AP50 | other | Δ | AP50-95 | other | Δ | P | R |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for c in d.classes:
                mine = c.a or Scores(math.nan, math.nan, math.nan, math.nan)
                other = c.b or Scores(math.nan, math.nan, math.nan, math.nan)
                lines.append(
                    f"| {c.name} | {c.instances} | {_fmt(mine.ap50)} | {_fmt(other.ap50)} | "
                    f"{_fmt(c.delta('ap50'), signed=True)} | {_fmt(mine.ap50_95)} | {_fmt(other.ap50_95)} | "
                    f"{_fmt(c.delta('ap50_95'), signed=True)} | {_fmt(mine.precision)} | {_fmt(mine.recall)} |"
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _same_pair(record: Mapping[str, Any], comparison: Comparison) -> bool:
    """Whether a stored record compares the same two models (a newer run replaces it)."""
    try:
        old = Comparison.from_dict(record)
    except ValueError:
        return False
    if comparison.b.registry_name and comparison.b.registry_version:
        return old.b.is_version(comparison.b.registry_name, comparison.b.registry_version)
    return old.b.version == comparison.b.version


def record_comparison(name: str, version: str, comparison: Comparison, *, root: Path | None = None) -> Path:
    """Keep a comparison in registry version ``version`` of ``name``: its ``meta.json`` and card section.

    ``comparison`` must be seen from this version's side (``comparison.a`` is this version;
    use :meth:`Comparison.swapped` for the other one). A newer comparison against the same
    model replaces the older one; the card's ``comparisons`` section is rewritten, the rest
    of the card kept.

    Returns:
        The folder written (the site registry's record folder for a shipped version).

    Raises:
        ModelLoadError: The version does not exist.
    """
    return keep_record(
        name,
        version,
        "comparisons",
        "comparisons",
        comparison.to_dict(),
        lambda old: _same_pair(old, comparison),
        lambda records: comparison_markdown(_read_comparisons(records)),
        root=root,
    )


def _read_comparisons(records: Iterable[Any]) -> list[Comparison]:
    """The stored records that read back as comparisons, in order (a malformed one is skipped)."""
    comparisons = []
    for record in records:
        try:
            comparisons.append(Comparison.from_dict(record))
        except ValueError:
            continue
    return comparisons


def find_comparison(meta: Mapping[str, Any], name: str, version: str) -> Comparison | None:
    """The latest stored comparison against registry version ``version`` of ``name``, if any."""
    found = [c for c in _read_comparisons(meta.get("comparisons", [])) if c.b.is_version(name, version)]
    return found[-1] if found else None


def comparison_for_promotion(
    name: str, version: str, current: str | None, *, root: Path | None = None
) -> Comparison | None:
    """What ``promote`` shows: the stored comparison of ``version`` against the ``current`` one.

    Returns:
        The comparison from ``version``'s side, ``None`` when there is no current version,
        it is the same, or the two were never compared.
    """
    if current is None or current == version:
        return None
    try:
        versions = {v.version: v for v in list_versions(name, root=root)}
    except ModelError:
        return None
    candidate = versions.get(version)
    return find_comparison(candidate.meta, name, current) if candidate else None
