"""Compare two models class by class on several labelled splits.

An analyst promotes a new version only after seeing it side by side with the one it replaces,
on the sources it was trained on (in-source val splits) and on sources it never saw
(cross-source sets). :func:`compare_models` scores both detectors with
:func:`anjian.training.evaluate.evaluate_detector` on the same images and pairs their per-class
figures; :mod:`anjian.training.comparison_record` keeps the result with each registry version.

Differences are always *this model minus the other*: in a version's own meta, a positive
``delta`` means that version scores higher.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from anjian.datasets.classmap import ClassMap
from anjian.datasets.hashing import dataset_digest
from anjian.datasets.labels import DetectionSet, ProgressFn, no_progress
from anjian.datasets.versions import find_version
from anjian.datasets.yolo import load_yolo_set
from anjian.models.detector import Detector
from anjian.training.evaluate import ClassResult, EvalReport, class_table, evaluate_detector

__all__ = [
    "METRICS",
    "ClassComparison",
    "ComparedData",
    "Comparison",
    "DataComparison",
    "ModelRef",
    "Scores",
    "compare_models",
    "compare_reports",
    "load_compared_data",
]

METRICS = ("ap50", "ap50_95", "precision", "recall")
"""Per-class figures compared, in display order."""


def _clean(value: float) -> float | None:
    """JSON form of a figure: NaN as ``None``, four decimals."""
    return None if math.isnan(value) else round(value, 4)


def _read(value: object) -> float:
    """A stored figure back as a float (``None`` as NaN)."""
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Which model a side of a comparison is.

    Attributes:
        spec: The spec the analyst gave (``builtin:anjian-n/2``, a file path).
        version: The detector's version string (name and file digest, as events carry it).
        registry_name: Registry model name when the file is a registry version, else ``None``.
        registry_version: Its version folder name, else ``None``.
    """

    spec: str
    version: str
    registry_name: str | None = None
    registry_version: str | None = None

    @property
    def label(self) -> str:
        """``NAME/VERSION`` for a registry version, else the spec."""
        if self.registry_name and self.registry_version:
            return f"{self.registry_name}/{self.registry_version}"
        return self.spec

    def is_version(self, name: str, version: str) -> bool:
        """Whether this is registry version ``version`` of model ``name``."""
        return (self.registry_name, self.registry_version) == (name, version)

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return {
            "spec": self.spec,
            "version": self.version,
            "registry_name": self.registry_name,
            "registry_version": self.registry_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRef:
        """Read back :meth:`to_dict`."""
        return cls(
            str(data["spec"]),
            str(data.get("version", "")),
            data.get("registry_name"),
            data.get("registry_version"),
        )


@dataclass(frozen=True, slots=True)
class Scores:
    """One model's figures on one class (NaN where undefined).

    Attributes:
        precision: At the model's best-F1 confidence, IoU 0.5.
        recall: Same point.
        ap50: AP at IoU 0.5.
        ap50_95: AP averaged over IoU 0.5:0.95.
    """

    precision: float
    recall: float
    ap50: float
    ap50_95: float

    @classmethod
    def from_result(cls, result: ClassResult) -> Scores:
        """The figures of an evaluation row."""
        return cls(result.precision, result.recall, result.ap50, result.ap50_95)

    def get(self, metric: str) -> float:
        """One figure by name (one of :data:`METRICS`)."""
        return float(getattr(self, metric))

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready form."""
        return {m: _clean(self.get(m)) for m in METRICS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scores:
        """Read back :meth:`to_dict`."""
        return cls(
            _read(data.get("precision")),
            _read(data.get("recall")),
            _read(data.get("ap50")),
            _read(data.get("ap50_95")),
        )


@dataclass(frozen=True, slots=True)
class ClassComparison:
    """Both models on one class of one data set.

    Attributes:
        name: Model class name.
        images: Images holding the class's ground truth.
        instances: Its ground-truth boxes.
        a: This model's figures, ``None`` when it has no such class.
        b: The other model's figures, ``None`` when it has no such class.
    """

    name: str
    images: int
    instances: int
    a: Scores | None
    b: Scores | None

    def delta(self, metric: str) -> float:
        """``a - b`` for one metric, NaN when either side lacks it."""
        if self.a is None or self.b is None:
            return math.nan
        return self.a.get(metric) - self.b.get(metric)

    def swapped(self) -> ClassComparison:
        """The same row seen from the other model."""
        return ClassComparison(self.name, self.images, self.instances, self.b, self.a)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, with the differences spelled out."""
        return {
            "name": self.name,
            "images": self.images,
            "instances": self.instances,
            "self": self.a.to_dict() if self.a else None,
            "other": self.b.to_dict() if self.b else None,
            "delta": {m: _clean(self.delta(m)) for m in METRICS},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassComparison:
        """Read back :meth:`to_dict`."""
        mine, other = data.get("self"), data.get("other")
        return cls(
            str(data["name"]),
            int(data.get("images", 0)),
            int(data.get("instances", 0)),
            Scores.from_dict(mine) if mine else None,
            Scores.from_dict(other) if other else None,
        )


@dataclass(frozen=True, slots=True)
class DataComparison:
    """Both models on one labelled split.

    Attributes:
        data: ``set/split`` as the evaluation names it.
        path: The set's ``data.yaml``.
        images: Images scored.
        classes: One row per class either model scored.
        data_hash: Content digest of the set (``sha256:…``), when known.
        data_version: The named dataset version with that digest, when there is one.
    """

    data: str
    path: str
    images: int
    classes: tuple[ClassComparison, ...]
    data_hash: str | None = None
    data_version: str | None = None

    def common_mean(self, metric: str, side: str) -> float:
        """Mean of a metric over classes both models score and that have ground truth.

        Models with different class lists are only comparable on the classes they share.
        """
        values = [
            getattr(c, side).get(metric)
            for c in self.classes
            if c.a is not None and c.b is not None and c.instances
        ]
        return float(np.mean(values)) if values else math.nan

    def swapped(self) -> DataComparison:
        """The same comparison seen from the other model."""
        return DataComparison(
            self.data,
            self.path,
            self.images,
            tuple(c.swapped() for c in self.classes),
            self.data_hash,
            self.data_version,
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "data": self.data,
            "path": self.path,
            "images": self.images,
            "data_hash": self.data_hash,
            "data_version": self.data_version,
            "map50": {
                "self": _clean(self.common_mean("ap50", "a")),
                "other": _clean(self.common_mean("ap50", "b")),
            },
            "map50_95": {
                "self": _clean(self.common_mean("ap50_95", "a")),
                "other": _clean(self.common_mean("ap50_95", "b")),
            },
            "classes": [c.to_dict() for c in self.classes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataComparison:
        """Read back :meth:`to_dict`."""
        return cls(
            str(data["data"]),
            str(data.get("path", "")),
            int(data.get("images", 0)),
            tuple(ClassComparison.from_dict(c) for c in data.get("classes", [])),
            data.get("data_hash"),
            data.get("data_version"),
        )


@dataclass(frozen=True, slots=True)
class Comparison:
    """Model ``a`` against model ``b`` on one or more labelled splits.

    Attributes:
        a: This model.
        b: The other model.
        data: One comparison per split.
        created_at: ISO time of the run.
        settings: How both were run (confidence floor, split, class map).
    """

    a: ModelRef
    b: ModelRef
    data: tuple[DataComparison, ...]
    created_at: str
    settings: Mapping[str, object]

    def swapped(self) -> Comparison:
        """The same comparison seen from model ``b`` (differences change sign)."""
        return Comparison(
            self.b, self.a, tuple(d.swapped() for d in self.data), self.created_at, self.settings
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, from model ``a``'s side (``self`` is ``a``)."""
        return {
            "model": self.a.to_dict(),
            "against": self.b.to_dict(),
            "created_at": self.created_at,
            "settings": dict(self.settings),
            "data": [d.to_dict() for d in self.data],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Read back :meth:`to_dict`.

        Raises:
            ValueError: The record lacks its models or data.
        """
        try:
            return cls(
                ModelRef.from_dict(data["model"]),
                ModelRef.from_dict(data["against"]),
                tuple(DataComparison.from_dict(d) for d in data["data"]),
                str(data.get("created_at", "")),
                dict(data.get("settings", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a comparison record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ComparedData:
    """One labelled split to compare on.

    Attributes:
        dataset: The loaded set.
        path: Its ``data.yaml`` (recorded, and hashed when ``data_hash`` is unset).
        data_hash: Its content digest, if already known.
        data_version: Named dataset version of that digest, if any.
    """

    dataset: DetectionSet
    path: Path
    data_hash: str | None = None
    data_version: str | None = None


def load_compared_data(
    data_yaml: Path, *, versions_file: Path | None = None, progress: ProgressFn = no_progress
) -> ComparedData:
    """Read a YOLO set to compare on, with its digest and named version (if one has that digest).

    Raises:
        DatasetError: The set cannot be read.
    """
    data_yaml = Path(data_yaml)
    data_yaml = data_yaml / "data.yaml" if data_yaml.is_dir() else data_yaml
    dataset = load_yolo_set(data_yaml, progress=progress)
    digest = dataset_digest(data_yaml, progress=progress)
    version = find_version(digest, versions_file)
    return ComparedData(dataset, data_yaml, digest, version.name if version else None)


def compare_reports(
    a: EvalReport | None,
    b: EvalReport | None,
    *,
    path: str = "",
    data_hash: str | None = None,
    data_version: str | None = None,
) -> DataComparison:
    """Pair two evaluations of the same split class by class.

    Args:
        a: This model's report; ``None`` when it shares no class with the data.
        b: The other model's report on the same data and images; ``None`` likewise.
        path: The data's ``data.yaml``, recorded.
        data_hash: The data's digest, recorded.
        data_version: The data's named version, recorded.

    Returns:
        One row per class that either model scored, in ``a``'s order then ``b``'s.

    Raises:
        ValueError: Both reports are missing, or they are about different data.
    """
    first = a if a is not None else b
    if first is None:
        raise ValueError("nothing to compare: neither model was scored")
    if a is not None and b is not None and (a.data != b.data or a.images != b.images):
        raise ValueError(
            f"cannot compare evaluations of different data: {a.data} ({a.images} images) "
            f"vs {b.data} ({b.images} images)"
        )
    rows_a = {c.name: c for c in a.classes} if a else {}
    rows_b = {c.name: c for c in b.classes} if b else {}
    rows = []
    for name in list(rows_a) + [n for n in rows_b if n not in rows_a]:
        ra, rb = rows_a.get(name), rows_b.get(name)
        rows.append(
            ClassComparison(
                name=name,
                images=max(ra.images if ra else 0, rb.images if rb else 0),
                instances=max(ra.instances if ra else 0, rb.instances if rb else 0),
                a=Scores.from_result(ra) if ra else None,
                b=Scores.from_result(rb) if rb else None,
            )
        )
    return DataComparison(first.data, path, first.images, tuple(rows), data_hash, data_version)


def _evaluate_if_shared(
    detector: Detector, item: ComparedData, split: str, class_map: ClassMap | None, progress: ProgressFn
) -> EvalReport | None:
    """The detector's report on a split, ``None`` when the model has none of the data's classes."""
    names = item.dataset.class_names
    if not class_table(names, detector.class_names, class_map, item.dataset.name):
        return None
    return evaluate_detector(detector, item.dataset, split=split, class_map=class_map, progress=progress)


def compare_models(
    a: tuple[ModelRef, Detector],
    b: tuple[ModelRef, Detector],
    data: Sequence[ComparedData],
    *,
    split: str = "val",
    class_map: ClassMap | None = None,
    progress: ProgressFn = no_progress,
    settings: Mapping[str, object] | None = None,
) -> tuple[Comparison, list[tuple[EvalReport | None, EvalReport | None]]]:
    """Score two detectors on the same splits and pair their per-class figures.

    Both detectors should keep low-confidence boxes (``confidence_threshold=0.001``) so
    that AP covers the whole precision-recall curve. A set that shares no class with one of
    the models is scored for the other only (its rows show the missing side as ``None``).

    Args:
        a: This model (the candidate) and its detector.
        b: The other model (the baseline) and its detector.
        data: The splits to compare on: in-source val splits and cross-source sets.
        split: Split of each set to score.
        class_map: Maps data class names onto model class names (by name when ``None``).
        progress: Wraps each evaluation's loop.
        settings: More run settings to record (confidence floor ...).

    Returns:
        The comparison, and each split's pair of full reports.

    Raises:
        ValueError: No data given, a split is empty, or a set shares no class with either model.
    """
    if not data:
        raise ValueError("compare needs at least one data set")
    pairs: list[tuple[EvalReport | None, EvalReport | None]] = []
    rows: list[DataComparison] = []
    for item in data:
        report_a = _evaluate_if_shared(a[1], item, split, class_map, progress)
        report_b = _evaluate_if_shared(b[1], item, split, class_map, progress)
        if report_a is None and report_b is None:
            raise ValueError(
                f"no class of {item.dataset.name} {list(item.dataset.class_names)} maps onto either "
                f"model ({a[0].label}: {list(a[1].class_names.values())}, "
                f"{b[0].label}: {list(b[1].class_names.values())}); pass --class-map"
            )
        pairs.append((report_a, report_b))
        rows.append(
            compare_reports(
                report_a,
                report_b,
                path=str(item.path),
                data_hash=item.data_hash,
                data_version=item.data_version,
            )
        )
    recorded = {"split": split, **(settings or {})}
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return Comparison(a[0], b[0], tuple(rows), created, recorded), pairs
