"""Analysis: batch frames across cameras, detect, apply behaviour rules, emit events."""

from pipeline.config import BehavioursConfig, CameraPipelineConfig, OpenFlameConfig, ZoneConfig
from pipeline.event import Behaviour, Event, EventBox, RiskLevel
from pipeline.incidents import EventContext, IncidentBook, IncidentUpdate, UpdateKind
from pipeline.runner import CameraAssignment, PipelineRunner
from pipeline.sink import EventSink, ListSink

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
    "IncidentUpdate",
    "ListSink",
    "OpenFlameConfig",
    "PipelineRunner",
    "RiskLevel",
    "UpdateKind",
    "ZoneConfig",
]
