"""Quantise a registered model to int8 (NNCF, OpenVINO IR) and keep it only if it keeps its accuracy.

A step of registering a model (``anjian models quantize``, ``anjian export --register
--quantize-data``, the anjian-n recipe's ``finish``):

1. **Calibrate**: NNCF post-training quantisation of the OpenVINO model read from
   ``model.onnx``, on images drawn evenly from the train splits of the given sets and
   letterboxed exactly as the pipeline does (:func:`calibration_images`).
2. **Mixed precision**: the first try keeps only the detect head's decoding in float (DFL,
   anchor and box maths, the concat of pixel boxes with 0-1 scores: one int8 scale over both
   would crush the scores); the next keeps the whole head; the next, given the model's training
   set, fine-tunes the model with its quantisers in place (quantisation-aware training,
   :mod:`anjian.training.qat`); the last lets NNCF's accuracy control return the most harmful
   int8 layers to fp32 until the worst source is within the tolerance (:data:`FLOAT_LADDER`).
   The first rung that passes the gate wins. Full bias correction throughout (1-3 AP50 points
   better than the fast one on anjian-n).
3. **Gate**: the int8 IR runs through anjian's own detector on every val split, and on every
   image of the sources the model never trained on (``cross`` sources: they calibrate nothing),
   is scored by :func:`anjian.training.evaluate.evaluate_detector` like the fp32 file, and is
   accepted only when :func:`anjian.training.int8_gate.judge_int8` passes (AP50 within 1 point
   on each val split, 1.5 on each cross source).
4. **Register**: an accepted IR goes beside ``model.onnx`` (``model.int8.xml``/``.bin``); the
   version's ``meta.json`` gets the ``int8`` record (verdict, table, digests, how it was made) and
   its card an int8 section. A rejected model leaves only its best table.

Needs the ``train`` extra (nncf); the pipeline only reads the result (:mod:`anjian.models.int8_ir`).
"""

from __future__ import annotations

import logging
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from anjian.datasets.classmap import ClassMap
from anjian.datasets.labels import WHOLE_SPLIT, DetectionSet, ProgressFn, no_progress
from anjian.models.config import DetectorConfig
from anjian.models.int8_ir import INT8_BIN, INT8_KEY, INT8_XML, Int8Files, file_sha256, int8_file_fields
from anjian.models.loader import load_openvino_candidate
from anjian.models.preprocess import read_letterboxed
from anjian.models.registry import read_meta, write_card_section, write_meta
from anjian.training.evaluate import EvalReport, evaluate_detector
from anjian.training.int8_gate import DEFAULT_MAX_CROSS_DROP, DEFAULT_MAX_SOURCE_DROP, Int8Verdict, judge_int8
from anjian.training.qat import QatRecipe, quantize_aware

__all__ = [
    "FLOAT_LADDER",
    "FloatScope",
    "Int8Attempt",
    "Int8Outcome",
    "ValidationSource",
    "calibration_images",
    "evaluate_sources",
    "int8_card_section",
    "load_sources",
    "quantize_and_record",
    "quantize_ir",
    "quantize_registered",
    "record_int8",
    "scoring_config",
]

logger = logging.getLogger(__name__)

_HEAD = "{head}"


@dataclass(frozen=True, slots=True)
class FloatScope:
    """Layers kept in fp32 in one try, as NNCF ignored-scope patterns over OpenVINO node names.

    ``{head}`` in a pattern stands for the detect head's module index (``22`` in YOLOv8n,
    ``23`` in YOLO11n), found in the graph by its ``dfl`` node.

    Attributes:
        name: Short name, recorded in ``meta.json``.
        description: What stays fp32, for the card.
        patterns: Regular expressions of node names kept in float.
        is_accuracy_controlled: Let NNCF's accuracy control (``quantize_with_accuracy_control``)
            return more layers to fp32, most harmful first (ranked by how far they move the
            outputs on the val images), until the worst source's AP50 is within the tolerance.
        is_quantisation_aware: Fine-tune the model with its quantisers in place on its training
            set (:mod:`anjian.training.qat`; ``patterns`` do not apply: the head's decoding stays
            float); tried only when a training set is given.
    """

    name: str
    description: str
    patterns: tuple[str, ...]
    is_accuracy_controlled: bool = False
    is_quantisation_aware: bool = False

    def resolved(self, head: int) -> list[str]:
        """The patterns with the head's module index filled in."""
        return [p.replace(_HEAD, str(head)) for p in self.patterns]


