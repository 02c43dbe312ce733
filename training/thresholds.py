"""Per-class operating thresholds, calibrated from an evaluation's precision-recall data.

A detector's score means something different for each class: a fire box at 0.2 may be
as trustworthy as a person at 0.5. The rules used one hand-set ``min_confidence`` for all
(0.35 for fire), and a real close-up fire scoring 0.10-0.47 frame to frame went unseen.
Instead, each class gets the score that maximises F-beta on the validation PR curve:

- ``beta = 2`` (recall weighs four times precision) for ``fire``, ``smoke`` and
  ``fallen_person``: a missed fire or collapse is far worse than a false box, and the
  rules filter lone false boxes anyway (k of n frames, the flame's flicker, a lying
  person's duration);
- ``beta = 1`` (F1) for every other class, where false boxes cost as much as misses
  (a person counted at a post that is empty, a cigarette on a pen).

The chosen score is kept inside ``[min_score, max_score]`` (default 0.05-0.9): a curve
whose best point sits at the evaluation's floor (0.001) says the class is hopeless, not
that every speck should count. A class without ground truth or without a single true
positive gets no threshold; the rules keep their defaults for it.

:func:`calibrate_thresholds` pools each class over several evaluations (one per source),
:func:`stamp_thresholds` writes the result into an ONNX file's metadata
(``anjian_thresholds``, read back by ``anjian.models.metadata``), and
:func:`load_thresholds_json` reads what ``anjian eval --json`` wrote.

Example:
    >>> reports = evaluate_per_source(onnx, data_yaml)
    >>> choices = calibrate_thresholds(reports.values())
    >>> stamp_thresholds(onnx, thresholds_of(choices))
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anjian.models.metadata import THRESHOLDS_KEY, parse_class_thresholds

if TYPE_CHECKING:
    from anjian.training.evaluate import EvalReport

__all__ = [
    "RECALL_FIRST_CLASSES",
    "ScoredPredictions",
    "ThresholdChoice",
    "calibrate_thresholds",
    "load_thresholds_json",
    "pick_threshold",
    "stamp_thresholds",
    "thresholds_card_section",
    "thresholds_of",
]

RECALL_FIRST_CLASSES: Mapping[str, float] = {"fire": 2.0, "smoke": 2.0, "fallen_person": 2.0}
"""Classes whose miss is worse than a false box, with their F-beta ``beta``; others use 1."""


@dataclass(frozen=True, slots=True)
class ScoredPredictions:
    """Every prediction of one class on an evaluated split, matched at IoU 0.5.

    Attributes:
        confidence: ``(n,) float`` scores.
        is_tp: ``(n,) bool`` whether each matched a ground-truth box.
        instances: Ground-truth boxes of the class.
    """

    confidence: np.ndarray
    is_tp: np.ndarray
    instances: int

    def __post_init__(self) -> None:
        if self.confidence.shape != self.is_tp.shape or self.confidence.ndim != 1:
            raise ValueError(
                f"confidence and is_tp must be (n,) arrays of one length, got {self.confidence.shape} "
                f"and {self.is_tp.shape}"
            )
        if self.instances < 0:
            raise ValueError(f"instances must be >= 0, got {self.instances}")

    @classmethod
    def pooled(cls, parts: Iterable[ScoredPredictions]) -> ScoredPredictions:
        """One class's predictions over several evaluations (sources) as one set."""
        parts = list(parts)
        return cls(
            confidence=np.concatenate([p.confidence for p in parts]) if parts else np.zeros(0),
            is_tp=np.concatenate([p.is_tp for p in parts]).astype(bool) if parts else np.zeros(0, bool),
            instances=sum(p.instances for p in parts),
        )


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    """The operating point chosen for one class.

    Attributes:
        name: Class name.
        threshold: Score at and above which a box counts.
        beta: The F-beta weight used (2: recall first).
        precision: Precision at the threshold (IoU 0.5).
        recall: Recall at the threshold.
        f_beta: F-beta there.
        instances: Ground-truth boxes the curve was built from.
    """

    name: str
    threshold: float
    beta: float
    precision: float
    recall: float
    f_beta: float
    instances: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, for a registry version's ``meta.json``."""
        return {
            "threshold": self.threshold,
            "beta": self.beta,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f_beta": round(self.f_beta, 4),
            "instances": self.instances,
        }


