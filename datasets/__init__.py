"""Labelled detection sets: import (YOLO, COCO), validate, merge by class map, split, stats, harvest.

The names below load on first use (PEP 562), so ``anjian --help`` and commands that
need one module (``datasets.cli``) do not pull in OpenCV with every other one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets.checks import ValidationReport, validate_set
    from datasets.classmap import ClassMap, OverlapPolicy, load_class_map
    from datasets.coco import load_coco_set
    from datasets.errors import ClassMapError, DatasetError, DatasetFormatError
    from datasets.harvest import HarvestBox, HarvestItem, HarvestReport, Verdict, write_harvest
    from datasets.hashing import dataset_digest
    from datasets.labels import DetectionSet, Issue, IssueKind, LabelledImage, Severity, group_key
    from datasets.merge import MergeReport, merge_sets
    from datasets.split import split_by_group
    from datasets.stats import ClassStats, class_stats
    from datasets.yolo import load_yolo_set, write_yolo_set

_EXPORTS = {
    "ValidationReport": "datasets.checks",
    "validate_set": "datasets.checks",
    "ClassMap": "datasets.classmap",
    "OverlapPolicy": "datasets.classmap",
    "load_class_map": "datasets.classmap",
    "load_coco_set": "datasets.coco",
    "ClassMapError": "datasets.errors",
    "DatasetError": "datasets.errors",
    "DatasetFormatError": "datasets.errors",
    "HarvestBox": "datasets.harvest",
    "HarvestItem": "datasets.harvest",
    "HarvestReport": "datasets.harvest",
    "Verdict": "datasets.harvest",
    "write_harvest": "datasets.harvest",
    "dataset_digest": "datasets.hashing",
    "DetectionSet": "datasets.labels",
    "Issue": "datasets.labels",
    "IssueKind": "datasets.labels",
    "LabelledImage": "datasets.labels",
    "Severity": "datasets.labels",
    "group_key": "datasets.labels",
    "MergeReport": "datasets.merge",
    "merge_sets": "datasets.merge",
    "split_by_group": "datasets.split",
    "ClassStats": "datasets.stats",
    "class_stats": "datasets.stats",
    "load_yolo_set": "datasets.yolo",
    "write_yolo_set": "datasets.yolo",
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
