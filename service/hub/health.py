"""A plant's camera and sensor health as the hub holds it: each replaced as a set, reports ordered, clocks measured.

A plant's cameras and its sensors are each replaced as a set by a health report no older
than the one they came from (a camera or sensor it no longer reports was removed from its
site); an older report is ignored whole.

Health reports are ordered by the hub time each reached the hub's stream (``stored_at``:
JetStream's timestamp, on the hub's clock, the same on every redelivery), then by the
plant's ``sent_at`` clamped to the hub's clock plus ``CLOCK_SKEW_S`` (that is
``reported_at``): a plant's stream carries its reports in the order it sent them, so the
newest report wins even after the plant's clock was set back (no NTP, an RTC reset at a
reboot: its reports were ignored as "older" and its health froze), while a redelivered
report, or one of a backlog applied late, never overwrites a newer one. Not the stream
sequence, which starts again at 1 when the hub's stream is recreated (a server that lost its
store). The clamp keeps a plant clock running ahead from holding ``reported_at`` "next
year". Each plant's clock offset is measured on its latest report the same way (stream time
minus ``sent_at``), in ``touch_plants``, which also counts each plant's messages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Final, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from anjian.service.bus.messages import BusMessage, CameraReport, HealthReport, SensorReport
from anjian.service.hub.tables import HubCameraRow, HubPlantRow, HubSensorRow

__all__ = ["CLOCK_SKEW_S", "apply_health", "reported", "touch_plants"]

_ReportedRow = TypeVar("_ReportedRow", HubCameraRow, HubSensorRow)

CLOCK_SKEW_S: Final = 60.0  # how far ahead of the hub's clock a plant's report time is believed


def touch_plants(
    session: Session, messages: Sequence[tuple[BusMessage, float]], now: float
) -> dict[str, HubPlantRow]:
    """Count each plant's messages, note when it was heard, and measure its clock on its latest report.

    Args:
        session: The write session.
        messages: Each message with the hub time it reached the hub's stream.
        now: The hub's time.

    Returns:
        The row of each plant in ``messages``, by id.
    """
    counts: dict[str, int] = defaultdict(int)
    latest_report: dict[str, tuple[float, float]] = {}  # plant: (stream time, sent_at) of its latest
    for message, stored_at in messages:
        counts[message.plant_id] += 1
        if isinstance(message, HealthReport):
            reading = (stored_at, message.sent_at)
            if message.plant_id not in latest_report or reading > latest_report[message.plant_id]:
                latest_report[message.plant_id] = reading
    rows: dict[str, HubPlantRow] = {}
    for plant_id, count in counts.items():
        row = session.get(HubPlantRow, plant_id, with_for_update=True)
        if row is None:
            row = HubPlantRow(id=plant_id, last_message_at=now, messages=0, epoch=0)
            session.add(row)
        rows[plant_id] = row
        row.last_message_at = now
        row.messages += count
        latest = latest_report.get(plant_id)
        if latest is not None and _is_later_clock_reading(row, latest):
            stored_at, sent_at = latest
            row.clock_offset_s = stored_at - sent_at
            row.clock_sent_at = sent_at
            row.clock_measured_at = stored_at
    return rows


def apply_health(
    session: Session, plant: HubPlantRow, report: HealthReport, *, reported_at: float, stored_at: float
) -> None:
    """Replace the plant's cameras and sensors by the report's, unless they came from a later report.

    Reports are ordered by ``stored_at`` (when each reached the hub's stream), then by
    ``reported_at`` (the plant's clamped time, for reports given the same hub time). One as
    late as the stored one is written: reports clamped to the same time end in the last
    one's state. The plant row remembers the report applied, so an older one is ignored
    even after a report that listed nothing.
    """
    if plant.health_stored_at is not None and (
        plant.health_stored_at,
        plant.health_reported_at or 0.0,
    ) > (
        stored_at,
        reported_at,
    ):
        return
    cameras = _reported_rows(session, HubCameraRow, HubCameraRow.camera_id, report.plant_id)
    sensors = _reported_rows(session, HubSensorRow, HubSensorRow.sensor_id, report.plant_id)
    _replace_reported(
        session,
        HubCameraRow,
        HubCameraRow.camera_id,
        report.plant_id,
        cameras,
        report.cameras,
        reported_at,
    )
    _replace_reported(
        session,
        HubSensorRow,
        HubSensorRow.sensor_id,
        report.plant_id,
        sensors,
        report.sensors,
        reported_at,
    )
    plant.health_reported_at = reported_at
    plant.health_stored_at = stored_at


def reported(
    session: Session, table: type[_ReportedRow], key: InstrumentedAttribute[str], plant_ids: Iterable[str]
) -> list[_ReportedRow]:
    """The rows of a per-plant health table for these plants, by plant and ``key`` (detached, loaded)."""
    query = select(table).where(table.plant_id.in_(list(plant_ids))).order_by(table.plant_id, key)
    rows = list(session.scalars(query))
    session.expunge_all()
    return rows


def _is_later_clock_reading(plant: HubPlantRow, reading: tuple[float, float]) -> bool:
    """Whether a health report (stream time, sent_at) came after the one that last measured the plant's clock.

    The latest one to reach the hub's stream does: a backlog drained after an outage ends
    with the freshest one, whose transit is short; a clock set back is measured at once; a
    redelivered report, with the stream time it had, never measures it again.
    """
    if plant.clock_measured_at is None or plant.clock_sent_at is None:
        return True
    return reading > (plant.clock_measured_at, plant.clock_sent_at)


def _set_columns(row: HubCameraRow | HubSensorRow, report: BaseModel, **extra: object) -> None:
    """Set each of ``row``'s columns that ``report`` (a camera's or sensor's report) has, in its JSON form."""
    columns = row.__table__.columns.keys()
    for name, value in {**report.model_dump(mode="json"), **extra}.items():
        if name in columns:
            setattr(row, name, value)


def _reported_rows(
    session: Session, table: type[_ReportedRow], key: InstrumentedAttribute[str], plant_id: str
) -> dict[str, _ReportedRow]:
    """A plant's rows of a health table by camera or sensor id (``key``), locked for the transaction."""
    query = select(table).where(table.plant_id == plant_id).with_for_update()
    return {getattr(row, key.key): row for row in session.scalars(query)}


def _replace_reported(
    session: Session,
    table: type[_ReportedRow],
    key: InstrumentedAttribute[str],
    plant_id: str,
    rows: dict[str, _ReportedRow],
    reports: Sequence[CameraReport] | Sequence[SensorReport],
    reported_at: float,
) -> None:
    """Replace a plant's ``rows`` of a health table (by ``key``) by ``reports``; a row none names is deleted."""
    for report in reports:
        report_id = getattr(report, key.key)
        row = rows.pop(report_id, None)
        if row is None:
            row = table(plant_id=plant_id, **{key.key: report_id})
            session.add(row)
        _set_columns(row, report, reported_at=reported_at)
    for removed in rows.values():  # no longer on the plant's site
        session.delete(removed)
