"""Analysis: batch frames across cameras, detect, apply behaviour rules, emit events.

The names below load on first use (PEP 562), so importing ``anjian.pipeline.config`` (the site
YAML's camera sections) does not pull in the runner, tracking and its SciPy/supervision.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anjian.pipeline.config import BehavioursConfig, CameraPipelineConfig, OpenFlameConfig, ZoneConfig
    from anjian.pipeline.event import Behaviour, Event, EventBox, RiskLevel
    from anjian.pipeline.incident_journal import IncidentJournal
    from anjian.pipeline.incidents import EventContext, IncidentBook, IncidentUpdate, UpdateKind
    from anjian.pipeline.runner import CameraAssignment, PipelineRunner
    from anjian.pipeline.sink import EventSink, ListSink

_EXPORTS = {
    "BehavioursConfig": "anjian.pipeline.config",
    "CameraPipelineConfig": "anjian.pipeline.config",
    "OpenFlameConfig": "anjian.pipeline.config",
    "ZoneConfig": "anjian.pipeline.config",
    "Behaviour": "anjian.pipeline.event",
    "Event": "anjian.pipeline.event",
    "EventBox": "anjian.pipeline.event",
    "RiskLevel": "anjian.pipeline.event",
    "EventContext": "anjian.pipeline.incidents",
    "IncidentBook": "anjian.pipeline.incidents",
    "IncidentUpdate": "anjian.pipeline.incidents",
    "UpdateKind": "anjian.pipeline.incidents",
    "IncidentJournal": "anjian.pipeline.incident_journal",
    "CameraAssignment": "anjian.pipeline.runner",
    "PipelineRunner": "anjian.pipeline.runner",
    "EventSink": "anjian.pipeline.sink",
    "ListSink": "anjian.pipeline.sink",
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
