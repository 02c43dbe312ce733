"""A round trip with a labelling tool: export images with pre-labels for CVAT and Label Studio, read corrections back."""

from anjian.datasets.labelling.corrections import CorrectionsReport, read_corrections, tool_of
from anjian.datasets.labelling.cvat import cvat_labels_json, cvat_xml, read_cvat
from anjian.datasets.labelling.export import tasks_from_set, write_labelling_export
from anjian.datasets.labelling.label_studio import label_config, label_studio_tasks, read_label_studio
from anjian.datasets.labelling.tasks import (
    MANIFEST_NAME,
    LabelBox,
    LabelTask,
    Manifest,
    ToolImage,
    read_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "CorrectionsReport",
    "LabelBox",
    "LabelTask",
    "Manifest",
    "ToolImage",
    "cvat_labels_json",
    "cvat_xml",
    "label_config",
    "label_studio_tasks",
    "read_corrections",
    "read_cvat",
    "read_label_studio",
    "read_manifest",
    "tasks_from_set",
    "tool_of",
    "write_labelling_export",
]
