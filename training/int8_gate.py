"""The accuracy gate an int8 model passes before it may replace fp32: AP50 per validation source.

Quantising changes every weight and activation a little; on a small model the sum can cost a
class several points. :func:`judge_int8` pairs the fp32 and int8 evaluations of the same
splits and accepts the int8 model only when, on **every** source, the mean AP50 over the
classes that source labels fell by at most ``max_source_drop`` (default 1 point) on a source's
validation split, or ``max_cross_drop`` (default 1.5 points) on a source the model never trained
on, scored whole; and, when ``max_class_drop`` is set, no single class fell by more. One source
holding up cannot pay for another: a fire camera gains nothing from a better forklift score.

The cross-source rows are what a site's own cameras resemble most (scenes the model never saw),
and they are large: a val split of 18 fires moves by several points when two boxes swap places,
a whole unseen source of thousands does not.

The verdict keeps the whole table (both precisions, each class), for ``meta.json`` and the
model card, whether the model passed or not.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from anjian.training.evaluate import EvalReport

__all__ = [
    "DEFAULT_MAX_CROSS_DROP",
    "DEFAULT_MAX_SOURCE_DROP",
    "ClassAccuracy",
    "Int8Verdict",
    "SourceAccuracy",
    "judge_int8",
]

DEFAULT_MAX_SOURCE_DROP = 0.01
"""Largest fall of a validation split's mean AP50 (fp32 minus int8) an accepted int8 model may show."""

DEFAULT_MAX_CROSS_DROP = 0.015
"""Largest fall of the mean AP50 on a whole source the model never trained on."""


def _mean(values: list[float]) -> float:
    """Mean of the defined values, NaN when none."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _num(value: float) -> float | None:
    """JSON form: NaN as ``None``, four decimals."""
    return None if math.isnan(value) else round(value, 4)


@dataclass(frozen=True, slots=True)
class ClassAccuracy:
    """One class on one source at both precisions.

    Attributes:
        name: Model class name.
        instances: Ground-truth boxes of the class in the split.
        fp32: AP50 of the fp32 model.
        int8: AP50 of the int8 model.
    """

    name: str
    instances: int
    fp32: float
    int8: float

    @property
    def drop(self) -> float:
        """fp32 minus int8 AP50 (positive: int8 lost accuracy)."""
        return self.fp32 - self.int8


@dataclass(frozen=True, slots=True)
class SourceAccuracy:
    """One validation source at both precisions.

    Attributes:
        source: The split's name (``fall_hospital/val``; ``fire_continuous/all`` for a source scored whole).
        images: Images scored.
        classes: The classes with ground truth in it.
        is_cross_source: A source the model never trained on, scored whole (its own tolerance).
    """

    source: str
    images: int
    classes: tuple[ClassAccuracy, ...]
    is_cross_source: bool = False

    @property
    def fp32(self) -> float:
        """Mean AP50 of the fp32 model over the source's classes."""
        return _mean([c.fp32 for c in self.classes])

    @property
    def int8(self) -> float:
        """Mean AP50 of the int8 model over the source's classes."""
        return _mean([c.int8 for c in self.classes])

    @property
    def drop(self) -> float:
        """fp32 minus int8 mean AP50 (positive: int8 lost accuracy)."""
        return self.fp32 - self.int8