FLOAT_LADDER: tuple[FloatScope, ...] = (
    FloatScope(
        "decode",
        "the detect head's decoding (DFL, anchors, box maths, output concat)",
        (r"/model\.{head}/(?!cv[23]\.).*",),
    ),
    FloatScope(
        "head",
        "the whole detect head (its box and class convolutions too)",
        (r"/model\.{head}/.*",),
    ),
    FloatScope(
        "qat",
        "the detect head's decoding and the first two convolutions; every other layer int8, fine-tuned with its "
        "quantisers to match the float model on its training images",
        (),
        is_quantisation_aware=True,
    ),
    FloatScope(
        "accuracy-control",
        "the whole detect head and the layers NNCF's accuracy control found most harmful in int8",
        (r"/model\.{head}/.*",),
        is_accuracy_controlled=True,
    ),
)
"""Mixed-precision tries, fewest fp32 layers first."""


@dataclass(frozen=True, slots=True)
class ValidationSource:
    """One labelled set: its train split calibrates, its val split judges; a cross source is judged whole.

    Attributes:
        name: Source name, the row of the accuracy table.
        dataset: The set (raw, or one source's part of a merged set).
        class_map: Maps its class names onto the model's (``None``: by name).
        is_cross_source: A source the model never trained on: every image judges (none
            calibrates), with the cross-source tolerance.
    """

    name: str
    dataset: DetectionSet
    class_map: ClassMap | None = None
    is_cross_source: bool = False

    @property
    def judged(self) -> tuple[DetectionSet, str]:
        """The set and split the gate scores: the val split, or the whole of a cross source."""
        if self.is_cross_source:
            return self.dataset.as_one_split(), WHOLE_SPLIT
        return self.dataset, "val"


@dataclass(frozen=True, slots=True)
class Int8Attempt:
    """One mixed-precision try and how it scored.

    Attributes:
        scope: What stayed fp32.
        verdict: The gate's verdict with its table.
        seconds: Quantising and scoring time.
    """

    scope: FloatScope
    verdict: Int8Verdict
    seconds: float


@dataclass(slots=True)
class Int8Outcome:
    """The result of quantising one model.

    Attributes:
        attempts: Every try, in ladder order (it stops at the first accepted one).
        calibration: How many calibration images, from which sets, with which seed.
        accepted_dir: Folder holding the accepted ``model.int8.xml``/``.bin`` (temporary), or ``None``.
        qat: The quantisation-aware fine-tune's recipe when that try ran (``None`` otherwise).
    """

    attempts: list[Int8Attempt] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
    accepted_dir: Path | None = None
    qat: dict[str, Any] | None = None

    @property
    def accepted(self) -> Int8Attempt | None:
        """The try that passed the gate, ``None`` when none did."""
        return next((a for a in self.attempts if a.verdict.is_accepted), None)

    @property
    def best(self) -> Int8Attempt:
        """The accepted try, else the one whose worst source fell least (as a share of its tolerance).

        Raises:
            ValueError: Nothing was tried.
        """
        if not self.attempts:
            raise ValueError("no int8 attempt was made")
        return self.accepted or min(self.attempts, key=lambda a: a.verdict.worst_share_of_tolerance)


