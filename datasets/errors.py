"""Exceptions raised by the dataset tools.

Hierarchy::

    DatasetError
    ├── DatasetFormatError   a set's description (data.yaml, COCO JSON) cannot be read at all
    ├── ClassMapError        a class map is malformed or does not fit the sets it is applied to
    └── DatasetWriteError    a set cannot be written where asked (checked before any file is written)

Problems *inside* a readable set (a bad label line, a missing image) are not raised: they
are collected as :class:`anjian.datasets.labels.Issue` records, so one bad file never stops an import.
"""

from __future__ import annotations

__all__ = ["ClassMapError", "DatasetError", "DatasetFormatError", "DatasetWriteError"]


class DatasetError(Exception):
    """Base of every error raised by ``datasets``."""


class DatasetFormatError(DatasetError):
    """The set's description file is missing or unreadable; the message names the file."""


class ClassMapError(DatasetError):
    """The class map is invalid or names classes that do not exist."""


class DatasetWriteError(DatasetError, ValueError):
    """A set cannot be written as asked: two images would share a file name, or the output folder
    holds the images being written. Raised before anything is written; also a ``ValueError``, which
    the writer raised for a name collision before."""
