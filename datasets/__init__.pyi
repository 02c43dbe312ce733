"""Names of ``anjian.datasets``, loaded on first use (read by lazy_loader at run time, by type checkers as a stub)."""

from .checks import ValidationReport, validate_set
from .classmap import ClassMap, OverlapPolicy, load_class_map
from .coco import load_coco_set
from .errors import ClassMapError, DatasetError, DatasetFormatError, DatasetWriteError
from .harvest import HarvestBox, HarvestItem, HarvestReport, Verdict, write_harvest
from .hashing import dataset_digest
from .labels import DetectionSet, Issue, IssueKind, LabelledImage, Severity, group_key, video_key
from .merge import MergeReport, merge_sets
from .split import split_by_group
from .stats import ClassStats, class_stats
from .yolo import load_yolo_set, write_yolo_set

__all__ = [
    "ClassMap",
    "ClassMapError",
    "ClassStats",
    "DatasetError",
    "DatasetFormatError",
    "DatasetWriteError",
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
    "video_key",
    "write_harvest",
    "write_yolo_set",
]