def calibration_images(sources: Sequence[ValidationSource], count: int, *, seed: int = 0) -> list[Path]:
    """``count`` training images drawn evenly from the sources' train splits (fewer if they have fewer).

    Each source gives ``count // len(sources)`` images (the remainder to the first ones), so a
    large source cannot crowd out a small one's scenes; the draw is reproducible from ``seed``.
    Cross sources give none: they stay unseen, so that they judge fairly.

    Raises:
        ValueError: ``count`` < 1, or no source has train images.
    """
    if count < 1:
        raise ValueError(f"calibration needs at least one image, got {count}")
    pools = []
    for source in (s for s in sources if not s.is_cross_source):
        pool = sorted(item.image for item in source.dataset.in_split("train"))
        random.Random(f"{seed}:{source.name}").shuffle(pool)
        pools.append(pool)
    if not any(pools):
        raise ValueError(
            f"no train images to calibrate on in {[s.name for s in sources if not s.is_cross_source]}"
        )
    chosen: list[Path] = []
    share, extra = divmod(count, len(pools))
    for k, pool in enumerate(pools):
        chosen += pool[: share + (1 if k < extra else 0)]
    return chosen


def _head_index(model: Any) -> int:
    """The detect head's module index: the one holding the ``dfl`` node.

    Raises:
        ValueError: The graph has no ultralytics detect head.
    """
    pattern = re.compile(r"^/model\.(\d+)/dfl/")
    for op in model.get_ordered_ops():
        found = pattern.match(op.get_friendly_name())
        if found:
            return int(found.group(1))
    raise ValueError(
        "no ultralytics detect head (a /model.N/dfl/ node) in the graph: cannot place fp32 layers"
    )


def quantize_ir(
    onnx: Path,
    images: Sequence[Path],
    scope: FloatScope,
    out_xml: Path,
    *,
    input_hw: tuple[int, int],
    validate: Callable[[Any], float] | None = None,
    validation_images: Sequence[Path] = (),
    max_drop: float = DEFAULT_MAX_SOURCE_DROP,
) -> Path:
    """NNCF post-training int8 of ``onnx`` (read by OpenVINO), ``scope`` kept fp32, saved as an IR.

    Args:
        onnx: The fp32 model.
        images: Calibration images (BGR files), letterboxed as the pipeline does.
        scope: Layers kept in fp32.
        out_xml: Where to write the IR (``.bin`` beside it).
        input_hw: The model's input size.
        validate: Accuracy-controlled scopes only: scores a compiled candidate, 1 for the fp32
            model, less by the worst source's AP50 loss.
        validation_images: Accuracy-controlled scopes only: the val images NNCF ranks layers on.
        max_drop: Accuracy-controlled scopes only: the loss NNCF restores layers until.

    Returns:
        ``out_xml``.

    Raises:
        ValueError: No image can be read, the graph has no detect head, or an accuracy-controlled
            scope lacks ``validate`` or its images.
    """
    import nncf
    import openvino as ov

    readable = [p for p in images if cv2.imread(str(p)) is not None]
    if not readable:
        raise ValueError("none of the calibration images can be read")

    def to_input(path: Path) -> Any:
        return read_letterboxed(path, input_hw)

    model = ov.Core().read_model(str(onnx))
    ignored = nncf.IgnoredScope(patterns=scope.resolved(_head_index(model)), validate=False)
    if scope.is_accuracy_controlled:
        quantized = _quantize_with_accuracy_control(
            model, nncf.Dataset(readable, to_input), ignored, validate, validation_images, to_input, max_drop
        )
    else:
        quantized = nncf.quantize(
            model,
            nncf.Dataset(readable, to_input),
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(readable),
            fast_bias_correction=False,  # full bias correction: measured 1-3 AP50 points better on anjian-n
            ignored_scope=ignored,
        )
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(
        quantized, str(out_xml)
    )  # compresses float weights to fp16 on disk: the int8 file stays small
    return out_xml