@dataclass(frozen=True, slots=True)
class Int8Verdict:
    """Whether an int8 model keeps its accuracy, and the table that says so.

    Attributes:
        sources: One row per source.
        max_source_drop: Tolerance on each validation split's mean AP50 (AP units: 0.01 is 1 point).
        max_class_drop: Tolerance on each class's AP50, ``None`` when only sources are held.
        max_cross_drop: Tolerance on the mean AP50 of each source the model never trained on.
    """

    sources: tuple[SourceAccuracy, ...]
    max_source_drop: float = DEFAULT_MAX_SOURCE_DROP
    max_class_drop: float | None = None
    max_cross_drop: float = DEFAULT_MAX_CROSS_DROP

    def tolerance(self, source: SourceAccuracy) -> float:
        """The largest fall of ``source``'s mean AP50 this gate accepts."""
        return self.max_cross_drop if source.is_cross_source else self.max_source_drop

    @property
    def failures(self) -> list[str]:
        """One line per source or class beyond its tolerance, empty when accepted."""
        out = []
        for s in self.sources:
            tolerance = self.tolerance(s)
            if not s.drop <= tolerance + 1e-9:  # NaN fails too
                out.append(
                    f"{s.source}: AP50 {s.fp32:.3f} -> {s.int8:.3f} "
                    f"({-s.drop * 100:+.1f} points, tolerance -{tolerance * 100:.1f})"
                )
            if self.max_class_drop is None:
                continue
            for c in s.classes:
                if not c.drop <= self.max_class_drop + 1e-9:
                    out.append(
                        f"{s.source} {c.name}: AP50 {c.fp32:.3f} -> {c.int8:.3f} "
                        f"({-c.drop * 100:+.1f} points, tolerance -{self.max_class_drop * 100:.1f})"
                    )
        return out

    @property
    def is_accepted(self) -> bool:
        """True when every source (and class, if held) is within its tolerance."""
        return not self.failures

    @property
    def worst_drop(self) -> float:
        """The largest fall of a source's mean AP50 (negative: int8 scored higher everywhere)."""
        return max(s.drop for s in self.sources)

    @property
    def worst_share_of_tolerance(self) -> float:
        """The largest fall as a share of its source's tolerance (above 1: rejected); ranks tries."""
        return max(s.drop / max(self.tolerance(s), 1e-9) for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for ``meta.json``."""
        return {
            "is_accepted": self.is_accepted,
            "max_source_drop": self.max_source_drop,
            "max_class_drop": self.max_class_drop,
            "max_cross_drop": self.max_cross_drop,
            "worst_source_drop": _num(self.worst_drop),
            "failures": self.failures,
            "sources": [
                {
                    "source": s.source,
                    "is_cross_source": s.is_cross_source,
                    "images": s.images,
                    "map50": {"fp32": _num(s.fp32), "int8": _num(s.int8)},
                    "classes": [
                        {"name": c.name, "instances": c.instances, "fp32": _num(c.fp32), "int8": _num(c.int8)}
                        for c in s.classes
                    ],
                }
                for s in self.sources
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Int8Verdict:
        """Read back :meth:`to_dict` (``meta.json``'s ``int8.gate``).

        Raises:
            ValueError: The record lacks its sources or figures.
        """

        def num(value: object) -> float:
            return math.nan if value is None else float(value)  # type: ignore[arg-type]

        try:
            sources = tuple(
                SourceAccuracy(
                    str(s["source"]),
                    int(s["images"]),
                    tuple(
                        ClassAccuracy(str(c["name"]), int(c["instances"]), num(c["fp32"]), num(c["int8"]))
                        for c in s["classes"]
                    ),
                    bool(s.get("is_cross_source", False)),
                )
                for s in data["sources"]
            )
            max_class = data.get("max_class_drop")
            return cls(
                sources,
                float(data["max_source_drop"]),
                None if max_class is None else float(max_class),
                float(data.get("max_cross_drop", DEFAULT_MAX_CROSS_DROP)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an int8 gate record: {exc!r}") from None

    def markdown(self) -> str:
        """The table for the model card: each source's mean and each class, fp32, int8 and the change."""
        rows = []
        for s in self.sources:
            name = f"{s.source} (never trained on)" if s.is_cross_source else s.source
            rows.append(
                f"| {name} | **mean** | {s.images} | {s.fp32:.3f} | {s.int8:.3f} | **{-s.drop * 100:+.1f}** |"
            )
            rows += [
                f"| | {c.name} ({c.instances}) | | {c.fp32:.3f} | {c.int8:.3f} | {-c.drop * 100:+.1f} |"
                for c in s.classes
            ]
        return (
            "| source | class (instances) | images | AP50 fp32 | AP50 int8 | change (points) |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows)
        )


def judge_int8(
    fp32: Mapping[str, EvalReport],
    int8: Mapping[str, EvalReport],
    *,
    max_source_drop: float = DEFAULT_MAX_SOURCE_DROP,
    max_class_drop: float | None = None,
    cross_sources: Collection[str] = (),
    max_cross_drop: float = DEFAULT_MAX_CROSS_DROP,
) -> Int8Verdict:
    """Pair the fp32 and int8 evaluations of the same splits and judge the int8 model.

    Args:
        fp32: Source name to the fp32 model's report on its validation split (or, for a cross
            source, on the whole source).
        int8: The int8 model's reports on the same splits.
        max_source_drop: Largest accepted fall of a validation split's mean AP50 (0.01: 1 point).
        max_class_drop: Largest accepted fall of one class's AP50; ``None``: not held.
        cross_sources: The sources the model never trained on (scored whole).
        max_cross_drop: Largest accepted fall of a cross source's mean AP50.

    Returns:
        The verdict with its table.

    Raises:
        ValueError: No sources, the two sides name different sources or score different images
            or classes, or a tolerance is negative.
    """
    if not fp32:
        raise ValueError("the int8 gate needs at least one validation source")
    if set(fp32) != set(int8):
        raise ValueError(f"fp32 and int8 were scored on different sources: {sorted(fp32)} vs {sorted(int8)}")
    if min(max_source_drop, max_cross_drop) < 0 or (max_class_drop is not None and max_class_drop < 0):
        raise ValueError(
            f"tolerances are falls in AP50, >= 0; got {max_source_drop}, {max_cross_drop}, {max_class_drop}"
        )
    unknown = set(cross_sources) - set(fp32)
    if unknown:
        raise ValueError(f"cross sources {sorted(unknown)} were not scored")
    rows = []
    for source, ref in fp32.items():
        other = int8[source]
        if other.images != ref.images:
            raise ValueError(f"{source}: fp32 scored {ref.images} images, int8 {other.images}")
        theirs = {c.name: c for c in other.classes}
        classes = []
        for c in ref.classes:
            if not c.instances:
                continue
            if c.name not in theirs:
                raise ValueError(f"{source}: int8 was not scored on class {c.name!r}")
            classes.append(ClassAccuracy(c.name, c.instances, c.ap50, theirs[c.name].ap50))
        rows.append(SourceAccuracy(ref.data, ref.images, tuple(classes), source in cross_sources))
    return Int8Verdict(tuple(rows), max_source_drop, max_class_drop, max_cross_drop)
