"""Exceptions raised by the service.

Hierarchy::

    ServiceError
    ├── ConfigError           the site YAML is missing, malformed or invalid
    ├── DatabaseError         the database cannot be migrated or is at the wrong schema
    ├── IngestBusyError       the event writer has too much queued (or is stopping): send it again later
    ├── RevisionRefusedError  an event revision can never be stored as it is: sending it again cannot help
    │   └── RevisionConflictError  it changes what identifies its incident (site, workshop, camera, behaviour)
    ├── LifecycleError        an alert cannot take the requested action
    │   └── InvalidTransitionError  the action is not allowed from the alert's state
    └── EvidenceError         an evidence file cannot be written or read
        ├── EvidencePathError     a path or id would leave the evidence folder (also a ValueError)
        └── EvidenceNotFoundError the evidence file does not exist
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseError",
    "EvidenceError",
    "EvidenceNotFoundError",
    "EvidencePathError",
    "IngestBusyError",
    "InvalidTransitionError",
    "LifecycleError",
    "RevisionConflictError",
    "RevisionRefusedError",
    "ServiceError",
]


class ServiceError(Exception):
    """Base of every error raised by ``service``."""


class ConfigError(ServiceError):
    """The site config cannot be used; the message names the file and each bad field."""


class EvidenceError(ServiceError):
    """An evidence file (an event snapshot) cannot be written or read."""


class EvidencePathError(EvidenceError, ValueError):
    """A camera id, event id or relative path would resolve outside the evidence folder."""


class EvidenceNotFoundError(EvidenceError):
    """The evidence file a stored event points to does not exist."""


class DatabaseError(ServiceError):
    """The database cannot be migrated, or its schema is not the one this anjian needs."""


class IngestBusyError(ServiceError):
    """The event writer cannot take an ingested revision now (too much queued, or stopping); retry later."""


class RevisionRefusedError(ServiceError):
    """An event revision can never be stored as it is (the database refuses a value it holds).

    Unlike a database that does not answer, sending it again cannot help: the writer
    sets it aside, and ingest answers 422.

    Attributes:
        event_id: The incident.
        revision: The refused revision.
        reason: What is wrong with it.
    """

    def __init__(self, event_id: str, revision: int, reason: str) -> None:
        super().__init__(f"revision {revision} of event {event_id!r} is refused: {reason}")
        self.event_id = event_id
        self.revision = revision
        self.reason = reason


class RevisionConflictError(RevisionRefusedError):
    """A revision gives its incident another site, workshop, camera or behaviour than the stored one.

    Attributes:
        field: The first field that differs (``site_id``, ``workshop_id``, ``camera_id`` or ``behaviour``).
        stored: Its stored value.
        received: Its value in the revision.
    """

    def __init__(self, event_id: str, revision: int, field: str, stored: str, received: str) -> None:
        super().__init__(
            event_id,
            revision,
            f"{field} is {received!r} but the event is stored with {field} {stored!r}; "
            "an incident keeps its site, workshop, camera and behaviour (send a new event id instead)",
        )
        self.field = field
        self.stored = stored
        self.received = received


class LifecycleError(ServiceError):
    """An alert cannot take the requested action."""


class InvalidTransitionError(LifecycleError):
    """The action is not allowed from the alert's current state.

    Attributes:
        state: The alert's state.
        action: The refused action.
        allowed: The actions allowed from ``state``.
    """

    def __init__(self, state: str, action: str, allowed: list[str]) -> None:
        super().__init__(f"cannot {action} an alert that is {state}; allowed: {', '.join(allowed) or 'none'}")
        self.state = state
        self.action = action
        self.allowed = allowed
