"""The wire form of an ``Event`` as a plain dict: a thin layer over ``anjian.pipeline.event_wire.EventWire``.

For callers that hold JSON documents rather than models (the incident journal,
tests, tools): ``event_to_json`` gives the dict the HTTP sink sends, and
``event_from_json`` validates one with ``EventWire`` and raises a ``ValueError``
naming each field that is wrong. The format itself is defined once, in
``EventWire``.

Example:
    >>> data = event_to_json(event)          # a dict ready for json.dumps
    >>> event_from_json(data) == event
    True
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from anjian.pipeline.event import Event
from anjian.pipeline.event_wire import EVENT_WIRE_VERSION, EventWire

__all__ = ["EVENT_JSON_VERSION", "describe_wire_errors", "event_from_json", "event_to_json"]

EVENT_JSON_VERSION = EVENT_WIRE_VERSION
"""Bumped when the wire form changes incompatibly (the same as ``EVENT_WIRE_VERSION``)."""


def event_to_json(event: Event) -> dict[str, Any]:
    """The JSON-ready dict of an event, keys in wire order (``EventWire.from_event``)."""
    return EventWire.from_event(event).model_dump(mode="json")


def event_from_json(data: Any) -> Event:
    """Rebuild an ``Event`` from its wire form.

    Raises:
        ValueError: A field is missing, unknown or of the wrong type, the schema
            version is not supported, or the event itself is invalid; the message
            names every such field (``boxes[0].xyxy_norm[3]: Field required``).
    """
    try:
        return EventWire.model_validate(data).to_event()
    except ValidationError as exc:
        raise ValueError(describe_wire_errors(exc)) from None


def describe_wire_errors(exc: ValidationError) -> str:
    """One line per problem of a rejected wire event: ``path: what is wrong``."""
    lines = []
    for error in exc.errors(include_url=False):
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
        what = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"{path.lstrip('.') or 'event'}: {what}")
    return "; ".join(lines)
