"""A new registry version of a model with its input size set free, judged again before anyone runs it.

``anjian models free-input NAME VERSION --data ...`` takes a registered version whose files pin
the training square (:mod:`anjian.training.free_input`) and registers the same weights with the
input free, so the pipeline pads each batch only to what its frames need (a 16:9 camera: 320x256
instead of 320x320). Nothing is assumed to carry over: the fp32 model is scored on every source
at the square (the version it comes from) and at the free shapes, and an accepted int8 model is
freed too and put through the int8 gate again at the free shapes, with the tolerances it was
accepted with. It keeps its "accepted" only if it passes; the card gets both tables.

Square images run at the square either way: only non-square sources (``--cross-data``: CCTV frames,
4:3 recordings) show what freeing changes. Padded only to the stride multiple, anjian-n 5 (version
2 freed) lost 7 AP50 points of ``fallen_person`` on 4:3 frames; with one stride of grey kept on each
side the frames do not fill (``letterbox_shape``), it scores what version 2 scores at the square.

The new version is registered, not promoted: ``anjian models promote`` puts it in service.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from anjian.models.int8_ir import (
    INT8_BIN,
    INT8_KEY,
    INT8_XML,
    Int8Files,
    accepted_int8,
    file_sha256,
    int8_file_fields,
)
from anjian.models.registry import (
    ModelVersion,
    next_version,
    read_meta,
    register_version,
    resolve_model_path,
    write_card_section,
    write_meta,
)
from anjian.training.evaluate import EvalReport
from anjian.training.free_input import free_ir_input, free_onnx_input, wide_input_hw
from anjian.training.int8_gate import DEFAULT_MAX_CROSS_DROP, DEFAULT_MAX_SOURCE_DROP, Int8Verdict, judge_int8
from anjian.training.quantize import ValidationSource, evaluate_sources, int8_card_section, scoring_config

__all__ = ["register_free_input_version"]

logger = logging.getLogger(__name__)


def _stamp_version(onnx: Path, name: str, version: str) -> None:
    """Rename the model inside the file (``version`` metadata): events name the model by it."""
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx))
    for prop in model.metadata_props:
        if prop.key == "version":
            prop.value = f"{name}-{version}"
    onnx_lib.save(model, str(onnx))


_ASPECT_SAMPLE = 24
"""Images read per source to tell its shape (headers would do; OpenCV reads whole images, so a sample)."""


def _median_aspect(source: ValidationSource) -> float | None:
    """Median width / height of a sample of the images a source is scored on; ``None`` when none can be read."""
    import cv2

    dataset, split = source.judged
    items = dataset.in_split(split)
    step = max(1, len(items) // _ASPECT_SAMPLE)
    shapes = [cv2.imread(str(item.image), cv2.IMREAD_REDUCED_GRAYSCALE_4) for item in items[::step]]
    ratios = [shape.shape[1] / shape.shape[0] for shape in shapes if shape is not None]
    return float(np.median(ratios)) if ratios else None


def _accuracy_table(
    square: Mapping[str, EvalReport],
    free_fp32: Mapping[str, EvalReport],
    free_int8: Mapping[str, EvalReport],
    aspects: Mapping[str, float | None],
) -> str:
    """Markdown: each source's image shape (median width / height) and mean AP50 at the square and at the free shapes."""
    rows = [
        "| source | images | w/h | fp32 square | fp32 free | change |"
        + (" int8 free |" if free_int8 else ""),
        "|---|---:|---:|---:|---:|---:|" + ("---:|" if free_int8 else ""),
    ]
    for source, report in square.items():
        free = free_fp32[source]
        aspect = aspects.get(source)
        row = (
            f"| {source} | {report.images} | {'?' if aspect is None else f'{aspect:.2f}'} | {report.map50:.3f} | "
            f"{free.map50:.3f} | {(free.map50 - report.map50) * 100:+.1f} |"
        )
        if free_int8:
            row += f" {free_int8[source].map50:.3f} |"
        rows.append(row)
    return "\n".join(rows)