def _quantize_with_accuracy_control(
    model: Any,
    calibration: Any,
    ignored: Any,
    validate: Callable[[Any], float] | None,
    images: Sequence[Path],
    to_input: Callable[[Path], Any],
    max_drop: float,
) -> Any:
    """``nncf.quantize_with_accuracy_control`` with anjian's own per-source AP50 as the metric.

    NNCF ranks the int8 layers by how far each moves the model's outputs on the val images (its
    "logits" mode: the metric is defined on whole splits only, so a one-image probe is refused)
    and returns them to fp32, most harmful first, until ``validate`` is within ``max_drop``.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    if validate is None or not images:
        raise ValueError("accuracy control needs the validation function and the val images")
    total = len(images)

    def validation_fn(compiled: Any, items: Any) -> tuple[float, None]:
        if len(list(items)) < total:
            raise ValueError("AP50 per source is measured on whole val splits")
        return validate(compiled), None

    return nncf.quantize_with_accuracy_control(
        model,
        calibration,
        nncf.Dataset(list(images), to_input),
        validation_fn,
        max_drop=max_drop,
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=calibration.get_length() or 300,
        fast_bias_correction=False,
        ignored_scope=ignored,
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            ranking_subset_size=min(100, total), max_num_iterations=12, num_ranking_workers=1
        ),
    )


def evaluate_sources(
    detector: Any, sources: Sequence[ValidationSource], *, progress: ProgressFn = no_progress
) -> dict[str, EvalReport]:
    """Each source scored with anjian's evaluation (only the classes it labels): its val split, or
    the whole of a cross source."""
    out = {}
    for s in sources:
        dataset, split = s.judged
        out[s.name] = evaluate_detector(
            detector, dataset, split=split, class_map=s.class_map, progress=progress
        )
    return out


def scoring_config(onnx: Path) -> DetectorConfig:
    """Low score floor (AP covers the whole curve), CPU, fp32 for the reference."""
    return DetectorConfig(path=str(onnx), confidence_threshold=0.001, device="cpu", cpu_precision="fp32")


def quantize_registered(
    onnx: Path,
    sources: Sequence[ValidationSource],
    *,
    calibration_count: int = 300,
    seed: int = 0,
    ladder: Sequence[FloatScope] = FLOAT_LADDER,
    max_source_drop: float = DEFAULT_MAX_SOURCE_DROP,
    max_class_drop: float | None = None,
    max_cross_drop: float = DEFAULT_MAX_CROSS_DROP,
    work_dir: Path | None = None,
    qat: QatRecipe | None = None,
    progress: ProgressFn = no_progress,
    report: Callable[[str], None] = logger.info,
) -> Int8Outcome:
    """Quantise ``onnx`` rung by rung of ``ladder`` until an int8 model passes the accuracy gate.

    Args:
        onnx: The registered fp32 model.
        sources: Sets whose train splits calibrate and whose val splits judge; cross sources
            (never trained on) are judged whole and calibrate nothing.
        calibration_count: Calibration images in all.
        seed: Seeds the draw of calibration images.
        ladder: Mixed-precision tries, fewest fp32 layers first.
        max_source_drop: Tolerance on each source's mean AP50 (0.01: 1 point).
        max_class_drop: Tolerance on each class's AP50 (``None``: not held).
        max_cross_drop: Tolerance on each cross source's mean AP50.
        work_dir: Where the tries' IRs are written (a temporary folder, left to the caller, when ``None``).
        qat: The model's training set and fine-tune for the quantisation-aware try (``None``: that
            try is skipped).
        progress: Wraps the evaluation loops.
        report: Called with one line per step (the CLI prints them).

    Returns:
        The tries and, when one passed, the folder of its IR.

    Raises:
        ValueError: No sources, an empty ladder, no calibration images, or no val split.
    """
    import time

    if not sources:
        raise ValueError("quantising needs at least one labelled set (calibration and validation)")
    if not ladder or (all(scope.is_quantisation_aware for scope in ladder) and qat is None):
        raise ValueError(
            "the mixed-precision ladder is empty (or holds only the QAT try, without --qat-data)"
        )
    images = calibration_images(sources, calibration_count, seed=seed)
    config = scoring_config(onnx)
    reference = load_openvino_candidate(onnx, config)
    report(
        "fp32 reference on "
        + ", ".join(
            f"{s.name} ({'whole, never trained on' if s.is_cross_source else 'val'})" for s in sources
        )
    )
    fp32 = evaluate_sources(reference, sources, progress=progress)
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="anjian-int8-"))
    outcome = Int8Outcome(
        calibration={
            "images": len(images),
            "seed": seed,
            "split": "train",
            "sources": [s.name for s in sources if not s.is_cross_source],
            "cross_sources": [s.name for s in sources if s.is_cross_source],
        }
    )
    cross = {s.name for s in sources if s.is_cross_source}
    judged_images = [item.image for s in sources for item in s.judged[0].in_split(s.judged[1])]

    def worst_source_change(compiled: Any) -> float:
        """1 for the fp32 model, 1 + the worst source's AP50 change for a candidate NNCF compiled.

        A cross source's change is scaled to the val tolerance (its own is wider), so that one
        ``max_drop`` holds both. (Offset from 0: NNCF divides by the reference metric, even for
        an absolute drop.)
        """
        reference.use_compiled(compiled)
        scores = evaluate_sources(reference, sources, progress=progress)
        return 1.0 + min(
            (scores[name].map50 - ref.map50) * (max_source_drop / max_cross_drop if name in cross else 1.0)
            for name, ref in fp32.items()
        )

    for scope in ladder:
        if scope.is_quantisation_aware and qat is None:
            report(f"int8 try '{scope.name}': skipped (needs the model's training set: --qat-data)")
            continue
        started = time.perf_counter()
        report(
            f"int8 try '{scope.name}': fp32 kept for {scope.description}; calibrating on {len(images)} images"
        )
        target, input_hw = work / scope.name / INT8_XML, reference.info.input_hw
        if scope.is_quantisation_aware and qat is not None:
            outcome.qat = qat.describe()
            xml = quantize_aware(
                onnx, images, qat, target, input_hw=input_hw, progress=progress, report=report
            )
        else:
            xml = quantize_ir(
                onnx, images, scope, target, input_hw=input_hw, validate=worst_source_change,
                validation_images=judged_images, max_drop=max_source_drop,
            )  # fmt: skip
        files = Int8Files(xml, xml.with_suffix(".bin"), {})
        candidate = load_openvino_candidate(onnx, config, int8=files)
        int8 = evaluate_sources(candidate, sources, progress=progress)
        verdict = judge_int8(
            fp32,
            int8,
            max_source_drop=max_source_drop,
            max_class_drop=max_class_drop,
            cross_sources=cross,
            max_cross_drop=max_cross_drop,
        )
        outcome.attempts.append(Int8Attempt(scope, verdict, time.perf_counter() - started))
        lines = verdict.failures or ["every source within tolerance"]
        report(
            f"int8 try '{scope.name}': {'accepted' if verdict.is_accepted else 'rejected'}; "
            + "; ".join(lines)
        )
        if verdict.is_accepted:
            outcome.accepted_dir = xml.parent
            break
    return outcome


def _int8_record(onnx: Path, outcome: Int8Outcome) -> dict[str, Any]:
    """The ``int8`` record for ``meta.json``."""
    import nncf
    import openvino as ov

    best = outcome.best
    record: dict[str, Any] = {
        "status": "accepted" if outcome.accepted else "rejected",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tool": f"nncf {nncf.__version__}, openvino {ov.get_version()}",
        "method": _method(best.scope),
        "calibration": outcome.calibration,
        "float_scope": {"name": best.scope.name, "description": best.scope.description},
        "gate": best.verdict.to_dict(),
        "attempts": [
            {
                "float_scope": a.scope.name,
                "is_accepted": a.verdict.is_accepted,
                "worst_source_drop": round(a.verdict.worst_drop, 4),
                "seconds": round(a.seconds, 1),
            }
            for a in outcome.attempts
        ],
        "onnx_sha256": file_sha256(onnx),
    }
    if outcome.qat is not None:
        record["qat"] = outcome.qat
    if outcome.accepted and outcome.accepted_dir is not None:
        record.update(int8_file_fields(onnx.parent))
    return record


def _method(scope: FloatScope) -> str:
    """How the recorded try made its int8 model."""
    if scope.is_quantisation_aware:
        return (
            "NNCF quantisation-aware training (torch, preset mixed: quantisers calibrated, then the model "
            "fine-tuned with them on its training set), exported as an OpenVINO IR; decoding float"
        )
    return "NNCF post-training quantisation (preset mixed), OpenVINO IR; fp32 layers per float_scope"


def _worst(drop: float) -> str:
    """A rejected try's worst source fall, in points."""
    return f"worst source {-drop * 100:+.1f} points"


