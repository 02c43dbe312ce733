"""Exceptions raised by the service.

Hierarchy::

    ServiceError
    ├── ConfigError           the site YAML is missing, malformed or invalid
    └── EvidenceError         an evidence file cannot be written or read
        ├── EvidencePathError     a path or id would leave the evidence folder (also a ValueError)
        └── EvidenceNotFoundError the evidence file does not exist
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EvidenceError",
    "EvidenceNotFoundError",
    "EvidencePathError",
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
