"""Typed configuration of one camera source (the ``cameras:`` entries of the site YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from anjian.cameras.fields import DurationS, FractionOrZero, GreyLevelOrZero, ShortDurationS
from anjian.cameras.url import camera_url_problem, mask_url, remember_secret, split_url

__all__ = ["CameraConfig", "CameraFaultConfig", "ReconnectConfig"]


class _CamerasModel(BaseModel):
    """Base of the cameras config models: unknown keys are errors, so typos fail loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReconnectConfig(_CamerasModel):
    """Exponential backoff between reconnect attempts, cut short when the camera's port comes back;
    retries go on forever. A camera that refuses the credentials is asked again on a schedule of its
    own, far slower, so that a wrong password does not get its account locked."""

    initial_delay_s: float = Field(1.0, gt=0, le=60, description="Delay before the first reconnect.")
    max_delay_s: ShortDurationS = Field(30.0, description="Cap on the delay between attempts.")
    multiplier: float = Field(2.0, ge=1.0, le=10.0, description="Growth of the delay per failed attempt.")
    jitter: FractionOrZero = Field(0.2, description="Random +- fraction applied to each delay.")
    probe_interval_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="While a camera is down, check this often whether its TCP port answers (a bare connect, "
        "no request) and open it as soon as a port seen closed answers again; 0: wait the plain backoff.",
    )
    credentials_initial_delay_s: DurationS = Field(
        300.0,
        description="Cameras only: after the camera refuses the credentials (401 Unauthorized, 403 Forbidden), "
        "wait this long before logging in again, growing by multiplier with each further refusal up to "
        "credentials_max_delay_s; its port is not checked meanwhile. Cameras lock out a client address (Hikvision) "
        "or the account itself, for every client including the NVR (Dahua), after a few failed logins, so a wrong "
        "password must not be retried at the reconnect pace. A password corrected in the site config is tried at "
        "once on /cameras/reload; one corrected on the camera, at the next attempt.",
    )
    credentials_max_delay_s: DurationS = Field(
        3600.0, description="Cameras only: cap on the delay between logins that the camera keeps refusing."
    )

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> ReconnectConfig:
        if self.max_delay_s < self.initial_delay_s:
            raise ValueError(
                f"max_delay_s ({self.max_delay_s}) must be >= initial_delay_s ({self.initial_delay_s})"
            )
        if self.credentials_max_delay_s < self.credentials_initial_delay_s:
            raise ValueError(
                f"credentials_max_delay_s ({self.credentials_max_delay_s}) must be >= "
                f"credentials_initial_delay_s ({self.credentials_initial_delay_s})"
            )
        return self


class CameraFaultConfig(_CamerasModel):
    """When a camera's own trouble becomes a ``camera_fault`` alert, and when that alert ends.

    Offline counts from the moment the camera stopped delivering frames (whatever the
    reason: refused, unreachable, stalled, misconfigured). Frozen and black look at the
    analysed frames: a live image that does not change at all (a hung encoder repeating
    its last picture) or that is black or uniform (lens covered, sprayed, unplugged sensor).
    """

    enabled: bool = Field(True, description="Raise camera_fault events for this camera.")
    offline_after_s: DurationS = Field(
        60.0, description="Raise once the camera has delivered no frame for this long."
    )
    frozen_after_s: DurationS = Field(
        120.0, description="Raise once a live image has not changed for this long."
    )
    black_after_s: DurationS = Field(
        60.0, description="Raise once the image has been black or uniform for this long."
    )
    frozen_max_diff: float = Field(
        0.5,
        ge=0,
        le=50,
        description="Mean absolute grey-level change between analysed frames at or below which the image "
        "counts as unchanged (live sensors are noisier than this).",
    )
    black_max_luma: GreyLevelOrZero = Field(
        20.0, description="Mean grey level (0-255) at or below which the image counts as black."
    )
    uniform_max_std: GreyLevelOrZero = Field(
        3.0,
        description="Grey-level standard deviation at or below which the image counts as uniform (covered).",
    )
    clear_after_s: ShortDurationS = Field(
        10.0, description="A fault ends once the camera has been fine for this long."
    )
    update_interval_s: DurationS = Field(60.0, description="Re-publish an ongoing fault at most this often.")
    severity: Literal["red", "orange", "yellow", "blue"] = Field(
        "orange", description="Risk colour of camera_fault events."
    )