def int8_card_section(record: Mapping[str, Any], verdict: Int8Verdict) -> str:
    """The model card's int8 section (also written for a version derived with its input freed)."""
    calibration = record["calibration"]
    tolerance = f"{verdict.max_source_drop * 100:.1f} point"
    if verdict.max_class_drop is not None:
        tolerance += f" per source, {verdict.max_class_drop * 100:.1f} per class"
    cross = calibration.get("cross_sources") or []
    judged = "judged on each source's val split"
    if cross:
        judged += (
            f" and on every image of {', '.join(f'`{s}`' for s in cross)} (never trained on, tolerance "
            f"{verdict.max_cross_drop * 100:.1f} points)"
        )
    tries = ", ".join(
        f"{a['float_scope']} ({'accepted' if a['is_accepted'] else _worst(a['worst_source_drop'])})"
        for a in record["attempts"]
    )
    if record["status"] == "accepted":
        head = (
            f"`{INT8_XML}` + `{INT8_BIN}` ({record['bytes'] / 1e6:.1f} MB, OpenVINO IR): accepted, so the\n"
            "pipeline runs it by default on CPUs without native bf16 (where bf16 is native it is the faster;\n"
            "`model.cpu_precision` forces `int8`, `bf16` or `fp32`).\n"
            f"fp32 kept for {record['float_scope']['description']}."
        )
    else:
        head = (
            "No int8 model: no try kept AP50 within the tolerance on every source, so CPUs run\n"
            f"`model.onnx`. Best try below: fp32 kept for {record['float_scope']['description']}.\n"
            + "".join(f"- {line}\n" for line in verdict.failures)
        )
    qat = record.get("qat")
    fine_tune = ""
    if qat is not None and record["float_scope"]["name"] == "qat":
        balance = (
            ", each source below the mean source's image count repeated to about the mean"
            if qat.get("is_source_balanced")
            else ""
        )
        fine_tune = (
            f"Quantisation-aware: after calibration the model was fine-tuned with its quantisers in place for "
            f"{qat['epochs']:g} epoch(s) of `{Path(qat['data']).name}`'s train split (its training set"
            f"{balance}; Adam, lr {qat['lr']:g} on a cosine, batch {qat['batch']}, batch-norm frozen, seed "
            f"{qat['seed']}).\n"
        )
    return (
        "## int8 (CPU)\n"
        f"{head.rstrip()}\n\n"
        f"{fine_tune}"
        f"NNCF quantisation ({record['tool']}), calibrated on {calibration['images']} train images\n"
        f"drawn evenly from {', '.join(f'`{s}`' for s in calibration['sources'])} (seed {calibration['seed']}); "
        f"{judged}\nthrough anjian's detector, tolerance {tolerance} of AP50. "
        f"Tries: {tries}.\n\n" + verdict.markdown() + "\n"
    )