def pick_threshold(
    name: str,
    scored: ScoredPredictions,
    *,
    beta: float = 1.0,
    min_score: float = 0.05,
    max_score: float = 0.9,
) -> ThresholdChoice | None:
    """The score maximising F-beta over one class's PR curve, kept within ``[min_score, max_score]``.

    Operating points are taken only at the end of each run of equal scores (a threshold
    keeps every box scoring at or above it). Among equal F-beta, the higher score wins. The
    score is rounded down to three decimals, so the chosen box itself still counts.

    Args:
        name: Class name.
        scored: The class's predictions.
        beta: F-beta weight (2 weighs recall four times precision).
        min_score: Lowest threshold returned.
        max_score: Highest threshold returned.

    Returns:
        The choice, or ``None`` without ground truth or without a true positive.

    Raises:
        ValueError: ``beta`` is not positive or the bounds are not ``0 < min_score <= max_score < 1``.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0 < min_score <= max_score < 1:
        raise ValueError(f"expected 0 < min_score <= max_score < 1, got {min_score} and {max_score}")
    if scored.instances == 0 or not scored.is_tp.any():
        return None
    order = np.argsort(-scored.confidence, kind="stable")
    confidence = scored.confidence[order].astype(np.float64)
    tp = np.cumsum(scored.is_tp[order])
    fp = np.cumsum(~scored.is_tp[order])
    ends = np.r_[np.nonzero(np.diff(confidence))[0], len(confidence) - 1]  # last box of each score run
    precision = tp[ends] / (tp[ends] + fp[ends])
    recall = tp[ends] / scored.instances
    b2 = beta * beta
    f_beta = (1 + b2) * precision * recall / np.maximum(b2 * precision + recall, 1e-12)
    best = int(np.argmax(f_beta))  # the first maximum: among equals, the highest score
    # down to 3 decimals (the 1e-4 absorbs float32 noise: 0.7 is stored as 0.69999998)
    threshold = float(np.clip(math.floor(confidence[ends[best]] * 1000 + 1e-4) / 1000, min_score, max_score))
    kept = int((confidence.astype(np.float32) >= np.float32(threshold)).sum())  # as the rules compare
    p = float(tp[kept - 1] / kept) if kept else 0.0
    r = float(tp[kept - 1] / scored.instances) if kept else 0.0
    f = (1 + b2) * p * r / (b2 * p + r) if p + r > 0 else 0.0
    return ThresholdChoice(
        name=name,
        threshold=threshold,
        beta=beta,
        precision=p,
        recall=r,
        f_beta=f,
        instances=scored.instances,
    )


def calibrate_thresholds(
    reports: Iterable[EvalReport],
    *,
    betas: Mapping[str, float] = RECALL_FIRST_CLASSES,
    min_score: float = 0.05,
    max_score: float = 0.9,
) -> dict[str, ThresholdChoice]:
    """Each class's threshold from its predictions pooled over ``reports`` (e.g. one per source).

    Args:
        reports: Evaluations of one model (``anjian.training.evaluate.evaluate_detector``), each
            class carrying its scored predictions.
        betas: F-beta weight per class name; 1 for classes not listed.
        min_score: Lowest threshold returned.
        max_score: Highest threshold returned.

    Returns:
        Class name to its choice, for classes with ground truth and a true positive.

    Raises:
        ValueError: A report's classes carry no predictions (made by an evaluation that did not keep them).
    """
    by_class: dict[str, list[ScoredPredictions]] = {}
    for report in reports:
        for row in report.classes:
            if row.predictions is None:
                raise ValueError(f"{report.data}: class {row.name!r} carries no scored predictions")
            by_class.setdefault(row.name, []).append(row.predictions)
    choices = {}
    for name, parts in sorted(by_class.items()):
        choice = pick_threshold(
            name,
            ScoredPredictions.pooled(parts),
            beta=betas.get(name, 1.0),
            min_score=min_score,
            max_score=max_score,
        )
        if choice is not None:
            choices[name] = choice
    return choices


def thresholds_of(choices: Mapping[str, ThresholdChoice]) -> dict[str, float]:
    """Class name to threshold: what the model file's metadata carries."""
    return {name: choice.threshold for name, choice in choices.items()}


