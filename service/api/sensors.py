"""Sensors: the site's sensors, the trend of one (its readings over a window), and readings pushed by gateways.

``GET /sensors`` lists the configured sensors with their limits; ``GET
/sensors/{sensor_id}/readings`` gives the trend the dashboard draws beside a sensor
alert (raw readings for the last day, buckets before, at most ``max_points``);
``POST /ingest/readings`` takes readings from gateways that push (a pipeline token,
like ``/ingest/events``) and hands them to the sensor runner, whose rules raise the
alerts. A reading for a sensor the site does not have is refused by index and
counted (``unknown_sensor``), never an error for the rest of the batch.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, Strict

from anjian.pipeline.sensors.config import SensorConfig
from anjian.pipeline.sensors.reading import MAX_READING_MAGNITUDE, Reading, reading_problem
from anjian.service.api.deps import AUTH_RESPONSES, Pipeline, Viewer
from anjian.service.api.routing import GuardedRoute, IngestRoute
from anjian.service.config import AnjianConfig
from anjian.service.readings import ReadingStore
from anjian.service.schemas import UtcTime, datetime_to_epoch, epoch_to_datetime

__all__ = ["ingest_router", "router"]

router = APIRouter(tags=["sensors"], responses=AUTH_RESPONSES, route_class=GuardedRoute)
ingest_router = APIRouter(tags=["ingest"], responses=AUTH_RESPONSES, route_class=IngestRoute)

_SENSOR_ID = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DEFAULT_WINDOW_S = 3600.0
_MAX_WINDOW_S = 366 * 86_400.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SensorOut(_Model):
    """One sensor of the site and its limits."""

    id: str
    name: str = Field(..., description="Display name (the id when it has none).")
    workshop_id: str
    quantity: str = Field(..., description="What it measures: ammonia, dust, hydrogen ...")
    unit: str
    source: Literal["mqtt", "modbus", "http"] = Field(..., description="How its readings arrive.")
    direction: Literal["high", "low"] | None = Field(
        None, description="Which side of the limits alarms; null: none."
    )
    limits: dict[str, float] = Field(default_factory=dict, description="Limit per colour (blue ... red).")
    camera_ids: list[str] = Field(default_factory=list, description="Cameras watching its place.")

    @classmethod
    def from_config(cls, workshop_id: str, sensor: SensorConfig) -> SensorOut:
        """The response model of a configured sensor."""
        thresholds = sensor.thresholds
        return cls(
            id=sensor.id,
            name=sensor.display_name,
            workshop_id=workshop_id,
            quantity=sensor.quantity,
            unit=sensor.unit,
            source=sensor.source.kind,
            direction=None if thresholds is None else thresholds.direction,
            limits={}
            if thresholds is None
            else {colour.value: limit for colour, limit in thresholds.limits()},
            camera_ids=list(sensor.camera_ids),
        )


class SensorList(_Model):
    """The site's sensors, in file order."""

    items: list[SensorOut]


class TrendPointOut(_Model):
    """One point of a trend: a reading, or a bucket of readings."""

    at: UtcTime = Field(..., description="The reading's time, or the middle of its bucket, UTC.")
    value: float = Field(..., description="The reading, or the bucket's mean.")
    min: float
    max: float
    count: int = Field(..., ge=1, description="Readings the point stands for.")


class TrendOut(_Model):
    """A sensor's readings over a window."""

    sensor: SensorOut
    start: UtcTime
    end: UtcTime
    points: list[TrendPointOut]


class ReadingIn(_Model):
    """One reading pushed by a gateway."""

    sensor_id: str = Field(..., min_length=1, max_length=64)
    value: Annotated[
        float,
        Strict(),
        Field(
            ge=-MAX_READING_MAGNITUDE,
            le=MAX_READING_MAGNITUDE,
            allow_inf_nan=False,
            description="In the sensor's unit.",
        ),
    ]
    at: Annotated[float, Strict(), Field(ge=0, le=1e11, allow_inf_nan=False)] | None = Field(
        None, description="When it was measured, epoch seconds; default: when it arrived."
    )


class ReadingBatchIn(_Model):
    """Readings pushed by a gateway, in time order per sensor."""

    readings: list[ReadingIn] = Field(..., min_length=1, max_length=5000)


class RefusedReading(_Model):
    """A reading that was not taken, by its index in the batch."""

    index: int
    sensor_id: str
    reason: str


