"""Analysis: batch frames across cameras, detect, apply behaviour rules, emit events.

The names below load on first use (PEP 562), so importing ``pipeline.config`` (the site
YAML's camera sections) does not pull in the runner, tracking and its SciPy/supervision.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.config import BehavioursConfig, CameraPipelineConfig, OpenFlameConfig, ZoneConfig
    from pipeline.event import Behaviour, Event, EventBox, RiskLevel
    from pipeline.incident_journal import IncidentJournal
    from pipeline.incidents import EventContext, IncidentBook, IncidentUpdate, UpdateKind
    from pipeline.runner import CameraAssignment, PipelineRunner
    from pipeline.sink import EventSink, ListSink

_EXPORTS = {
    "BehavioursConfig": "pipeline.config",
    "CameraPipelineConfig": "pipeline.config",
    "OpenFlameConfig": "pipeline.config",
    "ZoneConfig": "pipeline.config",
    "Behaviour": "pipeline.event",
    "Event": "pipeline.event",
    "EventBox": "pipeline.event",
    "RiskLevel": "pipeline.event",
    "EventContext": "pipeline.incidents",
    "IncidentBook": "pipeline.incidents",
    "IncidentUpdate": "pipeline.incidents",
    "UpdateKind": "pipeline.incidents",
    "IncidentJournal": "pipeline.incident_journal",
    "CameraAssignment": "pipeline.runner",
    "PipelineRunner": "pipeline.runner",
    "EventSink": "pipeline.sink",
    "ListSink": "pipeline.sink",
}

__all__ = [
    "Behaviour",
    "BehavioursConfig",
    "CameraAssignment",
    "CameraPipelineConfig",
    "Event",
    "EventBox",
    "EventContext",
    "EventSink",
    "IncidentBook",
    "IncidentJournal",
    "IncidentUpdate",
    "ListSink",
    "OpenFlameConfig",
    "PipelineRunner",
    "RiskLevel",
    "UpdateKind",
    "ZoneConfig",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
