"""Typed configuration of one camera source (the ``cameras:`` entries of the site YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from cameras.url import mask_url

__all__ = ["CameraConfig", "ReconnectConfig"]


class _CamerasModel(BaseModel):
    """Base of the cameras config models: unknown keys are errors, so typos fail loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReconnectConfig(_CamerasModel):
    """Exponential backoff between reconnect attempts; retries go on forever."""

    initial_delay_s: float = Field(1.0, gt=0, le=60, description="Delay before the first reconnect.")
    max_delay_s: float = Field(30.0, gt=0, le=3600, description="Cap on the delay between attempts.")
    multiplier: float = Field(2.0, ge=1.0, le=10.0, description="Growth of the delay per failed attempt.")
    jitter: float = Field(0.2, ge=0.0, le=1.0, description="Random +- fraction applied to each delay.")

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> ReconnectConfig:
        if self.max_delay_s < self.initial_delay_s:
            raise ValueError(
                f"max_delay_s ({self.max_delay_s}) must be >= initial_delay_s ({self.initial_delay_s})"
            )
        return self


class CameraConfig(_CamerasModel):
    """One camera: where its stream is and how to read it.

    ``url`` may carry credentials (``rtsp://user:pass@host/path``); it is kept in a
    ``SecretStr`` and only ``masked_url`` ever reaches logs, errors and the API.
    """

    id: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Stable id, used in events and URLs (letters, digits, '_', '.', '-').",
    )
    name: str = Field("", max_length=200, description="Human-readable name shown in the control room.")
    url: SecretStr = Field(
        ..., description="rtsp://, rtsps://, http(s)://, rtmp:// URL, a local file path, or /dev/videoN."
    )
    enabled: bool = Field(True, description="Disabled cameras are configured but not read.")
    analysis_fps: float = Field(
        2.0, gt=0, le=30, description="Frames per second handed to the pipeline (sampled from the stream)."
    )
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport.")
    open_timeout_s: float = Field(10.0, gt=0, le=300, description="Give up opening the stream after this.")
    stall_timeout_s: float = Field(
        10.0, gt=0, le=300, description="No packet for this long on an open stream counts as a stall."
    )
    loop: bool = Field(False, description="Files only: restart from the beginning at the end.")
    realtime: bool = Field(True, description="Files only: pace frames at the file's own rate.")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)

    @field_validator("url")
    @classmethod
    def _url_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("url must not be empty")
        return value

    @property
    def masked_url(self) -> str:
        """The URL with credentials replaced by ``***``: the only form safe to log or show."""
        return mask_url(self.url.get_secret_value())

    @property
    def display_name(self) -> str:
        """``name`` when set, else ``id``."""
        return self.name or self.id
