"""Exceptions raised by model loading and inference.

Hierarchy::

    ModelError
    ├── ModelLoadError       the file is missing, corrupt, or not a detector anjian can run
    └── ModelMetadataError   the file loads but lacks what anjian needs (class names, input size)
"""

from __future__ import annotations

__all__ = ["ModelError", "ModelLoadError", "ModelMetadataError"]


class ModelError(Exception):
    """Base of every error raised by ``models``."""


class ModelLoadError(ModelError):
    """The model file could not be loaded; the message names the file and the cause."""


class ModelMetadataError(ModelError):
    """The model file lacks metadata anjian needs; the message names the missing key."""
