"""The per-plant figures of the hub's overview: open incidents by colour, overdue ones, median responses, health.

Overdue is judged in hub time. An incident's raise is put at the earlier of its
``created_at`` set right by the plant's current offset, and ``raised_by_at``: over its
messages, the earliest ``created_at + (stored_at - sent_at)``, its raise converted by the
offset its own message measured (transit included, so never too early unless the plant's
clock jumped forward between the raise and the send). So a clock set back after the raise
does not hide an overdue incident, and a backlog drained after an outage (long transit)
is judged by the plant's offset measured afresh.

Reads stay as cheap after years as after a day: the median response times cover the
incidents raised in the last ``response_window_s`` (each plant's latest ``_MEDIAN_SAMPLE`` at
most).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from anjian.service.config import SlaConfig
from anjian.service.hub.listing import OPEN_STATES
from anjian.service.hub.records import PlantSummary
from anjian.service.hub.tables import HubCameraRow, HubEventRow, HubPlantRow, HubSensorRow

__all__ = ["summaries"]

_MEDIAN_SAMPLE: Final = 1_000  # a plant's latest incidents in the window its medians are taken over, at most


def summaries(
    session: Session,
    plants: Sequence[tuple[str, str, str]],
    sla: SlaConfig,
    *,
    now: float,
    response_window_s: float,
) -> list[PlantSummary]:
    """One summary per plant (id, name, group), in the order given.

    The median response times cover the incidents each plant raised in the last
    ``response_window_s`` (by its clock, set right by its measured offset), its latest
    ``_MEDIAN_SAMPLE`` at most.

    Args:
        session: A read session.
        plants: The plants to summarise (the caller's scope).
        sla: The acknowledge deadlines that make a raised incident overdue (its raise in hub time: the
            earlier of ``created_at`` set right by the plant's offset and ``raised_by_at``).
        now: Epoch seconds.
        response_window_s: The window of the median response times, in seconds.
    """
    ids = [p[0] for p in plants]
    open_by: dict[str, dict[str, int]] = defaultdict(dict)
    overdue: dict[str, int] = defaultdict(int)
    acknowledge: dict[str, list[float]] = defaultdict(list)
    resolve: dict[str, list[float]] = defaultdict(list)
    cameras: dict[str, dict[str, int]] = defaultdict(dict)
    sensors: dict[str, dict[str, int]] = defaultdict(dict)
    for plant_id, severity, count in session.execute(
        select(HubEventRow.plant_id, HubEventRow.severity, func.count())
        .where(HubEventRow.plant_id.in_(ids), HubEventRow.state.in_(OPEN_STATES))
        .group_by(HubEventRow.plant_id, HubEventRow.severity)
    ):
        open_by[plant_id][severity] = int(count)
    plants_rows = {row.id: row for row in session.scalars(select(HubPlantRow).where(HubPlantRow.id.in_(ids)))}
    for plant_id, severity, created_at, raised_by_at in session.execute(
        select(
            HubEventRow.plant_id,
            HubEventRow.severity,
            HubEventRow.created_at,
            HubEventRow.raised_by_at,
        ).where(HubEventRow.plant_id.in_(ids), HubEventRow.state == "raised")
    ):
        plant = plants_rows.get(plant_id)
        offset = plant.clock_offset_s if plant is not None and plant.clock_offset_s is not None else 0.0
        raised_at = created_at + offset  # the raise in the hub's time, by the plant's clock now
        if raised_by_at is not None:  # ... unless its own message puts it earlier (a clock set back)
            raised_at = min(raised_at, raised_by_at)
        if now - raised_at > sla.deadline_s(severity):
            overdue[plant_id] += 1
    for plant_id in ids:  # each its latest incidents in the window: bounded however much is stored
        plant = plants_rows.get(plant_id)
        offset = plant.clock_offset_s if plant is not None and plant.clock_offset_s is not None else 0.0
        for created_at, acknowledged_at, resolved_at in session.execute(
            select(HubEventRow.created_at, HubEventRow.acknowledged_at, HubEventRow.resolved_at)
            .where(
                HubEventRow.plant_id == plant_id,
                HubEventRow.created_at >= now - offset - response_window_s,  # plant time
                (HubEventRow.acknowledged_at.is_not(None)) | (HubEventRow.resolved_at.is_not(None)),
            )
            .order_by(HubEventRow.created_at.desc())
            .limit(_MEDIAN_SAMPLE)
        ):
            if acknowledged_at is not None:
                acknowledge[plant_id].append(max(0.0, acknowledged_at - created_at))
            if resolved_at is not None:
                resolve[plant_id].append(max(0.0, resolved_at - created_at))
    for plant_id, state, count in session.execute(
        select(HubCameraRow.plant_id, HubCameraRow.state, func.count())
        .where(HubCameraRow.plant_id.in_(ids))
        .group_by(HubCameraRow.plant_id, HubCameraRow.state)
    ):
        cameras[plant_id][state] = int(count)
    for plant_id, state, count in session.execute(
        select(HubSensorRow.plant_id, HubSensorRow.state, func.count())
        .where(HubSensorRow.plant_id.in_(ids))
        .group_by(HubSensorRow.plant_id, HubSensorRow.state)
    ):
        sensors[plant_id][state] = int(count)
    return [
        PlantSummary(
            plant_id=plant_id,
            name=name,
            group=group,
            open_by_colour=dict(open_by[plant_id]),
            overdue=overdue[plant_id],
            acknowledge_median_s=statistics.median(acknowledge[plant_id]) if acknowledge[plant_id] else None,
            resolve_median_s=statistics.median(resolve[plant_id]) if resolve[plant_id] else None,
            cameras_by_state=dict(cameras[plant_id]),
            sensors_by_state=dict(sensors[plant_id]),
            last_message_at=plants_rows[plant_id].last_message_at if plant_id in plants_rows else None,
            clock_offset_s=plants_rows[plant_id].clock_offset_s if plant_id in plants_rows else None,
        )
        for plant_id, name, group in plants
    ]
