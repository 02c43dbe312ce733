"""Bounded field types of the site YAML: each quantity's bounds, written once.

A config model gives a field one of these types and its own default and description;
pydantic merges the two::

    offline_after_s: DurationS = Field(60.0, description="Raise once the camera has delivered ...")

``cameras`` is the most upstream package, so the camera, engine, rule and sensor sections
(and the service's) can all use them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = [
    "DurationOrZeroS",
    "DurationS",
    "Fraction",
    "FractionOrZero",
    "GreyLevel",
    "GreyLevelOrZero",
    "HostName",
    "Score",
    "ShortDurationOrZeroS",
    "ShortDurationS",
    "TcpPort",
]

DurationS = Annotated[float, Field(gt=0, le=86_400)]
"""Seconds, more than 0 and at most a day."""

DurationOrZeroS = Annotated[float, Field(ge=0, le=86_400)]
"""Seconds, from 0 (none) to a day."""

ShortDurationS = Annotated[float, Field(gt=0, le=3600)]
"""Seconds, more than 0 and at most an hour (a wait, timeout or interval of a live loop)."""

ShortDurationOrZeroS = Annotated[float, Field(ge=0, le=3600)]
"""Seconds, from 0 (none) to an hour."""

Fraction = Annotated[float, Field(gt=0, le=1)]
"""A share of something (pixels, a box, an overlap): more than 0, at most 1."""

FractionOrZero = Annotated[float, Field(ge=0, le=1)]
"""A share from 0 to 1."""

Score = Annotated[float, Field(gt=0, lt=1)]
"""A detection score or box-overlap threshold, strictly between 0 and 1."""

GreyLevel = Annotated[float, Field(gt=0, le=255)]
"""A grey level or grey-level change (0-255 scale), more than 0."""

GreyLevelOrZero = Annotated[float, Field(ge=0, le=255)]
"""A grey level or grey-level spread (0-255 scale), from 0."""

TcpPort = Annotated[int, Field(ge=1, le=65535)]
"""A TCP port number."""

HostName = Annotated[str, Field(min_length=1, max_length=253)]
"""A host name or IP address (a DNS name is at most 253 characters)."""
