"""Names of ``anjian.pipeline``, loaded on first use (read by lazy_loader at run time, by type checkers as a stub)."""

from .config import BehavioursConfig, CameraPipelineConfig, OpenFlameConfig, ZoneConfig
from .event import Behaviour, Event, EventBox, RiskLevel
from .incident_journal import IncidentJournal
from .incidents import EventContext, IncidentBook, IncidentUpdate, UpdateKind
from .runner import CameraAssignment, PipelineRunner
from .sink import EventSink, ListSink

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