def _card(card: str, *, name: str, source_version: str, version: str, input_hw: tuple[int, int]) -> str:
    """The source version's card as this version's: a new title, a note on what changed, the shapes free."""
    lines = card.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    head = (
        f"# {name} {version}\n\n"
        f"The weights and thresholds of {name}/{source_version} with the input size set free (section "
        '"Input size"): the pipeline pads each batch only to the stride multiple its frames need. Sections '
        "carried over from the version before describe the same weights at the square input.\n"
    )
    height, width = input_hw
    body = "\n".join(lines).replace(
        f"`(batch, 3, {height}, {width})`",
        f"`(batch, 3, height, width)` (multiples of 32 up to {height}x{width})",
    )
    body = re.sub(r"`\(batch, (\d+), (\d+)\)`", r"`(batch, \1, anchors)` (\2 at the square)", body)
    return head + body.rstrip() + "\n"


@dataclass(frozen=True, slots=True)
class _Scores:
    """Each source scored at the square (the version before) and at the free shapes; the int8 gate's verdict."""

    square: dict[str, EvalReport]
    free_fp32: dict[str, EvalReport]
    free_int8: dict[str, EvalReport]
    verdict: Int8Verdict | None
    aspects: dict[str, float | None]

    @property
    def is_all_square(self) -> bool:
        """Every source's images are square (within 5%): they ran at the square both times, the table shows nothing."""
        return all(aspect is not None and abs(aspect - 1.0) <= 0.05 for aspect in self.aspects.values())


def _score(
    onnx: Path,
    freed: Path,
    freed_int8: Int8Files | None,
    accepted: Int8Files | None,
    sources: Sequence[ValidationSource],
    report: Callable[[str], None],
) -> _Scores:
    """Score both shapes in fp32 and judge the freed int8 model with the tolerances it was accepted with."""
    from anjian.models.loader import load_detector, load_openvino_candidate

    config = scoring_config(onnx)
    aspects = {s.name: _median_aspect(s) for s in sources}
    report("scoring the version at the square (fp32)")
    square = evaluate_sources(load_detector(onnx, config), sources)
    report("scoring the freed model at the shapes its images need (fp32)")
    free_fp32 = evaluate_sources(load_openvino_candidate(freed, config), sources)
    if freed_int8 is None or accepted is None:
        return _Scores(square, free_fp32, {}, None, aspects)
    report("scoring the freed int8 model")
    free_int8 = evaluate_sources(load_openvino_candidate(freed, config, int8=freed_int8), sources)
    gate = accepted.record.get("gate") or {}
    verdict = judge_int8(
        free_fp32,
        free_int8,
        max_source_drop=gate.get("max_source_drop", DEFAULT_MAX_SOURCE_DROP),
        max_class_drop=gate.get("max_class_drop"),
        cross_sources=[s.name for s in sources if s.is_cross_source],
        max_cross_drop=gate.get("max_cross_drop", DEFAULT_MAX_CROSS_DROP),
    )
    report(f"int8 gate at the free shapes: {'accepted' if verdict.is_accepted else 'rejected'}")
    return _Scores(square, free_fp32, free_int8, verdict, aspects)


_ALL_SQUARE = (
    "Every scored image is square: at the square and free alike they ran at the square, so these figures say "
    "nothing of 16:9 or 4:3 cameras; score it on a non-square set (--cross-data; `anjian dataset reshape` cuts "
    "a square val split to 16:9 and 4:3) before serving it"
)


def _section(name: str, version: str, input_hw: tuple[int, int], scores: _Scores) -> str:
    """The card's "Input size" section: what was freed, what it saves on a 16:9 frame, the accuracy table."""
    wide_h, wide_w = wide_input_hw(input_hw)
    saved = 1 - wide_h * wide_w / (input_hw[0] * input_hw[1])
    return (
        "## Input size\n"
        f"`model.onnx`{' and the int8 IR' if scores.free_int8 else ''} take any input of a multiple of 32 up to "
        f"{input_hw[0]}x{input_hw[1]} (derived from {name}/{version} by `anjian models free-input`: the input's "
        "height and width left free, the int8 IR's anchor grid computed from the input's shape; at the square "
        "both give the version before's outputs, the int8 IR bit for bit). A 16:9 camera runs at "
        f"{wide_w}x{wide_h}, {saved:.0%} fewer pixels. Mean AP50 per source, each image at the shape anjian "
        "feeds it (square images run at the square either way: only non-square sources show what freeing "
        "changes):\n\n"
        + _accuracy_table(scores.square, scores.free_fp32, scores.free_int8, scores.aspects)
        + "\n"
        + (f"\n**{_ALL_SQUARE}**\n" if scores.is_all_square else "")
    )