def thresholds_card_section(thresholds: Mapping[str, Mapping[str, object]], *, where: str) -> str:
    """A model card's section with each class's operating threshold ('' when none).

    Args:
        thresholds: Class name to :meth:`ThresholdChoice.to_dict` (``meta.json``'s ``thresholds``).
        where: What the curves were pooled over, e.g. "the pooled val splits above".
    """
    if not thresholds:
        return ""

    def cell(value: object, spec: str = ".3f") -> str:
        is_number = isinstance(value, int | float) and not math.isnan(value)
        return format(value, spec) if is_number else "–"

    rows = "\n".join(
        f"| {name} | {cell(c.get('threshold'))} | {cell(c.get('beta'), 'g')} | {cell(c.get('precision'))} | "
        f"{cell(c.get('recall'))} | {c.get('instances', '')} |"
        for name, c in thresholds.items()
    )
    return (
        "## Operating thresholds (stored in the model file, the rules' default)\n"
        f"Per class, the score maximising F-beta on {where}: beta 2 (recall first) for fire,\n"
        "smoke and fallen_person, whose rules confirm over several frames; F1 for the rest. A site may\n"
        "override any rule's `min_confidence`.\n\n"
        "| class | threshold | beta | precision | recall | instances |\n|---|---|---|---|---|---|\n"
        + rows
        + "\n\n"
    )


def stamp_thresholds(src: Path, thresholds: Mapping[str, float], dst: Path | None = None) -> Path:
    """Write ``thresholds`` into an ONNX file's ``anjian_thresholds`` metadata (replacing any).

    Args:
        src: An anjian ONNX export (with ``names`` metadata).
        thresholds: Class name to score in ``(0, 1)``; every name must be a class of the model.
        dst: Where to write; ``src`` when ``None``.

    Returns:
        The written file.

    Raises:
        models.errors.ModelMetadataError: A name is not a class of the model, or a score is out of range.
    """
    import onnx

    from anjian.models.metadata import parse_ultralytics_metadata

    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    text = json.dumps({name: float(score) for name, score in sorted(thresholds.items())})
    info = parse_ultralytics_metadata(
        {k: v for k, v in props.items() if k != THRESHOLDS_KEY},
        source=Path(src).name,
        fallback_hw=(1, 1),
        digest="",
    )
    parse_class_thresholds(text, info.class_names, source=Path(src).name)
    props[THRESHOLDS_KEY] = text
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    out = Path(dst) if dst is not None else Path(src)
    onnx.save(model, str(out))
    return out


def load_thresholds_json(path: Path) -> dict[str, float]:
    """Read thresholds from ``anjian eval --json`` output (its ``thresholds``) or a plain ``{class: score}`` file.

    Raises:
        ValueError: The file is unreadable, or holds no class-to-score mapping in ``(0, 1)``.
    """
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read thresholds from {path}: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("thresholds"), dict):
        raw = {
            name: (
                entry.get("threshold") if isinstance(entry, dict) else entry
            )  # a missing one: refused below
            for name, entry in raw["thresholds"].items()
        }
    if not isinstance(raw, dict) or not raw:
        raise ValueError(
            f"{path}: expected a JSON object of class name to score, or an eval report with thresholds"
        )
    out: dict[str, float] = {}
    for name, score in raw.items():
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 < score < 1:
            raise ValueError(f"{path}: threshold of {name!r} must be a number in (0, 1), got {score!r}")
        out[str(name)] = float(score)
    return out