class ReadingBatchResult(_Model):
    """What became of a batch of pushed readings."""

    accepted: int = Field(..., ge=0, description="Readings queued for the rules and the history.")
    refused: list[RefusedReading] = Field(default_factory=list)


def _sensors(config: AnjianConfig) -> dict[str, SensorOut]:
    return {sensor.id: SensorOut.from_config(workshop.id, sensor) for workshop, sensor in config.sensors()}


@router.get("/sensors", response_model=SensorList, summary="List the site's sensors")
def list_sensors(request: Request, _token: Viewer) -> SensorList:
    """Every sensor of the site with its workshop, unit, limits and linked cameras."""
    return SensorList(items=list(_sensors(request.app.state.config).values()))


@router.get(
    "/sensors/{sensor_id}/readings",
    response_model=TrendOut,
    summary="A sensor's readings over a window (its trend)",
    responses={404: {"description": "The site has no such sensor."}},
)
def sensor_readings(
    request: Request,
    _token: Viewer,
    sensor_id: Annotated[str, _SENSOR_ID],
    start: Annotated[
        datetime | None, Query(description="Window start (ISO-8601); default an hour before end.")
    ] = None,
    end: Annotated[datetime | None, Query(description="Window end (ISO-8601); default now.")] = None,
    max_points: Annotated[int, Query(ge=10, le=5000, description="Most points; more are merged.")] = 600,
) -> TrendOut:
    """Raw readings (the last ``sensor_history.raw_for_s``) and buckets (before), merged to at most ``max_points``."""
    sensor = _sensors(request.app.state.config).get(sensor_id)
    if sensor is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"the site has no sensor {sensor_id!r}")
    end_s = datetime_to_epoch(end) if end is not None else time.time()
    start_s = datetime_to_epoch(start) if start is not None else end_s - _DEFAULT_WINDOW_S
    try:  # the answer shows both in UTC: a time at the calendar's edge in its own zone may lie beyond it
        epoch_to_datetime(start_s), epoch_to_datetime(end_s)
    except (OverflowError, ValueError, OSError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"start or end out of range in UTC: {exc}"
        ) from None
    if not 0 < end_s - start_s <= _MAX_WINDOW_S:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"start must be before end, and the window at most {_MAX_WINDOW_S / 86_400:.0f} days",
        )
    readings: ReadingStore | None = request.app.state.readings
    if readings is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="this service keeps no reading history"
        )
    points = readings.trend(sensor_id, start_s, end_s, max_points=max_points)
    return TrendOut(
        sensor=sensor,
        start=start_s,  # UtcTime converts epoch seconds
        end=end_s,
        points=[TrendPointOut(at=p.at, value=p.value, min=p.min, max=p.max, count=p.count) for p in points],
    )


@ingest_router.post(
    "/ingest/readings",
    response_model=ReadingBatchResult,
    summary="Take readings pushed by a sensor gateway",
)
def ingest_readings(request: Request, _token: Pipeline, body: ReadingBatchIn) -> ReadingBatchResult:
    """Queue up to 5,000 readings for the sensor rules and the history; refuse (by index) those of unknown sensors.

    Readings of one sensor must come in time order (an older one than the last taken
    is dropped by the rules and counted as ``out_of_order``).
    """
    runner = request.app.state.sensors
    known = {sensor.id for _, sensor in request.app.state.config.sensors()}
    now = time.time()
    refused: list[RefusedReading] = []
    accepted = 0
    for index, item in enumerate(body.readings):
        if runner is None or item.sensor_id not in known:
            if runner is not None:
                runner.bad_input("unknown_sensor", item.sensor_id, "pushed to /ingest/readings")
            refused.append(
                RefusedReading(index=index, sensor_id=item.sensor_id, reason="the site has no such sensor")
            )
            continue
        reading = Reading(
            item.sensor_id, item.value, at=item.at if item.at is not None else now, received_at=now
        )
        problem = reading_problem(reading)
        if problem is not None:
            runner.bad_input(problem[0], item.sensor_id, f"pushed to /ingest/readings: {problem[1]}")
            refused.append(RefusedReading(index=index, sensor_id=item.sensor_id, reason=problem[1]))
            continue
        if runner.offer(reading):
            accepted += 1
        else:
            refused.append(
                RefusedReading(index=index, sensor_id=item.sensor_id, reason="the reading queue is full")
            )
    return ReadingBatchResult(accepted=accepted, refused=refused)