def _meta(meta: Mapping[str, Any], freed: Path, version: str, scores: _Scores) -> dict[str, Any]:
    """The version before's metadata for the new version: its own file, the free-input record, no int8 yet."""
    new_meta = {k: v for k, v in meta.items() if k not in ("name", "version", "created_at", INT8_KEY)}
    new_meta.update(
        onnx_sha256=file_sha256(freed),
        onnx_bytes=freed.stat().st_size,
        free_input={
            "from": version,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "map50": {
                source: {
                    "fp32_square": round(square.map50, 4),
                    "fp32_free": round(scores.free_fp32[source].map50, 4),
                    **({"int8_free": round(scores.free_int8[source].map50, 4)} if scores.free_int8 else {}),
                }
                for source, square in scores.square.items()
            },
        },
    )
    return new_meta


def register_free_input_version(
    name: str,
    version: str,
    sources: Sequence[ValidationSource],
    *,
    root: Path | None = None,
    report: Callable[[str], None] = logger.info,
) -> ModelVersion:
    """Register ``name/version`` again with its input size free, scored and (for int8) judged again.

    Args:
        name: Model name.
        version: The version whose weights are freed.
        sources: The labelled sets its int8 gate judged (val splits; cross sources whole).
        root: Site registry (see :mod:`anjian.models.registry`).
        report: Called with one line per step.

    Returns:
        The registered (not promoted) version.

    Raises:
        ModelLoadError: No such version, or its int8 files differ from what was accepted.
        FreeInputError: Its graph cannot run at another size.
        ValueError: No sources.
        OSError: The registry cannot be written.
    """
    from anjian.models.loader import load_openvino_candidate

    if not sources:
        raise ValueError(
            "give the labelled sets to score the freed model on (--data data.yaml, one per source)"
        )
    onnx = resolve_model_path(f"builtin:{name}/{version}", root=root)
    meta = read_meta(onnx.parent, strict=True)
    accepted = accepted_int8(onnx)
    input_hw = load_openvino_candidate(onnx, scoring_config(onnx)).info.input_hw
    new_version = next_version(name, root=root)
    with tempfile.TemporaryDirectory(prefix="anjian-free-input-") as work:
        freed = free_onnx_input(onnx, Path(work) / "model.onnx", input_hw=input_hw)
        _stamp_version(freed, name, new_version)
        freed_int8 = None
        if accepted is not None:
            xml = free_ir_input(accepted.xml, Path(work) / INT8_XML, input_hw=input_hw)
            freed_int8 = Int8Files(xml, xml.with_suffix(".bin"), {})
        scores = _score(onnx, freed, freed_int8, accepted, sources, report)
        if scores.is_all_square:
            report(f"warning: {_ALL_SQUARE}")
        card_path = onnx.parent / "card.md"
        card = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
        registered = register_version(
            name,
            freed,
            _meta(meta, freed, version, scores),
            _card(card, name=name, source_version=version, version=new_version, input_hw=input_hw),
            version=new_version,
            root=root,
        )
        write_card_section(
            registered.directory / "card.md", "input-size", _section(name, version, input_hw, scores)
        )
        if freed_int8 is not None and accepted is not None and scores.verdict is not None:
            _record_int8(registered.directory, freed_int8, accepted.record, scores.verdict)
    report(f"registered {name}/{registered.version} (not promoted)")
    return registered


def _record_int8(folder: Path, freed: Int8Files, accepted: Mapping[str, Any], verdict: Int8Verdict) -> None:
    """Copy the freed IR into the new version (if it passed) and record the gate's verdict and the card section."""
    if verdict.is_accepted:
        for source, name in (
            (freed.bin, INT8_BIN),
            (freed.xml, INT8_XML),
        ):  # the graph last: it names the weights
            shutil.copyfile(source, folder / f".{name}.tmp")
            (folder / f".{name}.tmp").replace(folder / name)
    record = dict(accepted)
    record.update(
        status="accepted" if verdict.is_accepted else "rejected",
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        gate=verdict.to_dict(),
        onnx_sha256=file_sha256(folder / "model.onnx"),
    )
    for key in ("xml", "bin", "xml_sha256", "bin_sha256", "bytes"):
        record.pop(key, None)
    if verdict.is_accepted:
        record.update(int8_file_fields(folder))
    meta = read_meta(folder)
    meta[INT8_KEY] = record
    write_meta(folder, meta)
    write_card_section(folder / "card.md", "int8", int8_card_section(record, verdict))
