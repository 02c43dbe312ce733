"""Labelled detection sets: import (YOLO, COCO), validate, merge by class map, split, stats, harvest.

The names below load on first use (PEP 562), so ``anjian --help`` and commands that
need one module (``anjian.datasets.cli``) do not pull in OpenCV with every other one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anjian.datasets.checks import ValidationReport, validate_set
    from anjian.datasets.classmap import ClassMap, OverlapPolicy, load_class_map
    from anjian.datasets.coco import load_coco_set
    from anjian.datasets.errors import ClassMapError, DatasetError, DatasetFormatError
    from anjian.datasets.harvest import HarvestBox, HarvestItem, HarvestReport, Verdict, write_harvest
    from anjian.datasets.hashing import dataset_digest
    from anjian.datasets.labels import DetectionSet, Issue, IssueKind, LabelledImage, Severity, group_key
    from anjian.datasets.merge import MergeReport, merge_sets
    from anjian.datasets.split import split_by_group
    from anjian.datasets.stats import ClassStats, class_stats
    from anjian.datasets.yolo import load_yolo_set, write_yolo_set

_EXPORTS = {
    "ValidationReport": "anjian.datasets.checks",
    "validate_set": "anjian.datasets.checks",
    "ClassMap": "anjian.datasets.classmap",
    "OverlapPolicy": "anjian.datasets.classmap",
    "load_class_map": "anjian.datasets.classmap",
    "load_coco_set": "anjian.datasets.coco",
    "ClassMapError": "anjian.datasets.errors",
    "DatasetError": "anjian.datasets.errors",
    "DatasetFormatError": "anjian.datasets.errors",
    "HarvestBox": "anjian.datasets.harvest",
    "HarvestItem": "anjian.datasets.harvest",
    "HarvestReport": "anjian.datasets.harvest",
    "Verdict": "anjian.datasets.harvest",
    "write_harvest": "anjian.datasets.harvest",
    "dataset_digest": "anjian.datasets.hashing",
    "DetectionSet": "anjian.datasets.labels",
    "Issue": "anjian.datasets.labels",
    "IssueKind": "anjian.datasets.labels",
    "LabelledImage": "anjian.datasets.labels",
    "Severity": "anjian.datasets.labels",
    "group_key": "anjian.datasets.labels",
    "MergeReport": "anjian.datasets.merge",
    "merge_sets": "anjian.datasets.merge",
    "split_by_group": "anjian.datasets.split",
    "ClassStats": "anjian.datasets.stats",
    "class_stats": "anjian.datasets.stats",
    "load_yolo_set": "anjian.datasets.yolo",
    "write_yolo_set": "anjian.datasets.yolo",
}

__all__ = [
    "ClassMap",
    "ClassMapError",
    "ClassStats",
    "DatasetError",
    "DatasetFormatError",
    "DetectionSet",
    "HarvestBox",
    "HarvestItem",
    "HarvestReport",
    "Issue",
    "IssueKind",
    "LabelledImage",
    "MergeReport",
    "OverlapPolicy",
    "Severity",
    "ValidationReport",
    "Verdict",
    "class_stats",
    "dataset_digest",
    "group_key",
    "load_class_map",
    "load_coco_set",
    "load_yolo_set",
    "merge_sets",
    "split_by_group",
    "validate_set",
    "write_harvest",
    "write_yolo_set",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