def record_int8(onnx: Path, outcome: Int8Outcome) -> dict[str, Any]:
    """Put the outcome into the version folder of ``onnx``: the accepted IR, ``meta.json`` and the card.

    An accepted IR replaces any earlier one; a rejected outcome removes an earlier IR (the
    version no longer vouches for it) and keeps the best table.

    Returns:
        The ``int8`` record written to ``meta.json``.

    Raises:
        ValueError: The outcome has no attempt.
    """
    folder = Path(onnx).parent
    for name in (INT8_XML, INT8_BIN):
        (folder / name).unlink(missing_ok=True)
    if outcome.accepted and outcome.accepted_dir is not None:
        for name in (INT8_BIN, INT8_XML):
            shutil.copyfile(outcome.accepted_dir / name, folder / f".{name}.tmp")
            (folder / f".{name}.tmp").replace(folder / name)
    record = _int8_record(Path(onnx), outcome)
    meta = read_meta(folder)
    earlier = meta.get(INT8_KEY) or {}
    if earlier.get("onnx_sha256") == record["onnx_sha256"]:  # the same model: earlier tries stay on record
        tried_now = {a["float_scope"] for a in record["attempts"]}
        kept = [a for a in earlier.get("attempts", []) if a["float_scope"] not in tried_now]
        record["attempts"] = kept + record["attempts"]
    meta[INT8_KEY] = record
    write_meta(folder, meta)
    write_card_section(folder / "card.md", "int8", int8_card_section(record, outcome.best.verdict))
    return record


