"""Labelled detection sets: import (YOLO, COCO), validate, merge by class map, split, stats, harvest."""

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