class CameraConfig(_CamerasModel):
    """One camera: where its stream is and how to read it.

    ``url`` may carry credentials (``rtsp://user:pass@host/path``, the password as it is,
    ``/`` and ``@`` included, or percent-encoded); it is kept in a ``SecretStr`` and only
    ``masked_url`` ever reaches logs, errors and the API.
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
    keyframes_only: bool = Field(
        False,
        description="Decode keyframes only (skip_frame NONKEY): a fraction of the CPU, for cameras whose "
        "behaviours need one frame every second or two. The analysed rate is then at most the keyframe rate.",
    )
    max_keyframe_interval_s: ShortDurationS = Field(
        60.0,
        description="With keyframes_only: packets flowing without a picture for this long count as a stall, "
        "named as such (a camera that sends no keyframe, or one a minute, was shown online while nothing was "
        "analysed). The camera's keyframe interval (GOP) must be shorter, or keyframes_only off.",
    )
    skip_unused_frames: bool = Field(
        True,
        description="Skip decoding the frames no analysed frame needs when analysis_fps is at most half the "
        "stream's frame rate: those no other frame refers to (B-frames: skip_frame NONREF; an analysed frame may "
        "then come up to one frame later), and, on H.264/H.265 with evenly spaced IDR keyframes (most IP "
        "cameras), the end of each GOP after its last analysed frame (a quarter to a half of the decoding at "
        "2 fps with a keyframe every 1-2 s; the analysed frames stay the same: held back until the keyframe, "
        "and decoded after all when it comes later than the last three predicted).",
    )
    decode_threads: int | None = Field(
        None,
        ge=0,
        le=16,
        description="FFmpeg decoder threads for this camera (0: one per core). Unset: one up to 1080p, two above "
        "it. One thread decodes a frame with the least CPU (each frame thread costs about a quarter more CPU "
        "and adds a frame of latency) and, across many cameras, all cores work anyway; a 4K stream may need "
        "more than one core to decode in real time.",
    )
    decode_device: Literal["cpu", "cuda"] = Field(
        "cpu",
        description="'cuda': decode with NVDEC and keep frames on the GPU (torch tensors) when torch and an "
        "NVIDIA GPU are present; falls back to CPU decoding otherwise.",
    )
    input_format: str | None = Field(
        None,
        max_length=32,
        pattern=r"^[a-z0-9_,]+$",
        description="FFmpeg input format, e.g. 'v4l2' (the default for /dev/videoN); auto-detected if unset.",
    )
    input_options: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra FFmpeg input options, e.g. {video_size: 1280x720, input_format: mjpeg} for V4L2.",
    )
    loop: bool = Field(False, description="Files only: restart from the beginning at the end.")
    realtime: bool = Field(True, description="Files only: pace frames at the file's own rate.")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    faults: CameraFaultConfig = Field(default_factory=CameraFaultConfig)

    @field_validator("url")
    @classmethod
    def _url_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("url must not be empty")
        return value

    @model_validator(mode="after")
    def _url_is_a_camera(self) -> CameraConfig:
        """A URL FFmpeg would refuse at run time, or read as one of its own protocols, is refused here.

        With ``input_format`` set the URL is that format's own (a lavfi graph, a dshow device), not checked.
        """
        problem = None if self.input_format is not None else camera_url_problem(self.url.get_secret_value())
        if problem is not None:
            raise ValueError(f"url {self.masked_url!r}: {problem}")
        return self

    def model_post_init(self, context: object, /) -> None:
        """Remember the URL's password, so that error texts quoting it on its own are masked too."""
        remember_secret(split_url(self.url.get_secret_value()).password)

    @property
    def masked_url(self) -> str:
        """The URL with credentials replaced by ``***``: the only form safe to log or show."""
        return mask_url(self.url.get_secret_value())

    @property
    def display_name(self) -> str:
        """``name`` when set, else ``id``."""
        return self.name or self.id
