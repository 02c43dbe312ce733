"""The seam between the pipeline and whoever stores and forwards its events."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from anjian.pipeline.event import Event

__all__ = ["EventSink", "ListSink"]


@runtime_checkable
class EventSink(Protocol):
    """Receives every event revision the pipeline publishes.

    The alert service implements it; the pipeline never imports the service.
    ``publish`` must not block the frame path for long: implementations queue or
    spool and return.
    """

    def publish(self, event: Event) -> None:
        """Accept one event revision (a new incident, an update, or its end)."""
        ...


class ListSink:
    """An ``EventSink`` that keeps events in memory: for replay, tests and the CLI."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        """Append the event revision."""
        self.events.append(event)
