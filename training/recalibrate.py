"""A registered version's operating thresholds calibrated on labelled sets, kept as a new version.

The rules default to each class's calibrated threshold stored in the model file
(:mod:`anjian.training.thresholds`). A model released without them (anjian-n 1 predates
the calibration) runs every rule at its hand-set default, 0.35 for fire, where its fire
scores on real footage sit between 0.05 and 0.3; and a site whose footage differs from the
sets a model was calibrated on may want its own operating points. :func:`recalibrate_version`
scores a registered version on the val splits of labelled sets (one per source, through
anjian's evaluation, only the classes each set labels), pools each class's PR curve over
them and picks its threshold (:func:`~anjian.training.thresholds.calibrate_thresholds`).

With ``register``, the thresholds are stamped into a copy of the model file, registered as
a new version (not promoted: what runs does not change until ``anjian models promote``).
The weights are the same, so the version's evaluations and cross-source figures carry over
in its ``meta.json`` (its ``eval-events`` records do not: alerts depend on the thresholds); the new file's digest, the thresholds and where they came from
(``recalibrated_from``) are added, and the card gains an operating-thresholds section. A
rejected int8 record carries over (same weights, same verdict); an accepted one does not,
as its IR belongs to the other file (quantise the new version again).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anjian.datasets.labels import ProgressFn, no_progress
from anjian.models.atomic import write_atomic
from anjian.models.int8_ir import file_sha256
from anjian.models.loader import load_detector
from anjian.models.registry import (
    ModelVersion,
    read_meta,
    register_version,
    resolve_model_path,
    write_card_section,
)
from anjian.training.label_errors import check_label_errors
from anjian.training.quantize import ValidationSource, evaluate_sources, load_sources, scoring_config
from anjian.training.thresholds import (
    ThresholdChoice,
    calibrate_thresholds,
    stamp_thresholds,
    thresholds_card_section,
    thresholds_of,
)

__all__ = ["Recalibration", "recalibrate_version"]

logger = logging.getLogger(__name__)

_FILE_KEYS = ("name", "version", "created_at", "onnx_sha256", "onnx_bytes", "event_evals")
"""Keys of a version's meta.json that describe its own file, not its weights (alerts on clips depend on
the thresholds: run ``eval-events`` again)."""


@dataclass(frozen=True, slots=True)
class Recalibration:
    """What :func:`recalibrate_version` found and did.

    Attributes:
        model: ``NAME/VERSION`` that was scored.
        sources: The sets whose val splits were pooled.
        choices: Each class's new threshold with its precision and recall there.
        previous: The thresholds the version carried (empty: none, the rules' defaults).
        registered: The new version, when one was registered.
        label_errors: One summary per scored split with label errors, scored anyway
            (``allow_label_errors``): the thresholds rest on ground truth that lost boxes.
    """

    model: str
    sources: tuple[str, ...]
    choices: dict[str, ThresholdChoice]
    previous: dict[str, float]
    registered: ModelVersion | None = None
    label_errors: tuple[str, ...] = ()


def _label_errors(
    sources: Sequence[ValidationSource], data: Sequence[Path], *, is_allowed: bool
) -> tuple[str, ...]:
    """The label-error summaries of the splits about to be scored; refuses them unless ``is_allowed``.

    Raises:
        LabelErrorsError: A scored split has label errors and they are not allowed.
    """
    found = []
    for source, path in zip(sources, data, strict=False):
        dataset, split = source.judged
        summary = check_label_errors(dataset, split, is_allowed=is_allowed, data=path)
        if summary is not None:
            found.append(summary)
    return tuple(found)


def _new_meta(old: dict[str, Any], stamped: Path, calibration: dict[str, Any]) -> dict[str, Any]:
    """The new version's meta: the weights' records, this file's digest, the thresholds and their origin."""
    meta = {k: v for k, v in old.items() if k not in _FILE_KEYS}
    if (meta.get("int8") or {}).get("status") != "rejected":
        meta.pop("int8", None)
    meta.update(
        onnx_sha256=file_sha256(stamped),
        onnx_bytes=stamped.stat().st_size,
        thresholds=calibration["thresholds"],
        recalibrated_from=calibration,
    )
    return meta


def _new_card(
    old_card: str, old_meta: dict[str, Any], name: str, new_version: str, meta: dict[str, Any]
) -> str:
    """The weights' card under the new version's title and digest, with a line on where it comes from."""
    source = meta["recalibrated_from"]
    body = old_card.split("\n", 1)[1] if old_card.startswith("# ") else old_card
    if old_meta.get("onnx_sha256"):
        body = body.replace(old_meta["onnx_sha256"][:16], meta["onnx_sha256"][:16])
    lead = (
        f"# {name} {new_version}\n\n"
        f"The weights of {source['model']} with each class's operating threshold calibrated on the val "
        f"splits of {', '.join(source['sources'])} and stored in the model file (section below): the rules "
        "default to them instead of their hand-set scores. Everything measured of the weights (AP per source, "
        "cross-source figures, int8) is the same as for the version they come from.\n"
    )
    return lead + body


def recalibrate_version(
    name: str,
    version: str,
    data: Sequence[Path],
    *,
    class_map: Path | None = None,
    root: Path | None = None,
    register: bool = False,
    new_version: str | None = None,
    progress: ProgressFn = no_progress,
    allow_label_errors: bool = False,
) -> Recalibration:
    """Calibrate a registered version's per-class thresholds on labelled sets; optionally register the result.

    Args:
        name: Model name.
        version: Version to calibrate (its ``model.onnx``).
        data: The sets' ``data.yaml`` files, one per source; their val splits are scored.
        class_map: Maps their class names onto the model's.
        root: Site registry (see :mod:`anjian.models.registry`); the new version goes there.
        register: Register the calibrated copy as a new version (not promoted).
        new_version: Its number (default: the next free one).
        progress: Called as images are scored.
        allow_label_errors: Score val splits with label errors anyway (unknown class ids,
            malformed lines: their objects count as background); listed in ``label_errors``.

    Returns:
        The thresholds chosen and, with ``register``, the new version.

    Raises:
        ModelLoadError: No such version, or its file cannot be read.
        DatasetError: A set or the class map cannot be read.
        LabelErrorsError: A val split has label errors and ``allow_label_errors`` is off.
        ValueError: No set given, two sets share a name, or no class has a true positive on them.
        FileExistsError: ``new_version`` exists already.
    """
    onnx = resolve_model_path(f"builtin:{name}/{version}", root=root)
    sources = load_sources(data, class_map)
    label_errors = _label_errors(sources, data, is_allowed=allow_label_errors)
    detector = load_detector(str(onnx), scoring_config(onnx))
    reports = evaluate_sources(detector, sources, progress=progress)
    choices = calibrate_thresholds(reports.values())
    if not choices:
        raise ValueError(
            f"no class of {name}/{version} has a true positive on the val splits of "
            f"{[s.name for s in sources]}: nothing to calibrate from"
        )
    model = f"{name}/{version}"
    result = Recalibration(
        model=model,
        sources=tuple(s.name for s in sources),
        choices=choices,
        previous=dict(detector.class_thresholds),
        label_errors=label_errors,
    )
    if not register:
        return result
    thresholds = {n: c.to_dict() for n, c in choices.items()}
    calibration: dict[str, Any] = {
        "model": model,
        "sources": list(result.sources),
        "split": "val",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "previous": result.previous,
        "thresholds": thresholds,
    }
    old_meta = read_meta(onnx.parent)
    card = onnx.parent / "card.md"
    with tempfile.TemporaryDirectory(prefix="anjian-recalibrate-") as work:
        stamped = stamp_thresholds(onnx, thresholds_of(choices), Path(work) / "model.onnx")
        meta = _new_meta(old_meta, stamped, calibration)
        old_card = card.read_text() if card.is_file() else f"# {name} {version}\n"
        entry = register_version(name, stamped, meta, "", version=new_version, root=root)
    new_card = _new_card(old_card, old_meta, name, entry.version, meta)
    write_atomic(entry.directory / "card.md", new_card)
    section = thresholds_card_section(
        thresholds, where=f"the pooled val splits of {', '.join(result.sources)}"
    )
    write_card_section(entry.directory / "card.md", "thresholds", section)
    logger.info("registered %s %s: %s with calibrated thresholds", name, entry.version, model)
    return replace(result, registered=entry)
