"""The wire form of a pipeline's camera health: what a node running elsewhere POSTs to the alert service.

A pipeline that sends its events over HTTP (``anjian run --service-url``, a plant's
pipeline node) reports the health of the cameras it reads every ``interval_s`` to
``POST /ingest/health`` (``anjian.pipeline.http_sink.HttpEventSink.report_health``),
so the control room sees every camera of the plant whichever process reads it. The
service shows a camera whose reports stopped as ``stale``: it needs to know how often
they come, so the report says so.

The pipeline never imports the service, so the pipeline owns the format; the service
takes ``HealthReportWire`` as the route's body, so a report is validated once, by
this model. Numbers are strict and unknown fields are refused, like ``EventWire``.

Example:
    >>> report = HealthReportWire.from_health(runner.health(), node="node-b", interval_s=3.0)
    >>> HealthReportWire.model_validate(report.model_dump(mode="json")).cameras[0].to_health()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, field_validator

from anjian.cameras.health import CameraHealth, CameraState
from anjian.pipeline.event_wire import ID_PATTERN

__all__ = ["CameraHealthWire", "HealthReportWire"]

_ID = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
_EPOCH_S = Annotated[float, Strict(), Field(ge=0, le=1e11, allow_inf_nan=False)]
_COUNT = Annotated[int, Strict(), Field(ge=0, le=2**63 - 1)]


class CameraHealthWire(BaseModel):
    """One camera's health (``anjian.cameras.health.CameraHealth`` on the wire, without ``node``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera_id: _ID
    state: CameraState = Field(..., description="Its connection state as its reader sees it (never stale).")
    since: _EPOCH_S = Field(..., description="When it entered this state, epoch seconds.")
    fps: Annotated[float, Strict(), Field(ge=0, le=10_000, allow_inf_nan=False)] = 0.0
    frames_decoded: _COUNT = 0
    frames_delivered: _COUNT = 0
    frames_dropped: _COUNT = 0
    decode_errors: _COUNT = 0
    reconnects: _COUNT = 0
    last_error: Annotated[str, StringConstraints(max_length=1000)] | None = None
    last_frame_at: _EPOCH_S | None = None
    down_since: _EPOCH_S | None = None
    decoder: Annotated[str, StringConstraints(min_length=1, max_length=16)] = "cpu"

    @field_validator("state")
    @classmethod
    def _read_state(cls, state: CameraState) -> CameraState:
        if state is CameraState.STALE:
            raise ValueError("a reader reports what it sees; 'stale' is set by the service")
        return state

    @classmethod
    def from_health(cls, health: CameraHealth) -> CameraHealthWire:
        """The wire form of a reader's snapshot (trusted: built without validation; the error cut to fit)."""
        fields = {name: getattr(health, name) for name in cls.model_fields}
        if health.last_error is not None:
            fields["last_error"] = health.last_error[:1000]
        return cls.model_construct(**fields)

    def to_health(self, node: str | None = None) -> CameraHealth:
        """The snapshot, marked as read by ``node``."""
        return CameraHealth(**self.model_dump(), node=node)


class HealthReportWire(BaseModel):
    """The health of every camera one pipeline reads, sent every ``interval_s``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: _ID | None = Field(
        None, description="The pipeline node sending it (`anjian run --node NAME`); null for a lone pipeline."
    )
    interval_s: Annotated[float, Strict(), Field(gt=0, le=3600, allow_inf_nan=False)] = Field(
        ...,
        description="How often this pipeline reports: its cameras show as stale after a few intervals "
        "without a report.",
    )
    cameras: list[CameraHealthWire] = Field(
        ..., max_length=10_000, description="Every camera it reads now (an empty list: none)."
    )

    @classmethod
    def from_health(
        cls, health: Iterable[CameraHealth], *, node: str | None, interval_s: float
    ) -> HealthReportWire:
        """The report of a pipeline's cameras (trusted: built without validation)."""
        return cls.model_construct(
            node=node, interval_s=interval_s, cameras=[CameraHealthWire.from_health(h) for h in health]
        )