def load_sources(
    data: Sequence[Path], class_map: Path | None = None, *, cross_data: Sequence[Path] = ()
) -> list[ValidationSource]:
    """The labelled sets given on the command line, one source each (named after the set).

    Args:
        data: Sets the model trained on (their train splits calibrate, their val splits judge).
        class_map: Maps their class names onto the model's.
        cross_data: Sets the model never trained on, judged whole.

    Raises:
        DatasetError: A set or the class map cannot be read.
        ValueError: No set given, or two sets share a name.
    """
    from anjian.datasets.classmap import load_class_map
    from anjian.datasets.yolo import load_yolo_set

    if not data:
        raise ValueError(
            "give the labelled sets to calibrate and judge on (--data data.yaml, one per source)"
        )
    mapping = load_class_map(class_map) if class_map else None
    sources = []
    for path, is_cross in [*((p, False) for p in data), *((p, True) for p in cross_data)]:
        path = Path(path) / "data.yaml" if Path(path).is_dir() else Path(path)
        dataset = load_yolo_set(path)
        sources.append(ValidationSource(dataset.name, dataset, mapping, is_cross))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"two sets share a name, so the table could not tell them apart: {names}")
    return sources


def quantize_and_record(
    name: str,
    version: str,
    data: Sequence[Path],
    *,
    class_map: Path | None = None,
    root: Path | None = None,
    cross_data: Sequence[Path] = (),
    **options: Any,
) -> dict[str, Any]:
    """Quantise a registry version and record the outcome in its folder (:func:`record_int8`).

    Args:
        name: Model name.
        version: Version number.
        data: The sets' ``data.yaml`` files (:func:`load_sources`).
        class_map: Maps their class names onto the model's.
        root: Site registry (see :mod:`anjian.models.registry`).
        cross_data: Sets the model never trained on, judged whole (:func:`load_sources`).
        **options: Passed to :func:`quantize_registered` (``calibration_count``, ``seed``, tolerances,
            ``progress``, ``report``).

    Returns:
        The ``int8`` record written to the version's ``meta.json``.

    Raises:
        ModelLoadError: No such version.
        PermissionError: The version ships with anjian and ``root`` is not the shipped registry.
        DatasetError, ValueError: As :func:`load_sources` and :func:`quantize_registered`.
    """
    from anjian.models.registry import SHIPPED_DIR, resolve_model_path, site_registry

    onnx = resolve_model_path(f"builtin:{name}/{version}", root=root)
    if onnx.resolve().is_relative_to(SHIPPED_DIR) and site_registry(root).resolve() != SHIPPED_DIR:
        raise PermissionError(
            f"{name}/{version} ships with anjian ({onnx.parent}): its int8 model comes with the release "
            f"(a source checkout quantises it with --registry {SHIPPED_DIR})"
        )
    sources = load_sources(data, class_map, cross_data=cross_data)
    with tempfile.TemporaryDirectory(prefix="anjian-int8-") as work:
        outcome = quantize_registered(onnx, sources, work_dir=Path(work), **options)
        return record_int8(onnx, outcome)
