"""Fixtures of the hub tests: plant messages made by a real plant store, and a hub store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from anjian.pipeline.event import Event
from anjian.pipeline.sensors.health import SensorState
from anjian.service.bus.messages import EventChange, HealthReport, SensorReport
from anjian.service.hub.store import HubStore
from anjian.service.records import AuditEntry
from anjian.service.schemas import WebhookPayload
from anjian.service.store import EventStore
from tests.service.conftest import FakeClock


class PlantRecorder:
    """A plant's real event store, turning each change into the ``EventChange`` its bus would publish."""

    def __init__(self, plant_id: str, path: Path, clock: FakeClock) -> None:
        self.plant_id = plant_id
        self.clock = clock
        self.store = EventStore(f"sqlite:///{path}", clock=clock)
        self._sent = 0

    def _change(self, event_id: str, change: AuditEntry | None, snapshot: bytes | None) -> EventChange:
        stored = self.store.get_event(event_id)
        assert stored is not None
        self._sent += 1
        return EventChange(
            plant_id=self.plant_id,
            key=f"{event_id}:{self._sent}",
            sent_at=self.clock(),
            payload=WebhookPayload.for_event(stored, change=change),
            snapshot_jpeg=snapshot,
        )

    def raise_event(self, event: Event) -> EventChange:
        """Store a detection revision; the message announcing it (with its snapshot)."""
        self.store.upsert_event(event, snapshot_path=None)
        return self._change(event.id, None, event.snapshot_jpeg)

    def act(self, event_id: str, action: str, **kwargs: str) -> EventChange:
        """Apply a lifecycle action; the message announcing it."""
        result = self.store.transition(event_id, action, actor="duty officer", **kwargs)
        return self._change(event_id, result.audit, None)


def sensor_report(plant_id: str, sent_at: float, **states: SensorState) -> HealthReport:
    """A plant's health report naming these sensors (``nh3_1=SensorState.OK`` is sensor ``nh3-1``) and no camera."""
    return HealthReport(
        plant_id=plant_id,
        sent_at=sent_at,
        sensors=[
            SensorReport(
                sensor_id=name.replace("_", "-"),
                workshop_id="freezing-1",
                quantity="ammonia",
                unit="ppm",
                source="mqtt:plant",
                state=state,
                is_source_connected=state is not SensorState.OFFLINE,
                last_reading_at=None if state is SensorState.WAITING else sent_at - 1,
                last_value=None if state is SensorState.WAITING else 12.5,
                open_kinds=["stale"] if state is SensorState.FAULT else [],
            )
            for name, state in states.items()
        ],
    )


@pytest.fixture
def recorder(tmp_path: Path, clock: FakeClock) -> Iterator[PlantRecorder]:
    recorder = PlantRecorder("lab-3", tmp_path / "plant.db", clock)
    yield recorder
    recorder.store.close()


@pytest.fixture
def hub_store(database_url: str, clock: FakeClock) -> Iterator[HubStore]:
    store = HubStore(database_url, clock=clock)
    yield store
    store.close()
